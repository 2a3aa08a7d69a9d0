"""Answering: turns retrieved passages into a short cited answer, or an honest refusal.

`extractive` quotes the best sentences offline and is the offline generator; `choices` picks the
multiple-choice option the passages state; `generator` is the contract drafters meet, the LLM ones
one per file (`generator_openai`, `generator_local`, with `prompt` and `llm_models`); `verify` checks every
drafted sentence against its cited passages; `drafting` picks a generator, verifies its draft and
falls back. May import `rag.retrieval` (for `Hit`), `rag.schema` and the foundation; never storage
or ingestion directly.
"""

from .choices import pick as pick_choice
from .drafting import Delta, Drafted, Retrieved, draft, draft_choice, draft_events, extractive_from, pick_generator
from .extractive import NOT_COVERED, ExtractiveGenerator, extractive_answer, is_answerable
from .generator import Generator, GeneratorError
from .verify import Verification, parse_citations, verify

__all__ = [
    "Delta", "Drafted", "ExtractiveGenerator", "Generator", "GeneratorError", "NOT_COVERED", "Retrieved", "Verification", "draft",
    "draft_choice", "draft_events", "pick_choice", "extractive_answer", "extractive_from", "is_answerable", "parse_citations", "pick_generator",
    "verify",
]
