"""Drafted answers: pick a generator, let it draft, verify the draft, fall back when it fails.

Whatever the generator does (slow, down, garbage, made-up citations), `draft` returns an answer:
- questions the passages cannot answer (`is_answerable`) are refused before any generator runs;
- a draft that says the passages do not answer is passed on as `answerable: false`;
- every other draft goes through `rag.verify`: unsupported sentences are left out and counted;
- when nothing supported remains, or the generator failed, the extractive answer is returned
  with `fallback: "extractive"` and the reason.

With choices (`draft_choice`), an LLM generator names the one the passages support; its reply is
verified the same way, and the pick stands only when the supported sentences name exactly one
choice. Otherwise the extractive pick (rag/answering/choices.py) is returned, with the reason.
"""

from __future__ import annotations

import logging
import re
from contextlib import closing
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from . import choices as mc
from .extractive import NOT_COVERED, ExtractiveGenerator
from ..config import GeneratorKind, Settings
from ..observe import stage
from .generator import Generator, GeneratorError
from ..retrieval.search import Hit
from ..schema import AnswerOut, ChoiceOut, Passage
from .verify import Verification, says_not_in_passages, starts_with_refusal, verify

log = logging.getLogger("rag.answering")


@dataclass(frozen=True)
class Retrieved:
    """The passages, sent before any answer text."""

    passages: list[Passage]


@dataclass(frozen=True)
class Delta:
    """A piece of the draft as it is generated (not yet verified)."""

    text: str


@dataclass(frozen=True)
class Drafted:
    """The verified answer, last of the events."""

    answer: AnswerOut
    answerable: bool


def pick_generator(
    settings: Settings, kind: GeneratorKind | None = None, idf: Callable[[str], float] | None = None
) -> Generator:
    """The generator `kind` (default: settings.generator), configured from settings."""
    kind = kind or settings.generator
    if kind is GeneratorKind.openai:
        from .generator_openai import OpenAIGenerator

        return OpenAIGenerator.from_settings(settings)
    if kind is GeneratorKind.local:
        from .generator_local import LocalGenerator

        return LocalGenerator.from_settings(settings)
    return extractive_from(settings, idf)


def extractive_from(settings: Settings, idf: Callable[[str], float] | None = None) -> ExtractiveGenerator:
    return ExtractiveGenerator(settings.min_relevance, settings.answer_sentences, idf)


def draft(
    question: str, hits: list[Hit], generator: Generator, fallback: ExtractiveGenerator,
    on_delta: Callable[[Delta], None] | None = None,
) -> tuple[AnswerOut, bool]:
    """The verified answer and whether the question was answerable (see the module docstring).

    `on_delta` sees the draft as it is generated; if it raises, drafting stops (the generator is
    closed) and the exception propagates: that is how a streaming client's disconnect cancels.
    """
    with stage("answer"), closing(draft_events(question, hits, generator, fallback)) as events:
        for event in events:
            if isinstance(event, Drafted):
                return event.answer, event.answerable
            if on_delta is not None:
                on_delta(event)
    raise AssertionError("draft_events ends with a Drafted event")  # pragma: no cover


def draft_events(
    question: str, hits: list[Hit], generator: Generator, fallback: ExtractiveGenerator
) -> Iterator[Delta | Drafted]:
    """Deltas of the draft as it is generated, then one Drafted event with the verified answer."""
    asked = {"generator": generator.name, "model": generator.model}
    if not fallback.answerable(question, hits):
        yield Drafted(AnswerOut(text=NOT_COVERED, citations=[], verified=True, **asked), False)
        return
    passages = {rank: h.chunk.text for rank, h in enumerate(hits, start=1)}
    pieces: list[str] = []
    reason: str | None = None
    try:
        for piece in generator.stream(question, hits):
            if piece:
                pieces.append(piece)
                yield Delta(piece)
    except GeneratorError as exc:
        reason = str(exc)
    except Exception as exc:  # a generator bug must degrade the answer, never fail the request
        log.exception("the %s generator failed", generator.name)
        reason = f"the {generator.name} generator failed unexpectedly ({type(exc).__name__})"
    text = "".join(pieces).strip()
    # A draft cut off by a failure is dropped whole, not checked.
    checked = verify(text, passages) if text and reason is None else Verification(())
    if reason is None:
        if not text:
            reason = "the model returned no text"
        elif starts_with_refusal(text) or (not checked.kept and says_not_in_passages(text)):
            yield Drafted(AnswerOut(text=NOT_COVERED, citations=[], verified=True, **asked), False)
            return
        elif checked.kept:
            answer = AnswerOut(
                text=checked.text, citations=checked.citations, verified=True, unsupported=checked.unsupported,
                recited=checked.recited, **asked,
            )
            yield Drafted(answer, True)
            return
        elif not checked.sentences:
            reason = "the draft had no sentence to check"
        else:
            n = len(checked.sentences)
            reason = f"none of the {n} drafted sentence{'s' if n != 1 else ''} was supported by the passages it cites"
    yield Drafted(_fallback_answer(question, hits, fallback, passages, reason, checked.unsupported, asked), True)


