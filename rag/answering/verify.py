"""Check a drafted answer against the passages it cites, sentence by sentence.

The rule:

1. A citation is a `[n]` marker (also `[n, m]`, `[Passage n]`) outside quotation marks; a marker
   inside "..." or “...” is text the answer quotes, not a citation. Markers written right after a
   sentence's full stop ("... agreed. [2]") belong to that sentence.
2. A citation must name a returned passage (1..len(passages)); others are removed from the text.
3. A sentence is supported when it cites at least one returned passage and
   - at least SUPPORT_THRESHOLD of its distinct content-word stems (`rag.text.content_stems`:
     Snowball stems, stopwords and citation markers left out) occur in the passages it cites, and
   - every number it states (digits, or number words up to twenty) occurs in those passages, and
   - every name it states (a capitalised word other than its first) occurs in those passages, so
     "Steve Witkoff said X [1]" fails when [1] says X of someone else.
4. A sentence that cites returned passages which do not support it, but that another returned
   passage supports by the same test, is re-cited to that passage (small models often cite the
   neighbour of the right passage); this is counted (`recited`). A sentence citing nothing, or only
   passages that do not exist, is never re-cited.
5. Unsupported sentences are left out of the text and counted; a sentence with no content words
   ("Yes [1].") cannot be checked and counts as unsupported.
"""

from __future__ import annotations

import re
from functools import lru_cache
from collections.abc import Mapping
from dataclasses import dataclass

from ..text import STOPWORDS, content_stems, digits_for_number_words, sentences, stem, words

# Share of a sentence's content stems that must occur in the passages it cites. 0.6 keeps
# paraphrase ("negotiations" vs "negotiated" share a stem) while a sentence that adds as many new
# words as it borrows fails. (The evaluation's citation-support metric, eval/metrics.py, asks for
# 0.5 of plain words, unstemmed; this stricter bar keeps answers that pass here above that one.)
SUPPORT_THRESHOLD = 0.6

# `[3]`, `[1, 2]`, `[1][2]` (two markers), `[Passage 4]`; whitespace tolerated.
_CITE = r"\[\s*(?:passages?\s*)?(\d{1,4}(?:\s*[,;]\s*\d{1,4})*)\s*\]"
_MARKER = re.compile(_CITE, re.IGNORECASE)
_QUOTED = re.compile(r"\"[^\"\n]*\"|“[^”\n]*”")
_LEADING_MARKERS = re.compile(rf"^\s*(?:{_MARKER.pattern}\s*)+", re.IGNORECASE)
_LIST_NUMBER = re.compile(r"\d{1,2}[.)]")  # "1." split off a numbered list item
_LIST_ITEM = re.compile(r"^(?:(?:[-*•]|\d{1,2}[.)])\s+|answer:\s*)+", re.IGNORECASE)


