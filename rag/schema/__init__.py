"""The JSON contract spoken by `POST /query`, `POST /timeline`, `rag ask --json`, `rag timeline --json`
and the evaluation harness; `schema.watches` holds the standing questions' (`/watches`, the
webhook deliveries).

Nothing else in the project defines a response shape. May import `config` and `dates` only, so
the client and every layer can speak it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from .. import dates
from ..config import GeneratorKind, RetrievalMode

MAX_QUESTION_CHARS = 2000


def _not_blank(v: str) -> str:
    if not v.strip():
        raise ValueError("question must not be blank")
    return v


# A question as /query and a standing question take it: 1..2,000 characters, not only whitespace.
Question = Annotated[str, Field(min_length=1, max_length=MAX_QUESTION_CHARS), AfterValidator(_not_blank)]
MAX_K = 50


def _read_when(v: object) -> object:
    """A string in any form `rag.dates` reads; a date stays a date, a time makes a datetime."""
    if not isinstance(v, str):
        return v
    try:
        found = dates.normalise(v)
    except dates.DateError as exc:
        raise ValueError(str(exc)) from None
    return date.fromisoformat(found) if len(found) == 10 else dates.instant(found)


def _published_in_order(after: date | None, before: date | None) -> None:
    if after and before and after > before:
        raise ValueError("published_after is later than published_before")


# The limits /query and /timeline share: which articles a question is asked over, and as of when.
Source = Annotated[str | None, Field(max_length=2000, description="only articles whose source starts with this")]
PublishedAfter = Annotated[date | None, Field(description="inclusive; undated articles are kept (see include_undated)")]
PublishedBefore = Annotated[date | None, Field(description="inclusive; undated articles are kept (see include_undated)")]
IncludeUndated = Annotated[bool, Field(
    description="keep articles with no date (every question is asked as of a time, so this always applies)"
)]
AsOf = Annotated[datetime | date | None, BeforeValidator(_read_when), Field(
    description="answer as of this date or datetime (default now): later articles are left out, "
    "recency is measured from it; also YYYY/MM/DD, RFC 822 and 'Sep 6, 2022'",
)]
# Multiple-choice options: a quiz offers two to ten; one longer than a sentence is no option.
MIN_CHOICES, MAX_CHOICES = 2, 10
MAX_CHOICE_CHARS = 300


class Query(BaseModel):
    """A question and how much to return."""

    model_config = ConfigDict(extra="forbid")

    question: Question
    k: int = Field(5, ge=1, le=MAX_K)
    answer: bool = True
    mode: RetrievalMode | None = Field(None, description="hybrid | dense | lexical; default from settings")
    source: Source = None
    doc_ids: list[str] | None = Field(None, max_length=1000, description="only these articles")
    published_after: PublishedAfter = None
    published_before: PublishedBefore = None
    include_undated: IncludeUndated = True
    recency: float | None = Field(
        None, ge=0.0, le=1.0, description="weight of recency against relevance; 0 = off; default RAG_RECENCY"
    )
    as_of: AsOf = None
    choices: list[str] | None = Field(
        None, min_length=MIN_CHOICES, max_length=MAX_CHOICES,
        description=f"multiple-choice options ({MIN_CHOICES} to {MAX_CHOICES}, each 1..{MAX_CHOICE_CHARS} characters): "
        "the response's `choice` says which one the passages support",
    )
    generator: GeneratorKind | None = Field(None, description="extractive | openai | local; default from settings")
    time_window: bool = Field(
        True, description="prefer articles from a time the question names ('this week', 'in March'), resolved "
        "against as_of; a soft ranking prior, not a filter; off when published_after/published_before are given",
    )
    debug: bool = Field(False, description="add `debug`: how the search met its date limit")
    since: date | None = Field(
        None, description="only what articles published on or after this date add to the coverage before it: "
        "passages whose sentences earlier articles do not already state, each naming the article it `updates`",
    )

    @field_validator("choices")
    @classmethod
    def _choices_readable(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        for i, choice in enumerate(v):
            if not choice.strip():
                raise ValueError(f"choice {i + 1} is blank")
            if len(choice) > MAX_CHOICE_CHARS:
                raise ValueError(f"choice {i + 1} is longer than {MAX_CHOICE_CHARS} characters")
        if len({" ".join(c.lower().split()) for c in v}) < len(v):
            raise ValueError("two choices are the same")
        return v

    @model_validator(mode="after")
    def _dates_in_order(self) -> "Query":
        _published_in_order(self.published_after, self.published_before)
        if self.since and self.as_of and self.since > (self.as_of.date() if isinstance(self.as_of, datetime) else self.as_of):
            raise ValueError("since is later than as_of")
        return self


class Passage(BaseModel):
    """One retrieved span of one article; `text == document.text[start:end]` exactly."""

    rank: int
    score: float
    doc_id: str
    chunk_id: str
    title: str | None = None
    source: str | None = None
    published: str | None = None
    start: int
    end: int
    text: str
    also_in: list[str] = Field(default_factory=list, description="near-duplicate articles with the same story")
    updates: str | None = Field(None, description="with `since`: the earlier article this passage updates, if any")


class AnswerOut(BaseModel):
    """A short drafted answer whose `[n]` markers cite passages by rank."""

    text: str
    citations: list[int]
    generator: str = Field("extractive", description="the generator asked to draft the answer")
    model: str | None = Field(None, description="the model behind an LLM generator")
    verified: bool = Field(False, description="every sentence of `text` was checked against the passages it cites")
    unsupported: int = Field(0, ge=0, description="drafted sentences left out: unsupported by the passages they cite")
    recited: int = Field(0, ge=0, description="sentences kept after re-citing them to the passage that supports them")
    fallback: str | None = Field(None, description="the generator whose text this is when the asked one failed")
    fallback_reason: str | None = Field(None, description="why the fallback stepped in")


class ChoiceScore(BaseModel):
    """How well the passages support one choice, and the passages that state it."""

    choice: str
    score: float = Field(..., ge=0.0, description="support, 0 = not stated by any passage")
    citations: list[int] = Field(default_factory=list, description="ranks of the passages that support it")


class ChoiceOut(BaseModel):
    """The multiple-choice answer: the choice the passages support best, or an abstention."""

    picked: str | None = Field(None, description="the choice, as given; null when abstained")
    index: int | None = Field(None, description="its position in `choices`, from 0")
    abstained: bool = Field(..., description="no choice is supported: the articles don't say which")
    text: str = Field(..., description="the pick with its citations, or the abstention")
    citations: list[int] = Field(default_factory=list)
    scores: list[ChoiceScore] = Field(default_factory=list, description="every choice, in the order given")
    generator: str = Field("extractive", description="who picked: the extractive scorer or the LLM")
    model: str | None = None
    verified: bool = Field(False, description="the pick was checked against the passages it cites")
    fallback: str | None = Field(None, description="the picker whose pick this is when the asked one failed")
    fallback_reason: str | None = None


class RerankOut(BaseModel):
    """Whether the reranking stage re-ordered the passages; if not, why (the first-stage order stands)."""

    used: bool
    error: str | None = None


class TimeWindowOut(BaseModel):
    """The days a question names, resolved against its as-of time, which ranking preferred."""

    start: datetime
    end: datetime
    words: str = Field(..., description="the words of the question that named it")


class SearchPlanOut(BaseModel):
    """How a search met its date limit: segments by the way each was searched (skip: wholly
    outside; all: wholly inside, unfiltered; exact, pre, post: filtered by the share admitted;
    listed: limited to listed ids) and the word index's way (fts5, or bm25s:all|some|none)."""

    segments: dict[str, int]
    lexical: str | None = None