def _fallback_answer(
    question: str, hits: list[Hit], fallback: ExtractiveGenerator, passages: dict[int, str], reason: str,
    unsupported: int, asked: dict,
) -> AnswerOut:
    text = fallback.text(question, hits)
    checked = verify(text, passages)
    if checked.kept:
        text, citations, verified = checked.text, checked.citations, True
    else:  # cannot happen for sentences copied from the passages; shown unverified rather than lost
        citations, verified = sorted({n for s in checked.sentences for n in s.cited}), False
    return AnswerOut(
        text=text, citations=citations, verified=verified, unsupported=unsupported,
        fallback=fallback.name, fallback_reason=reason, **asked,
    )


def draft_choice(
    question: str, choices: list[str], hits: list[Hit], generator: Generator,
    idf: Callable[[str], float] | None = None,
) -> ChoiceOut:
    """The multiple-choice answer: the extractive pick, or the LLM's once verified (module docstring)."""
    extractive = mc.pick(question, choices, hits, idf)
    if isinstance(generator, ExtractiveGenerator):
        return extractive
    asked = {"generator": generator.name, "model": generator.model}
    reason: str | None = None
    try:
        text = "".join(generator.stream(question, hits, choices=choices)).strip()
    except GeneratorError as exc:
        text, reason = "", str(exc)
    except Exception as exc:  # a generator bug must degrade the answer, never fail the request
        log.exception("the %s generator failed", generator.name)
        text, reason = "", f"the {generator.name} generator failed unexpectedly ({type(exc).__name__})"
    if reason is None:
        picked, reason = _verified_pick(text, choices, hits)
        if picked is not None:
            index, checked = picked
            return extractive.model_copy(update={
                "picked": choices[index], "index": index, "abstained": False, "text": checked.text,
                "citations": checked.citations, "verified": True, **asked,
            })
    return extractive.model_copy(update={**asked, "fallback": "extractive", "fallback_reason": reason})


def _verified_pick(text: str, choices: list[str], hits: list[Hit]) -> tuple[tuple[int, Verification] | None, str]:
    """(choice index, the verified reply) when the reply's supported sentences name exactly one
    choice; else None and why not."""
    if not text:
        return None, "the model returned no text"
    if starts_with_refusal(text):
        return None, "the model said the passages do not say which choice is right"
    checked = verify(text, {rank: h.chunk.text for rank, h in enumerate(hits, start=1)})
    if not checked.kept:
        return None, "the model's pick was not supported by the passages it cites"
    named = {i for s in checked.kept if (i := named_choice(s.shown, choices)) is not None}
    if len(named) != 1:
        return None, "the model's supported sentences name no choice" if not named else "the model named several choices"
    return (named.pop(), checked), ""


_QUOTES = str.maketrans("", "", "\"'“”‘’«»")


def named_choice(text: str, choices: list[str]) -> int | None:
    """The one choice `text` names (case, quotes and spacing aside; a choice inside a longer named
    choice does not count); None when it names none or several."""
    flat = " ".join(text.lower().translate(_QUOTES).split())
    found = []
    for i, choice in enumerate(choices):
        c = " ".join(choice.lower().translate(_QUOTES).split())
        if c and re.search(rf"(?<!\w){re.escape(c)}(?!\w)", flat):
            found.append((i, c))
    longest = [(i, c) for i, c in found if not any(c != o and c in o for _, o in found)]
    return longest[0][0] if len(longest) == 1 else None
