"""Multiple-choice answers without a model: which of the given choices the passages state.

The support rule. A sentence of a retrieved passage supports a choice when
- it states the choice: the choice's distinctive terms occur together in it. Distinctive terms are
  the choice's content-word stems and numbers less those the question uses and those every other
  choice has too (so "Awards" in "The Tony Awards" / "The Emmy Awards" decides nothing, and neither
  does a word the question itself offers). Every number of the choice must be there ("$19 million"
  is not "$19,000"; a quantity such as "$300,000" or "68%" may be stated approximately, within
  NEAR_QUANTITY, by the choice nearest to it, at half weight); of its other terms, at least
  MIN_STATED by rarity-weighted share, a word also matching its derived forms (Europe, European);
- it is about the question: it shares the question's content words (rarity-weighted share).
A sentence's support is (share of the choice stated) x (how much it is about the question), split
between the choices it states (a sentence listing all of them tells none apart; one that states
a choice and a more specific choice containing it counts for the specific one). A choice's score
is the sum over passages of its best sentence's support, each weighted 1/rank. The best score is
the pick; when no choice has any support, or two tie for best, the answer abstains.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from ..retrieval.search import Hit
from ..schema import ChoiceOut, ChoiceScore
from ..text import content_stems, digits_for_number_words, sentences_cached

ABSTAINED = "The articles don't say which of the choices is right."
# Of a choice's words other than numbers, this rarity-weighted share must be in one sentence: a
# two-word name needs its rarer word at least, a four-word phrase most of it.
MIN_STATED = 0.5

# Of a stated quantity, the nearest choice within this relative distance is stated approximately:
# quiz options for one quantity lie far apart ($30,000 / $100,000 / $300,000), while news figures
# are exact or rounded to two or three digits ($310,605, 67.9%), within a few percent.
NEAR_QUANTITY = 0.1
# A choice's word matches a sentence's word sharing all but its last letters, at least this many:
# Europe/European, China/Chinese, Sweden/Swedish (stems europ/european, china/chines, swede/swedish).
MIN_SHARED_PREFIX = 4

_MULTIPLIERS = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}
_NUMBER = re.compile(
    r"(?P<n>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d+))?(?:\s*(?P<mult>thousand|million|billion|trillion)\b)?",
    re.IGNORECASE,
)
_QUANTITY = re.compile(r"[$€£¥%]|\d,\d{3}|\d\.\d|thousand|million|billion|trillion|percent", re.IGNORECASE)
# Newsroom month abbreviations before a day ("Sept. 1"), read as the month they stand for.
_MONTHS = {"jan": "January", "feb": "February", "apr": "April", "jun": "June", "jul": "July", "aug": "August",
           "sep": "September", "sept": "September", "oct": "October", "nov": "November", "dec": "December"}
_MONTH_ABBR = re.compile(r"\b(" + "|".join(_MONTHS) + r")\.?(?=\s+\d)", re.IGNORECASE)


@dataclass(frozen=True)
class Terms:
    """A text's distinct content-word stems and numbers (each number by its value, written
    canonically: "$19 million" -> "19000000", "5.9" -> "5.9")."""

    words: frozenset[str]
    numbers: frozenset[str]

    @property
    def all(self) -> frozenset[str]:
        return self.words | self.numbers


@lru_cache(maxsize=32768)  # passage sentences recur across questions
def terms(text: str) -> Terms:
    text = _MONTH_ABBR.sub(lambda m: _MONTHS[m.group(1).lower()], text)
    spelled = digits_for_number_words(text)
    numbers = frozenset(_value(m) for m in _NUMBER.finditer(spelled))
    words = frozenset(w for w in content_stems(_NUMBER.sub(" ", spelled)) if not w.isdigit())
    return Terms(words, numbers)


def _value(m: re.Match[str]) -> str:
    whole = m["n"].replace(",", "")
    value = float(f"{whole}.{m['frac']}" if m["frac"] else whole)
    if m["mult"]:
        value *= _MULTIPLIERS[m["mult"].lower()]
    return format(value, ".15g")


@dataclass
class _Choice:
    index: int
    text: str
    words: frozenset[str]  # distinctive words
    numbers: frozenset[str]  # distinctive numbers
    quantity: bool = False  # an amount ($, %, a multiplier, decimals): may be stated approximately
    score: float = 0.0
    by_rank: dict[int, float] = field(default_factory=dict)  # passage rank -> its support

    @property
    def distinctive(self) -> frozenset[str]:
        return self.words | self.numbers


def score_choices(
    question: str, choices: Sequence[str], hits: list[Hit], idf: Callable[[str], float] | None = None
) -> list[ChoiceScore]:
    """Each choice's support by the passages (module docstring), in the order given."""
    return [_out(c) for c in _scored(question, choices, hits, idf)]


def pick(
    question: str, choices: Sequence[str], hits: list[Hit], idf: Callable[[str], float] | None = None
) -> ChoiceOut:
    """The best-supported choice with the passages that state it, or an abstention."""
    scored = _scored(question, choices, hits, idf)
    scores = [_out(c) for c in scored]
    ranked = sorted(scored, key=lambda c: -c.score)
    best = ranked[0]
    if best.score <= 0 or (len(ranked) > 1 and math.isclose(ranked[1].score, best.score)):
        return ChoiceOut(abstained=True, text=ABSTAINED, scores=scores, verified=True)
    cites = scores[best.index].citations
    return ChoiceOut(
        picked=best.text, index=best.index, abstained=False, text=f"{best.text.strip()} " + "".join(f"[{n}]" for n in cites),
        citations=sorted(cites), scores=scores, verified=True,
    )


