"""The chat prompt (rag/answering/prompt.py): its turns, the numbered passages, and long passages cut."""

from __future__ import annotations

import re

from rag.answering.prompt import EXAMPLE, MAX_PASSAGE_CHARS, SYSTEM, messages, passage_text
from rag.retrieval.search import Hit
from rag.storage.store import ChunkRow
from rag.answering.verify import NOT_IN_PASSAGES, parse_citations

TEXTS = [
    "Five current and former Russian officials said the Kremlin could agree to a freeze.",
    "A draft agreement was nearly approved in April 2022 after talks in Istanbul.",
]


def _hits(texts: list[str]) -> list[Hit]:
    return [Hit(ChunkRow(i, f"doc{i}", 0, 0, len(t), t), 1.0, 0.5) for i, t in enumerate(texts)]


def test_turns_are_system_then_examples_then_the_question() -> None:
    turns = messages("  When was the draft nearly approved? ", _hits(TEXTS))
    assert [t["role"] for t in turns] == ["system", "user", "assistant", "user"]
    assert turns[0]["content"] == SYSTEM and NOT_IN_PASSAGES in SYSTEM
    last = turns[-1]["content"]
    assert re.findall(r"^\[(\d+)\] ", last, flags=re.M) == ["1", "2"]
    assert f"[2] {TEXTS[1]}" in last
    assert last.endswith("Question: When was the draft nearly approved?")


def test_the_example_answer_cites_only_its_own_passages() -> None:
    asked, answered = EXAMPLE
    shown = {int(n) for n in re.findall(r"^\[(\d+)\] ", asked, flags=re.M)}
    cited = set(parse_citations(answered))
    assert cited and cited <= shown


def test_short_passage_is_one_line_unchanged() -> None:
    assert passage_text("anything", "A line.\n\nAnother   line.") == "A line. Another line."


def test_long_passage_keeps_the_sentences_nearest_the_question_in_order() -> None:
    filler = [f"Filler sentence number {i} says nothing of note here at all." for i in range(30)]
    key = "The bridge over the Elm river will reopen on Friday."
    text = " ".join(filler[:20] + [key] + filler[20:])
    cut = passage_text("When will the Elm bridge reopen?", text)
    assert key in cut
    assert len(cut) <= MAX_PASSAGE_CHARS + 1
    kept = [s for s in filler if s in cut]
    assert kept == sorted(kept, key=filler.index)  # original order kept
    assert len(kept) < len(filler)
