"""Pure evaluation metrics for retrieval, answers and citations.

No I/O and no project imports: every function takes plain strings, lists, dicts and numbers, so
the harness can feed it passage texts, doc ids, latencies, ... from any source.

Conventions:
- Passage lists are in rank order: the passage at list position i (0-based) has rank i + 1.
- All text containment is "whitespace- and quote-style insensitive": both sides go through
  `normalize` and a plain substring test follows (no fuzzy or partial matching).
- Metrics that would be 0/0 return a documented constant instead of NaN, so averages never
  turn into NaN; callers decide which questions to average over (e.g. answerable only).
"""

from __future__ import annotations

import math
import re
from typing import Iterable, Mapping, Sequence

__all__ = [
    "abstention_rate",
    "answer_in_answer",
    "answer_in_passages",
    "citation_support",
    "citation_validity",
    "contains",
    "content_words",
    "distinct_docs_at",
    "evidence_found",
    "evidence_recall_at",
    "false_refusal_rate",
    "first_hit_rank",
    "hit_at",
    "hits_by_key",
    "mean",
    "mc_accuracy",
    "ndcg_at",
    "normalize",
    "nugget_recall",
    "parse_citations",
    "percentile",
    "reciprocal_rank",
    "refusal_accuracy",
    "sentence_supported",
    "split_sentences",
]

# ---------------------------------------------------------------------------------------------
# Text normalisation and containment
# ---------------------------------------------------------------------------------------------

_CHAR_MAP = str.maketrans(
    {
        "\u2018": "'",  # ‘
        "\u2019": "'",  # ’
        "\u201b": "'",  # ‛
        "\u02bc": "'",  # ʼ (modifier letter apostrophe)
        "\u201c": '"',  # “
        "\u201d": '"',  # ”
        "\u201e": '"',  # „
        "\u201f": '"',  # ‟
        "\u2012": "-",  # ‒ figure dash
        "\u2013": "-",  # – en dash
        "\u2014": "-",  # — em dash
        "\u2015": "-",  # ― horizontal bar
    }
)


def normalize(text: str) -> str:
    """Lowercase, unify curly quotes and dashes to ASCII, collapse all whitespace, strip."""
    # str.split() with no argument splits on every Unicode whitespace run (incl. NBSP, newlines).
    return " ".join(text.lower().translate(_CHAR_MAP).split())


def contains(haystack: str, needle: str) -> bool:
    """Whether normalised `needle` occurs in normalised `haystack`; an empty needle never does."""
    n = normalize(needle)
    return bool(n) and n in normalize(haystack)


# ---------------------------------------------------------------------------------------------
# Retrieval metrics over evidence quotes
# ---------------------------------------------------------------------------------------------


def _relevant(passage_text: str, norm_evidence: Sequence[str]) -> bool:
    """Whether one passage contains any of the (already normalised, non-empty) quotes."""
    p = normalize(passage_text)
    return any(q in p for q in norm_evidence)


def _norm_quotes(evidence: Sequence[str]) -> list[str]:
    """Normalised quotes with empty ones dropped (an empty quote would match everything)."""
    return [q for q in (normalize(e) for e in evidence) if q]


def evidence_found(passage_texts: Sequence[str], evidence: Sequence[str]) -> list[bool]:
    """Per quote: strictly, whether the whole normalised quote lies inside one passage's text."""
    # Strict by design: a quote split across two chunks, or only 80% present, is NOT found.
    # Partial credit would reward retrieving a neighbouring chunk that lacks the key fact.
    passages = [normalize(t) for t in passage_texts]
    out: list[bool] = []
    for e in evidence:
        q = normalize(e)
        out.append(bool(q) and any(q in p for p in passages))
    return out


def first_hit_rank(passage_texts: Sequence[str], evidence: Sequence[str]) -> int | None:
    """1-based rank of the first passage containing any evidence quote, or None if none does."""
    quotes = _norm_quotes(evidence)
    if not quotes:
        return None
    for i, text in enumerate(passage_texts):
        if _relevant(text, quotes):
            return i + 1
    return None


def hit_at(rank: int | None, k: int) -> float:
    """1.0 if a hit exists at a rank <= k, else 0.0."""
    return 1.0 if rank is not None and 1 <= rank <= k else 0.0


def reciprocal_rank(rank: int | None, k: int = 10) -> float:
    """1/rank for a hit within the top k; 0.0 if there is no hit or it lies beyond k."""
    return 1.0 / rank if rank is not None and 1 <= rank <= k else 0.0


def evidence_recall_at(passage_texts: Sequence[str], evidence: Sequence[str], k: int) -> float:
    """Share of evidence quotes found in the top k passages; 0.0 when there is no evidence."""
    if not evidence or k <= 0:
        return 0.0
    found = evidence_found(list(passage_texts)[:k], evidence)
    return sum(found) / len(found)


