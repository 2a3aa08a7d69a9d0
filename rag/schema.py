"""The JSON contract spoken by `POST /query`, `rag ask --json` and the evaluation harness.

Nothing else in the project defines a response shape.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_QUESTION_CHARS = 2000
MAX_K = 50


class Query(BaseModel):
    """A question and how much to return."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(..., min_length=1, max_length=MAX_QUESTION_CHARS)
    k: int = Field(5, ge=1, le=MAX_K)
    answer: bool = True

    @field_validator("question")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("question must not be blank")
        return v


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


class AnswerOut(BaseModel):
    """A short drafted answer whose `[n]` markers cite passages by rank."""

    text: str
    citations: list[int]
    generator: str = "extractive"


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
