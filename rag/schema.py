"""The JSON contract spoken by `POST /query`, `rag ask --json` and the evaluation harness.

Nothing else in the project defines a response shape.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .config import GeneratorKind, RetrievalMode

MAX_QUESTION_CHARS = 2000
MAX_K = 50


class Query(BaseModel):
    """A question and how much to return."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(..., min_length=1, max_length=MAX_QUESTION_CHARS)
    k: int = Field(5, ge=1, le=MAX_K)
    answer: bool = True
    mode: RetrievalMode | None = Field(None, description="hybrid | dense | lexical; default from settings")
    source: str | None = Field(None, max_length=2000, description="only articles whose source starts with this")
    doc_ids: list[str] | None = Field(None, max_length=1000, description="only these articles")
    published_after: date | None = Field(None, description="inclusive; undated articles are kept (see include_undated)")
    published_before: date | None = Field(None, description="inclusive; undated articles are kept (see include_undated)")
    include_undated: bool = Field(True, description="keep articles with no date when a date limit is set")
    recency: float = Field(0.0, ge=0.0, le=1.0, description="0 = off; weight of recency against relevance")
    generator: GeneratorKind | None = Field(None, description="extractive | openai | local; default from settings")

    @field_validator("question")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("question must not be blank")
        return v

    @model_validator(mode="after")
    def _dates_in_order(self) -> "Query":
        if self.published_after and self.published_before and self.published_after > self.published_before:
            raise ValueError("published_after is later than published_before")
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


class QueryResponse(BaseModel):
    question: str
    answerable: bool
    answer: AnswerOut | None
    passages: list[Passage]


class DocumentSummary(BaseModel):
    id: str
    title: str | None = None
    source: str | None = None
    published: str | None = None
    chunks: int


class DocumentOut(DocumentSummary):
    text: str


class Health(BaseModel):
    status: str = "ok"
    documents: int
    chunks: int
    model: str


class ErrorOut(BaseModel):
    """Every 4xx body: one sentence a person can act on, plus details where useful."""

    error: str
    detail: list[dict] | None = None
