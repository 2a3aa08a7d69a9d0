"""The chat prompts the LLM generators send: numbered passages, the question, short cited answers;
with choices, the one choice the passages support, copied as written and cited."""

from __future__ import annotations

from ..retrieval.search import Hit
from ..text import content_stems, sentences
from .verify import NOT_IN_PASSAGES

# A passage longer than this is cut to its sentences that share most words with the question
# (kept in their order), so five passages make about 900 prompt tokens (~7 s at 140 tok/s).
MAX_PASSAGE_CHARS = 800

SYSTEM = (
    "You answer questions about news articles using only the numbered passages. "
    "Answer in one to three short sentences that give every specific fact the passages offer in answer: "
    "who, what, where, when, how many, and each item of a list. "
    "End each sentence with the number of the passage that says it, like [2]. "
    "Copy names, numbers and phrases exactly as the passage writes them. "
    f"If no passage answers the question, reply: {NOT_IN_PASSAGES}"
)
# One worked example as a prior chat turn: small models (Qwen2.5 1.5B) follow the citation format
# far more reliably with it. Tried on the gold set: an added refusal example made Qwen refuse
# answerable questions, so there is none; refusals still come from the rule above.
EXAMPLE = (
    "Passages:\n\n[1] Traffic was diverted through the city centre on Monday.\n\n"
    "[2] The mayor said the Elm Street bridge would reopen on Friday after repairs costing $2 million.\n\n"
    "Question: When will the Elm Street bridge reopen?",
    "The Elm Street bridge will reopen on Friday, after repairs costing $2 million [2].",
)


CHOICE_SYSTEM = (
    "You answer multiple-choice questions about news articles using only the numbered passages. "
    "Reply with the one choice the passages say is right, copied exactly as it is written in the list, "
    "followed by the number of the passage that says it, like [2]. "
    "Then give the passage's words that say it in one short sentence, ending with the same number. "
    f"If no passage says which choice is right, reply: {NOT_IN_PASSAGES}"
)
CHOICE_EXAMPLE = (
    EXAMPLE[0] + "\n\nChoices:\n- Monday\n- Wednesday\n- Friday\n- Sunday",
    "Friday [2]. The mayor said the Elm Street bridge would reopen on Friday [2].",
)


def messages(question: str, hits: list[Hit], choices: list[str] | None = None) -> list[dict[str, str]]:
    """System rules, the worked example, then the passages `[1]..[n]` (ranks as in the response);
    with `choices`, the multiple-choice rules and the choices after the question."""
    blocks = [f"[{rank}] {passage_text(question, hit.chunk.text)}" for rank, hit in enumerate(hits, start=1)]
    user = "Passages:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question.strip()}"
    system, example = SYSTEM, EXAMPLE
    if choices:
        user += "\n\nChoices:\n" + "\n".join(f"- {' '.join(c.split())}" for c in choices)
        system, example = CHOICE_SYSTEM, CHOICE_EXAMPLE
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": example[0]},
        {"role": "assistant", "content": example[1]},
        {"role": "user", "content": user},
    ]


def passage_text(question: str, text: str, limit: int = MAX_PASSAGE_CHARS) -> str:
    """The passage on one line, or, when longer than `limit`, its sentences nearest the question."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    q = set(content_stems(question))
    sents = [" ".join(s.text.split()) for s in sentences(text)]
    order = sorted(range(len(sents)), key=lambda i: (-len(q & set(content_stems(sents[i]))), i))
    keep: set[int] = set()
    used = 0
    for i in order:
        if used + len(sents[i]) > limit and keep:
            continue
        keep.add(i)
        used += len(sents[i]) + 1
    return " ".join(sents[i][:limit] for i in sorted(keep))