# What the prompt asks a model to reply when the passages do not answer (rag/answering/prompt.py).
NOT_IN_PASSAGES = "NOT IN PASSAGES"
_REFUSAL = re.compile(
    r"not in the (?:given |provided )?passages|"
    r"(?:passages?|articles?|context|texts?|sources?) (?:do|does|did) not (?:contain|mention|say|answer|provide|"
    r"include|specify|state|give|cover|discuss)|"
    r"\bno (?:information|mention|details?|data)\b|"
    r"\b(?:cannot|can't|can not|unable to) (?:be )?(?:answer|determine|find|tell|say)|"
    r"\bnot (?:mentioned|specified|stated|provided|given|available|covered)\b|"
    r"\bi (?:do not|don't) know\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class SentenceCheck:
    written: str  # the sentence as drafted
    shown: str  # the sentence with its citations rewritten as `[n]` and invalid ones removed
    cited: tuple[int, ...]  # returned passages it cites
    invalid: tuple[int, ...]  # cited numbers that name no returned passage
    coverage: float  # share of its content stems found in the cited passages
    missing_numbers: tuple[str, ...]  # numbers it states that the cited passages lack
    supported: bool
    reason: str | None  # why it is unsupported
    recited_from: tuple[int, ...] = ()  # the passages it cited before it was re-cited to `cited`


@dataclass(frozen=True)
class Verification:
    sentences: tuple[SentenceCheck, ...]

    @property
    def kept(self) -> list[SentenceCheck]:
        return [s for s in self.sentences if s.supported]

    @property
    def text(self) -> str:
        return " ".join(s.shown for s in self.kept)

    @property
    def citations(self) -> list[int]:
        return sorted({n for s in self.kept for n in s.cited})

    @property
    def unsupported(self) -> int:
        return sum(not s.supported for s in self.sentences)

    @property
    def recited(self) -> int:
        return sum(bool(s.recited_from) for s in self.kept)

    @property
    def invalid_citations(self) -> int:
        return sum(len(s.invalid) for s in self.sentences)


def parse_citations(sentence: str) -> list[int]:
    """Numbers of the citation markers outside quotation marks, in order, duplicates kept."""
    bare = _QUOTED.sub(lambda m: " " * len(m.group()), sentence)
    return [int(n) for m in _MARKER.finditer(bare) for n in re.split(r"\s*[,;]\s*", m.group(1))]


def split_answer(text: str) -> list[str]:
    """Answer sentences, each keeping the citation markers that follow its full stop."""
    out: list[str] = []
    for s in sentences(text):
        piece = s.text
        lead = _LEADING_MARKERS.match(piece)
        if lead and out:
            out[-1] = f"{out[-1]} {lead.group().strip()}"
            piece = piece[lead.end():]
        piece = _LIST_ITEM.sub("", piece.strip()).strip()
        if piece and not _LEADING_MARKERS.fullmatch(piece) and not _LIST_NUMBER.fullmatch(piece):
            out.append(piece)
    return out


def verify(
    answer: str, passages: Mapping[int, str], threshold: float = SUPPORT_THRESHOLD, recite: bool = True
) -> Verification:
    """Check every sentence of `answer` against `passages` (text by rank); see the module docstring."""
    stems = {rank: _stems(text) for rank, text in passages.items()}
    return Verification(tuple(check_sentence(s, passages, threshold, recite, stems) for s in split_answer(answer)))


def check_sentence(
    sentence: str, passages: Mapping[int, str], threshold: float = SUPPORT_THRESHOLD, recite: bool = True,
    stems: Mapping[int, set[str]] | None = None,
) -> SentenceCheck:
    """Check one sentence (as `split_answer` cuts them) against the passages it cites."""
    stems = stems if stems is not None else {rank: _stems(text) for rank, text in passages.items()}
    check = _check(sentence, passages, stems, threshold)
    if recite and not check.supported and check.cited:
        check = _recite(check, passages, stems, threshold) or check
    return check


def says_not_in_passages(text: str) -> bool:
    """Whether a draft says the passages do not answer: the prompt's sentinel first, or a
    refusal phrase ("the passages do not mention ...", "no information") anywhere."""
    head = " ".join(text.split()).upper()
    return head.startswith(NOT_IN_PASSAGES) or bool(_REFUSAL.search(text))


def starts_with_refusal(text: str) -> bool:
    """Whether the draft opens with the sentinel the prompt asks for."""
    return " ".join(text.split()).upper().lstrip("\"'*_ ").startswith(NOT_IN_PASSAGES)


def _recite(
    check: SentenceCheck, passages: Mapping[int, str], stems: Mapping[int, set[str]], threshold: float
) -> SentenceCheck | None:
    """The check with the sentence citing the one returned passage that best supports it, if any does."""
    bare = _MARKER.sub(" ", _QUOTED.sub(lambda m: m.group().replace("[", "(").replace("]", ")"), check.written))
    best = None
    for rank in passages:
        if rank in check.cited:
            continue
        trial = _check(f"{bare.rstrip()} [{rank}]", passages, stems, threshold)
        if trial.supported and (best is None or trial.coverage > best.coverage):
            best = trial
    if best is None:
        return None
    shown = _LIST_ITEM.sub("", _rewrite_markers(check.written, set(), recite=best.cited[0]))
    return SentenceCheck(
        check.written, shown, best.cited, check.invalid, best.coverage, (), True, None, recited_from=check.cited
    )


def _check(
    sentence: str, passages: Mapping[int, str], stems: Mapping[int, set[str]], threshold: float
) -> SentenceCheck:
    numbers = list(dict.fromkeys(parse_citations(sentence)))
    cited = tuple(n for n in numbers if n in passages)
    invalid = tuple(n for n in numbers if n not in passages)
    shown = _rewrite_markers(sentence, set(cited))
    words = _stems(_MARKER.sub(" ", sentence))
    pool: set[str] = set().union(*(stems[n] for n in cited)) if cited else set()
    coverage = len(words & pool) / len(words) if words else 0.0
    missing = tuple(sorted(w for w in words if w.isdigit() and w not in pool))
    names = [n for n in _names(_MARKER.sub(" ", sentence)) if n not in pool]
    if not cited:
        reason = "cites no returned passage" if invalid else "cites no passage"
    elif not words:
        reason = "has no content words to check"
    elif missing:
        reason = f"states numbers the cited passages lack: {', '.join(missing)}"
    elif names:
        reason = f"names what the cited passages do not: {', '.join(names)}"
    elif coverage < threshold:
        reason = f"only {coverage:.0%} of its content words are in the cited passages (needs {threshold:.0%})"
    else:
        reason = None
    return SentenceCheck(sentence, shown, cited, invalid, round(coverage, 4), missing, reason is None, reason)


def _rewrite_markers(sentence: str, valid: set[int], recite: int | None = None) -> str:
    """Markers outside quotes become `[n][m]` with only valid numbers; quoted text is untouched.
    With `recite`, the last marker becomes `[recite]` and the others go."""
    quoted = [(m.start(), m.end()) for m in _QUOTED.finditer(sentence)]
    outside = [m.start() for m in _MARKER.finditer(sentence) if not any(a <= m.start() < b for a, b in quoted)]

    def fix(m: re.Match[str]) -> str:
        if m.start() not in outside:
            return m.group()
        if recite is not None and m.start() == outside[-1]:
            return f"[{recite}]"
        nums = dict.fromkeys(int(n) for n in re.split(r"\s*[,;]\s*", m.group(1)))
        return "".join(f"[{n}]" for n in nums if n in valid) or "\0"

    out = _MARKER.sub(fix, sentence)
    out = re.sub(r"(?<=\w)\0+(?=\w)", " ", out)  # "agreed[12]and" -> "agreed and"
    out = re.sub(r"\s*\0+(?=\s*[.,;:!?]|\s*$)", "", out)  # "agreed [12]." -> "agreed."
    return " ".join(out.replace("\0", "").split())


def _names(text: str) -> list[str]:
    """Stems of the capitalised words after the first (names, places), stopwords left out."""
    found = [
        w for w in words(_LIST_ITEM.sub("", text.strip()))[1:]
        if w[:1].isupper() and len(w) > 1 and w.lower() not in STOPWORDS
    ]
    return list(dict.fromkeys(stem(w) for w in found))


@lru_cache(maxsize=8192)  # passages recur across questions; callers only read the set
def _stems(text: str) -> frozenset[str]:
    return frozenset(content_stems(digits_for_number_words(text)))