class QueryResponse(BaseModel):
    question: str
    answerable: bool
    answer: AnswerOut | None
    passages: list[Passage]
    choice: ChoiceOut | None = Field(None, description="present when the query gave `choices`")
    rerank: RerankOut | None = Field(
        None, description="present when a reranker is set: false `used` means the passages are in first-stage order"
    )
    time_window: TimeWindowOut | None = Field(None, description="the time the question names, when it names one")
    debug: SearchPlanOut | None = Field(None, description="present when the query asked for `debug`")


# Passages a timeline gathers by default: one an article at the head of the list, so up to 20
# articles, the several reports of a few developments; at most MAX_K, as for /query.
TIMELINE_K = 20
Day = date  # a field named `date` below would shadow the type in its own annotation


class TimelineQuery(BaseModel):
    """A question or topic whose story to lay out as dated events, as of a time."""

    model_config = ConfigDict(extra="forbid")

    question: Question
    k: int = Field(
        TIMELINE_K, ge=1, le=MAX_K, description="passages to gather before grouping (one an article at the head)"
    )
    mode: RetrievalMode | None = Field(None, description="hybrid | dense | lexical; default from settings")
    source: Source = None
    published_after: PublishedAfter = None
    published_before: PublishedBefore = None
    include_undated: IncludeUndated = True
    as_of: AsOf = Field(
        None, description="the story as of this date or datetime (default now): later articles are left out; "
        "also YYYY/MM/DD, RFC 822 and 'Sep 6, 2022'",
    )

    @model_validator(mode="after")
    def _dates_in_order(self) -> "TimelineQuery":
        _published_in_order(self.published_after, self.published_before)
        return self


