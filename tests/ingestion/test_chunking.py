import random
from pathlib import Path

import pytest

from rag.ingestion.chunking import Chunker, locate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def chunker(embedder):
    return Chunker(embedder.count_tokens, 200, 32, embedder.identity.max_tokens - 2)


def _check(chunker, embedder, text):
    chunks = chunker.split("d", text)
    assert chunks, "non-empty text gives chunks"
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert embedder.count_tokens(c.text) <= embedder.identity.max_tokens - 2
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert all(b.start > a.start for a, b in zip(chunks, chunks[1:]))
    return chunks


def test_seed_chunks_have_exact_offsets_and_fit_the_window(chunker, embedder):
    for path in sorted((ROOT / "seeds").glob("*.txt")):
        text = path.read_text()
        chunks = _check(chunker, embedder, text)
        covered = set()
        for c in chunks:
            covered.update(range(c.start, c.end))
        # every non-space character of the article is inside some chunk (nothing goes unsearched)
        assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


def test_chunks_overlap(chunker, embedder):
    text = (ROOT / "seeds" / "002_27d049c186dd46c9.txt").read_text()
    chunks = chunker.split("d", text)
    assert any(b.start < a.end for a, b in zip(chunks, chunks[1:]))


def test_pathological_texts(chunker, embedder):
    rng = random.Random(7)
    no_spaces = "".join(rng.choice("abcdefghij") for _ in range(5000))
    repeated = "The same sentence again. " * 300
    unicode_mix = "Zelenskyy’s “ironclad” — guarantees… 30-day ** ceasefire\n\n" * 80
    shouting = ("ASKED WHAT CONCESSIONS WERE BEING CONSIDERED, TRAMP SAID “WE WILL TALK ABOUT LAND.” " * 40)
    for text in (no_spaces, repeated, unicode_mix, shouting, "short"):
        _check(chunker, embedder, text)


def test_locate_searches_forward():
    text = "abc abc abc"
    assert locate(text, ["abc", "abc", "abc"]) == [(0, "abc"), (4, "abc"), (8, "abc")]