def ndcg_at(passage_texts: Sequence[str], evidence: Sequence[str], k: int = 10) -> float:
    """Binary-relevance nDCG@k (relevant = contains any quote); 0.0 when there is no evidence."""
    # Ideal DCG assumes min(#quotes, k) relevant passages. If more passages than that are
    # relevant (overlapping chunks each holding the same quote), the ideal count is raised to the
    # observed count so the score stays within [0, 1] without clipping away rank information.
    quotes = _norm_quotes(evidence)
    if not quotes or k <= 0:
        return 0.0
    rels = [_relevant(t, quotes) for t in list(passage_texts)[:k]]
    dcg = sum(1.0 / math.log2(i + 2) for i, r in enumerate(rels) if r)
    n_ideal = max(min(len(quotes), k), sum(rels))
    idcg = sum(1.0 / math.log2(i + 2) for i in range(n_ideal))
    return dcg / idcg


def distinct_docs_at(doc_ids: Sequence[str], k: int) -> int:
    """Number of distinct document ids among the top k passages."""
    return len(set(list(doc_ids)[: max(k, 0)]))


def hits_by_key(ranked_keys: Sequence[str], gold_key: str) -> int | None:
    """1-based rank of the first key exactly equal to `gold_key` (e.g. article URL), or None."""
    for i, key in enumerate(ranked_keys):
        if key == gold_key:
            return i + 1
    return None


def answer_in_passages(passage_texts: Sequence[str], answer: str, k: int) -> bool:
    """Whether the normalised answer string occurs in any of the top k passages."""
    return any(contains(t, answer) for t in list(passage_texts)[: max(k, 0)])


# ---------------------------------------------------------------------------------------------
# Answer content
# ---------------------------------------------------------------------------------------------

_QUOTE_CHARS = str.maketrans("", "", "\"'")


def answer_in_answer(answer_text: str, answer: str) -> bool:
    """Whether the gold answer occurs in a drafted answer, case- and quote-insensitive: quotation
    marks and apostrophes are dropped from both (a quiz writes “Squid Game”, an answer Squid Game)."""
    gold = normalize(answer).translate(_QUOTE_CHARS).strip()
    return bool(gold) and gold in " ".join(normalize(answer_text).translate(_QUOTE_CHARS).split())


def mc_accuracy(picks: Sequence[int | None], gold: Sequence[int]) -> float:
    """Share of questions whose pick is the gold choice; an abstention (None) counts as wrong;
    0.0 for no questions."""
    if len(picks) != len(gold):
        raise ValueError(f"{len(picks)} picks for {len(gold)} questions")
    return sum(p is not None and p == g for p, g in zip(picks, gold)) / len(gold) if gold else 0.0


def abstention_rate(picks: Sequence[int | None]) -> float:
    """Share of questions answered with an abstention (None); 0.0 for no questions."""
    return sum(p is None for p in picks) / len(picks) if picks else 0.0



def nugget_recall(answer_text: str, nuggets: Sequence[Sequence[str]]) -> float:
    """Share of nuggets with any alternative spelling in the answer; 1.0 for no nuggets."""
    # 1.0 for an empty list is a vacuous truth; callers average over answerable questions only.
    if not nuggets:
        return 1.0
    hit = sum(1 for alts in nuggets if any(contains(answer_text, a) for a in alts))
    return hit / len(nuggets)


# ---------------------------------------------------------------------------------------------
# Citations and sentences
# ---------------------------------------------------------------------------------------------

_MARKER = re.compile(r"\[\s*(\d+(?:\s*,\s*\d+)*)\s*\]")

# A sentence ends at . ! ? (plus closing quotes/parens), then swallows any citation markers that
# follow, and must be followed by whitespace or the end of the text. A line break also ends one,
# and so does a run of markers followed by whitespace (the service writes "sentence [n] next"
# even when the cited sentence lacks end punctuation, e.g. a headline).
_CITE = r"\[\s*\d+(?:\s*,\s*\d+)*\s*\]"
_SENT_END = re.compile(
    rf"(?P<punct>[.!?]+[\"'\u201d\u2019)]*(?:\s*{_CITE})*(?=\s|$))|(?P<cites>(?:{_CITE})+(?=\s))|\n"
)
_NEXT_LOWER = re.compile(r"\s*[a-z]")


def parse_citations(text: str) -> list[int]:
    """Integers of every `[n]` / `[n, m]` marker in order of appearance, duplicates kept."""
    # Simple on purpose: markers inside quotation marks count too.
    out: list[int] = []
    for m in _MARKER.finditer(text):
        out.extend(int(x) for x in m.group(1).split(","))
    return out


def split_sentences(text: str) -> list[str]:
    """Answer sentences, each keeping the citation markers right after its end punctuation."""
    # Judgement call: a break followed by a lowercase word is no break ("U.S. troops", "e.g. the",
    # "Putin [1] and Trump [2] met"), which avoids the commonest false splits in news text.
    out: list[str] = []
    pos = 0
    for m in _SENT_END.finditer(text):
        if m.group() != "\n" and _NEXT_LOWER.match(text, m.end()):
            continue
        if m.group("cites") and not text[pos : m.start()].strip():
            continue  # leading markers belong to the sentence they precede
        piece = text[pos : m.end()].strip()
        if piece:
            out.append(piece)
        pos = m.end()
    tail = text[pos:].strip()
    if tail:
        out.append(tail)
    return out


