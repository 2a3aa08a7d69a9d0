"""The offline generator: the extractive answer of `rag.answer`, streamed as one piece.

It also owns the refusal test (`is_answerable`) that runs before any generator is asked, and is
the fallback whenever an LLM generator fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from .extractive import extractive_answer, is_answerable
from ..retrieval.search import Hit


class ExtractiveGenerator:
    name = "extractive"
    model: str | None = None

    def __init__(
        self, min_relevance: float, max_sentences: int = 3, idf: Callable[[str], float] | None = None
    ) -> None:
        self.min_relevance = min_relevance
        self.max_sentences = max_sentences
        self.idf = idf

    def answerable(self, question: str, hits: list[Hit]) -> bool:
        """The retrieval-side refusal test: are the passages close enough to answer at all?"""
        return is_answerable(question, hits, self.min_relevance)

    def text(self, question: str, hits: list[Hit]) -> str:
        return extractive_answer(question, hits, self.min_relevance, self.max_sentences, self.idf).text

    def stream(self, question: str, hits: list[Hit], choices: list[str] | None = None) -> Iterator[str]:
        """The extractive answer; choices are picked by rag/answering/choices.py, not here."""
        yield self.text(question, hits)