class CitedSentence(BaseModel):
    """One sentence of an article; `text == document.text[start:end]` exactly."""

    doc_id: str
    start: int
    end: int
    text: str
    title: str | None = None
    source: str | None = Field(None, description="the article's URL or file")
    published: str | None = None


class TimelineArticle(BaseModel):
    """An article of the story, with the republished copies folded into it."""

    doc_id: str
    title: str | None = None
    source: str | None = Field(None, description="the article's URL or file")
    published: str | None = None
    relevance: float = Field(..., description="cosine of the question and the article's best passage")
    also_in: list[str] = Field(default_factory=list, description="near-duplicate articles with the same story")


class TimelineEvent(BaseModel):
    """One development of the story: its articles, oldest first, and the sentence that best says it."""

    date: Day = Field(..., description="the day (UTC) its earliest article was published")
    sentence: CitedSentence = Field(..., description="its key sentence: the one of its articles closest to the question")
    articles: list[TimelineArticle]


class TimelineResponse(BaseModel):
    question: str
    answerable: bool = Field(
        ..., description="the articles cover the question (the rule of /query); when false, nothing is listed"
    )
    events: list[TimelineEvent] = Field(..., description="oldest first")
    undated: list[TimelineArticle] = Field(
        default_factory=list, description="relevant articles without a date, which no timeline can place"
    )


class DocumentSummary(BaseModel):
    id: str
    title: str | None = None
    source: str | None = None
    published: str | None = None
    author: str | None = Field(None, description="as the source states it (a web page's byline)")
    chunks: int


class DocumentOut(DocumentSummary):
    text: str


class FeedStatus(BaseModel):
    """One watched feed (RAG_FEEDS): when it was last polled, last read, and what went wrong."""

    url: str
    last_poll: str | None = Field(None, description="ISO UTC time of the last poll")
    last_success: str | None = Field(None, description="ISO UTC time of the last poll that read the feed")
    error: str | None = Field(None, description="the last poll's error, or the pages it could not read")
    failures: int = Field(0, description="polls failed in a row (polling backs off)")
    articles: int = Field(0, description="entries the feed lists now whose articles are ingested")


class Health(BaseModel):
    status: str = "ok"
    documents: int
    chunks: int
    model: str
    feeds: list[FeedStatus] | None = Field(None, description="present when the server watches feeds")


class ErrorOut(BaseModel):
    """Every 4xx body: one sentence a person can act on, plus details where useful."""

    error: str
    detail: list[dict] | None = None


class IngestedDocument(BaseModel):
    id: str
    status: Literal["added", "replaced", "unchanged"]
    chunks: int


class IngestOut(BaseModel):
    """What one write changed: added, replaced (content changed) or unchanged (same content hash)."""

    documents: list[IngestedDocument]
    added: list[str]
    replaced: list[str]
    unchanged: list[str]
    chunks: int = Field(description="chunks embedded by this request (unchanged documents cost none)")
    seconds: float


class DeletedOut(BaseModel):
    id: str
    deleted: bool = True