def citation_validity(
    answer_text: str,
    passages: Sequence[Mapping[str, object]],
    documents: Mapping[str, str],
) -> float:
    """Share of markers citing a returned rank whose text equals its document slice; 1.0 if none."""
    cited = parse_citations(answer_text)
    if not cited:
        return 1.0
    by_rank: dict[int, Mapping[str, object]] = {}
    for p in passages:
        rank = p.get("rank")
        if isinstance(rank, int):
            by_rank.setdefault(rank, p)
    valid = 0
    for n in cited:
        p = by_rank.get(n)
        if p is not None and _exact_span(p, documents):
            valid += 1
    return valid / len(cited)


def _exact_span(passage: Mapping[str, object], documents: Mapping[str, str]) -> bool:
    """Whether the passage text is exactly documents[doc_id][start:end] with in-range offsets."""
    doc_id, start, end, text = (passage.get(f) for f in ("doc_id", "start", "end", "text"))
    if not isinstance(doc_id, str) or not isinstance(text, str):
        return False
    if not isinstance(start, int) or not isinstance(end, int):
        return False
    doc = documents.get(doc_id)
    if doc is None or not 0 <= start <= end <= len(doc):
        return False
    return doc[start:end] == text


_STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers him his how i if in into is it its itself just
    me more most my no nor not now of off on once only or other our out over own same she should
    so some such than that the their them then there these they this those through to too under
    until up very was we were what when where which while who whom why will with would you your
    said says say according don't doesn't didn't isn't wasn't aren't won't can't""".split()
)
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


def content_words(text: str) -> set[str]:
    """Lowercase word tokens minus stopwords and citation markers, with a crude plural strip."""
    out: set[str] = set()
    for tok in _TOKEN.findall(normalize(_MARKER.sub(" ", text))):
        tok = tok.removesuffix("'s")
        if tok in _STOPWORDS:
            continue
        if len(tok) > 3 and tok.endswith("s") and not tok.endswith("ss"):
            tok = tok[:-1]
        out.add(tok)
    return out


def sentence_supported(
    sentence: str,
    cited_texts: Sequence[str],
    evidence: Sequence[str],
    min_overlap: float = 0.5,
) -> bool:
    """Whether a cited passage holds an evidence quote or covers >= min_overlap of content words."""
    # No cited passages -> unsupported. A sentence without content words is unsupported unless
    # the evidence route applies.
    if not cited_texts:
        return False
    quotes = _norm_quotes(evidence)
    if quotes and any(_relevant(t, quotes) for t in cited_texts):
        return True
    words = content_words(sentence)
    if not words:
        return False
    pool: set[str] = set()
    for t in cited_texts:
        pool |= content_words(t)
    return len(words & pool) / len(words) >= min_overlap


def citation_support(
    answer_text: str,
    passages_by_rank: Mapping[int, str],
    evidence: Sequence[str],
    min_overlap: float = 0.5,
) -> float:
    """Share of answer sentences supported by their own citations; 0.0 if there are none."""
    # Citations to ranks missing from passages_by_rank are ignored here (citation_validity
    # penalises them); a sentence whose citations all point nowhere counts as unsupported.
    sentences = split_sentences(answer_text)
    if not sentences:
        return 0.0
    supported = 0
    for s in sentences:
        ranks = dict.fromkeys(parse_citations(s))
        cited = [passages_by_rank[n] for n in ranks if n in passages_by_rank]
        if sentence_supported(s, cited, evidence, min_overlap):
            supported += 1
    return supported / len(sentences)


# ---------------------------------------------------------------------------------------------
# Refusals and aggregates
# ---------------------------------------------------------------------------------------------


def refusal_accuracy(pairs: Sequence[tuple[bool, bool]]) -> float:
    """Share of gold-unanswerable questions the system refused; 0.0 if there are none."""
    said = [answerable for unanswerable_gold, answerable in pairs if unanswerable_gold]
    return sum(1 for a in said if not a) / len(said) if said else 0.0


def false_refusal_rate(pairs: Sequence[tuple[bool, bool]]) -> float:
    """Share of gold-answerable questions the system refused; 0.0 if there are none."""
    said = [answerable for unanswerable_gold, answerable in pairs if not unanswerable_gold]
    return sum(1 for a in said if not a) / len(said) if said else 0.0


def percentile(values: Iterable[float], p: float) -> float:
    """p-th percentile (0-100) with numpy's default linear interpolation; 0.0 for no values."""
    if not 0 <= p <= 100:
        raise ValueError(f"percentile p must be within [0, 100], got {p}")
    xs = sorted(values)
    if not xs:
        return 0.0
    idx = (len(xs) - 1) * p / 100.0
    lo = math.floor(idx)
    hi = min(lo + 1, len(xs) - 1)
    frac = idx - lo
    return float(xs[lo] + (xs[hi] - xs[lo]) * frac)


def mean(values: Iterable[float]) -> float:
    """Arithmetic mean; 0.0 for no values."""
    xs = list(values)
    return math.fsum(xs) / len(xs) if xs else 0.0
