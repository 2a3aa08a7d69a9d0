"""The generator contract: what every drafting backend implements, and the error it raises.

LLM generators (`generator_*.py`) import this module; `drafting` picks one and imports them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from ..retrieval.search import Hit


class GeneratorError(RuntimeError):
    """A generator could not draft an answer; the message says why, for `fallback_reason`."""


class Generator(Protocol):
    """Drafts an answer to `question` from `hits` (cited as [1]..[n] in their order)."""

    name: str
    model: str | None

    def stream(self, question: str, hits: list[Hit], choices: list[str] | None = None) -> Iterator[str]:
        """Text pieces of the draft as they are produced; raises GeneratorError when it cannot.
        With `choices`, the draft names the one the passages support (rag/answering/prompt.py)."""
        ...
