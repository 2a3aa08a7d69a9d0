"""The JSON of standing questions: what `POST /watches` takes, what the routes and the CLI show,
and the body of each webhook delivery."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from . import AnswerOut, Passage, Question

SECRET_PREFIX = "whsec_"
# Standard Webhooks: a secret of 24 to 64 random bytes, base64, prefixed whsec_.
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 24, 64
MAX_URL_CHARS = 2000
_B64 = "[A-Za-z0-9+/]"
# Exactly the base64 of 24 to 64 bytes: 8..20 groups of 4 with an optional padded tail, or 21
# groups with at most one byte more. Stated in the OpenAPI document; the server applies it too.
SECRET_PATTERN = (
    rf"^{SECRET_PREFIX}(?:(?:{_B64}{{4}}){{8,20}}(?:{_B64}{{2}}==|{_B64}{{3}}=)?|(?:{_B64}{{4}}){{21}}(?:{_B64}{{2}}==)?)$"
)


class WatchFilters(BaseModel):
    """Which articles may answer the question (the same meaning as on /query)."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(None, max_length=2000, description="only articles whose source starts with this")
    published_after: date | None = Field(None, description="inclusive")
    published_before: date | None = Field(None, description="inclusive")
    include_undated: bool = True

    @model_validator(mode="after")
    def _dates_in_order(self) -> "WatchFilters":
        if self.published_after and self.published_before and self.published_after > self.published_before:
            raise ValueError("published_after is later than published_before")
        return self


class WatchIn(BaseModel):
    """A standing question and where its news goes."""

    model_config = ConfigDict(extra="forbid")

    question: Question
    url: str = Field(..., min_length=1, max_length=MAX_URL_CHARS, description="the webhook: an http(s) URL")
    secret: str | None = Field(
        None, json_schema_extra={"pattern": SECRET_PATTERN}, description=f"signing secret, {SECRET_PREFIX}<base64 of {MIN_SECRET_BYTES}..{MAX_SECRET_BYTES} bytes>; "
        "generated when absent and shown once, in the response to this request",
    )
    min_relevance: float | None = Field(
        None, ge=0.0, le=1.0, description="a stricter relevance bar than RAG_MIN_RELEVANCE (never a looser one)"
    )
    filters: WatchFilters = Field(default_factory=WatchFilters)

    @field_validator("secret")
    @classmethod
    def _secret_readable(cls, v: str | None) -> str | None:
        if v is not None:
            secret_bytes(v)
        return v


def secret_bytes(secret: str) -> bytes:
    """The key of a whsec_ secret; ValueError saying the form otherwise."""
    form = f"the secret must be {SECRET_PREFIX} followed by base64 of {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes"
    if not re.fullmatch(SECRET_PATTERN, secret):
        raise ValueError(form)
    try:
        return base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(form) from None


class WatchOut(BaseModel):
    id: str
    question: str
    url: str
    min_relevance: float | None = None
    filters: WatchFilters
    created: str = Field(..., description="ISO UTC time")
    notified: int = Field(0, description="notifications queued for it so far")


class WatchCreated(WatchOut):
    secret: str = Field(..., description="the signing secret; not shown again")


class PreviousAnswer(BaseModel):
    """The answer a notification updates: the watch's last one, or the archive's when it was made."""

    event_id: str | None = Field(None, description="the delivery that carried it; null: the answer when the watch was made")
    answer: AnswerOut
    passages: list[Passage]


class Notification(BaseModel):
    """`data` of a `watch.answer` delivery: the new cited passages and answer, and what they update."""

    watch_id: str
    question: str
    documents: list[str] = Field(..., description="the new or changed articles that support the answer")
    answer: AnswerOut
    passages: list[Passage] = Field(..., description="the passages the answer cites, by their ranks")
    updates: PreviousAnswer | None = Field(None, description="the watch's previous answer, if it had one")


class WatchEventOut(BaseModel):
    """One delivery: its stable id (the webhook-id header), state and body."""

    id: str
    watch_id: str
    type: Literal["watch.answer", "watch.test"]
    created: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status: int | None = Field(None, description="the receiver's last HTTP status")
    last_error: str | None = None
    next_attempt: str | None = Field(None, description="when a pending delivery is tried next (ISO UTC)")
    delivered: str | None = None
    payload: dict = Field(..., description="the JSON body sent: {type, timestamp, data}")