def _scored(
    question: str, choices: Sequence[str], hits: list[Hit], idf: Callable[[str], float] | None
) -> list[_Choice]:
    found = _scored_terms(question, choices)
    q = terms(question).all
    weight = _weights(idf, q | frozenset().union(*(c.distinctive for c in found)))
    q_total = math.fsum(weight(t) for t in q) or 1.0
    for rank, hit in enumerate(hits, start=1):
        best: dict[int, float] = {}
        for sent in sentences_cached(hit.chunk.text):
            s = terms(sent.text)
            about = math.fsum(weight(t) for t in q & s.all) / q_total
            if about <= 0:
                continue
            said = {c.index: _said(c, s, found) for c in found}
            share = {c.index: _stated_share(c, *said[c.index], weight) for c in found}
            named = _most_specific([c for c in found if share[c.index] > 0], said)
            for c in named:
                support = share[c.index] * about / len(named)
                best[c.index] = max(best.get(c.index, 0.0), support)
        for i, support in best.items():
            found[i].by_rank[rank] = support
            found[i].score += support / rank
    return found


def _scored_terms(question: str, choices: Sequence[str]) -> list[_Choice]:
    q = terms(question)
    each = [terms(c) for c in choices]
    shared = frozenset.intersection(*(t.all for t in each)) if len(each) > 1 else frozenset()
    return [
        _Choice(i, c, t.words - q.words - shared, t.numbers - q.numbers - shared, bool(_QUANTITY.search(c)))
        for i, (c, t) in enumerate(zip(choices, each))
    ]


def _said(c: _Choice, s: Terms, found: list[_Choice]) -> tuple[frozenset[str], frozenset[str]]:
    """The choice's distinctive terms the sentence states exactly (a word or a derived form of it),
    and those it states approximately (a quantity nearest this choice, within NEAR_QUANTITY)."""
    exact = (c.numbers & s.numbers) | frozenset(w for w in c.words if w in s.words or _derived(w, s.words))
    near = frozenset()
    if c.quantity and len(c.numbers) == 1 and not c.numbers <= s.numbers:
        (mine,) = c.numbers
        if any(_nearest(float(v), found) == (c.index, mine) for v in s.numbers):
            near = c.numbers
    return exact, near


def _derived(word: str, words: frozenset[str]) -> bool:
    need = lambda a, b: max(MIN_SHARED_PREFIX, min(len(a), len(b)) - 1)  # noqa: E731
    return len(word) >= MIN_SHARED_PREFIX and any(
        w[:MIN_SHARED_PREFIX] == word[:MIN_SHARED_PREFIX] and _prefix(word, w) >= need(word, w) for w in words
    )


def _prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _nearest(value: float, found: list[_Choice]) -> tuple[int, str] | None:
    """The quantity choice whose number lies nearest `value`, if within NEAR_QUANTITY of it."""
    if value <= 0:
        return None
    best = None
    for c in found:
        if c.quantity and len(c.numbers) == 1:
            (n,) = c.numbers
            if float(n) > 0:
                gap = abs(math.log(value / float(n)))
                if best is None or gap < best[0]:
                    best = (gap, c.index, n)
    if best is None or abs(value / float(best[2]) - 1) > NEAR_QUANTITY:
        return None
    return best[1], best[2]


def _stated_share(
    c: _Choice, exact: frozenset[str], near: frozenset[str], weight: Callable[[str], float]
) -> float:
    """How much of the choice the sentence states: 0 unless every number (exactly or, for a
    quantity, approximately) and MIN_STATED of the other words are there; else the
    rarity-weighted share of its distinctive terms, approximate ones at half weight."""
    if not c.distinctive or not c.numbers <= exact | near:
        return 0.0
    if c.words:
        total = math.fsum(weight(w) for w in c.words)
        if math.fsum(weight(w) for w in c.words & exact) < MIN_STATED * total:
            return 0.0
    total = math.fsum(weight(t) for t in c.distinctive)
    return (math.fsum(weight(t) for t in exact) + 0.5 * math.fsum(weight(t) for t in near)) / total


def _most_specific(named: list[_Choice], said: dict[int, tuple[frozenset[str], frozenset[str]]]) -> list[_Choice]:
    """Leave out a choice whose stated terms another stated choice states too, and more."""
    got = {c.index: said[c.index][0] | said[c.index][1] for c in named}
    return [c for c in named if not any(got[c.index] < got[o.index] for o in named if o is not c)]


def _weights(idf: Callable[[str], float] | None, vocab: frozenset[str]) -> Callable[[str], float]:
    """Rarity of a term in the corpus (the index's IDF); 1 for every term without one."""
    if idf is None:
        return lambda t: 1.0
    table = {t: max(idf(t), 1e-6) for t in vocab}
    return lambda t: table.get(t, 1.0)


def _out(c: _Choice) -> ChoiceScore:
    cites = sorted(c.by_rank, key=lambda r: (-c.by_rank[r], r))
    return ChoiceScore(choice=c.text, score=round(c.score, 6), citations=cites)
