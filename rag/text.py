"""Small text helpers shared by retrieval and answers: words, stems, sentences with offsets."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import Stemmer

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)
# A sentence ends at . ! ? (plus closing quotes/brackets) before whitespace, or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*(?=\s)|\n+")

STOPWORDS = frozenset(
    """a about above after again against all am an and any are aren't as at be because been before
    being below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its itself
    just let me more most my myself no nor not now of off on once only or other our ours ourselves out
    over own same she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where which while who whom
    why will with would you your yours yourself yourselves also said says say according s t
    """.split()
)

_stemmer = Stemmer.Stemmer("english")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    return _stemmer.stemWord(word.lower().replace("’", "'").removesuffix("'s"))


def words(text: str) -> list[str]:
    return _WORD.findall(text)


@lru_cache(maxsize=16384)
def content_stems(text: str) -> tuple[str, ...]:
    """Stems of the words that carry meaning (no stopwords), in order, lower case. Cached: the
    answer and its verification re-read the same passages and sentences query after query."""
    return tuple(stem(w) for w in words(text) if w.lower() not in STOPWORDS and len(w) > 1 or w.isdigit())


@lru_cache(maxsize=4096)
def sentences_cached(text: str) -> tuple["Sentence", ...]:
    """`sentences` for texts seen again and again (stored passages)."""
    return tuple(sentences(text))


@dataclass(frozen=True)
class Sentence:
    start: int  # offsets within the text that was split
    end: int
    text: str


ABBREVIATIONS = frozenset("mr mrs ms dr st gen sen rep gov jr sr no vs etc prof lt col sgt capt jan feb aug sept oct nov dec".split())


def sentences(text: str) -> list[Sentence]:
    """Sentences with exact offsets (`text[s.start:s.end] == s.text`), surrounding space trimmed."""
    out: list[Sentence] = []
    pos = 0
    for m in _SENTENCE_END.finditer(text):
        if m.group(0).startswith("\n") or _ends_sentence(text, m.start(), m.end()):
            _append(out, text, pos, m.end())
            pos = m.end()
    _append(out, text, pos, len(text))
    return out


def _ends_sentence(text: str, stop: int, after: int) -> bool:
    """False after an abbreviation ("U.S.", "Mr.") or when a lower-case word follows."""
    nxt = text[after:after + 40].lstrip()
    if nxt[:1].islower():
        return False
    if text[stop - 1] != ".":
        return True
    word = text[max(0, stop - 12):stop - 1].split()[-1:] or [""]
    token = word[0].lstrip("(\"“'‘")
    return not (token.lower() in ABBREVIATIONS or re.fullmatch(r"(?:[A-Za-z]\.)*[A-Za-z]", token))


def _append(out: list[Sentence], text: str, start: int, end: int) -> None:
    piece = text[start:end]
    stripped = piece.strip()
    if stripped:
        s = start + (len(piece) - len(piece.lstrip()))
        out.append(Sentence(s, s + len(stripped), stripped))

# Titles are prepended to what is embedded and word-indexed (never to the stored passage text):
# "Kursk foothold" alone says little; under its headline it says which story it belongs to.
# Capped so title + chunk stays inside the model window.
TITLE_MAX_CHARS = 160


def context_text(title: str | None, chunk_text: str) -> str:
    """What is embedded and word-indexed for a chunk: its article's title, then the chunk."""
    if not title or chunk_text.startswith(title):
        return chunk_text
    return f"{title[:TITLE_MAX_CHARS]}\n{chunk_text}"


# Number words become digits on both sides, so "five officials" matches "5 officials". "one" stays
# a word: it is a pronoun too often ("no one", "the one who") to be held to the numbers rule.
NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen twenty".split()
    )
    if i > 1
}
_NUMBER_WORD = re.compile(r"\b(" + "|".join(NUMBER_WORDS) + r")\b", re.IGNORECASE)


def digits_for_number_words(text: str) -> str:
    """'five officials' -> '5 officials' (two to twenty), so numbers compare alike however written."""
    return _NUMBER_WORD.sub(lambda m: NUMBER_WORDS[m.group().lower()], text)
