"""A generator over any OpenAI-compatible `/v1/chat/completions` server (streamed, via httpx).

Failures become `GeneratorError` with a sentence a person can act on; connection errors,
timeouts, 429 and 5xx answers are retried (with a short backoff) while no text has arrived yet.
The whole draft, retries included, must finish within `timeout_s`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx

from . import prompt
from ..config import Settings
from .generator import GeneratorError
from ..retrieval.search import Hit

# A reply longer than this is cut: answers are a few sentences, and a runaway server must not
# fill memory.
MAX_REPLY_CHARS = 20_000
BACKOFF_S = 0.5


class _Retryable(Exception):
    pass


class OpenAIGenerator:
    name = "openai"

    def __init__(
        self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 60.0, retries: int = 1,
        max_tokens: int = 160,
    ) -> None:
        self.url = chat_url(base_url)
        self.model: str | None = model
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.retries = retries
        self.max_tokens = max_tokens

    @classmethod
    def from_settings(cls, s: Settings) -> "OpenAIGenerator":
        key = s.llm_api_key.get_secret_value() if s.llm_api_key else None
        return cls(s.llm_base_url, s.llm_model, key, s.llm_timeout_s, s.llm_retries, s.llm_max_tokens)

    def stream(self, question: str, hits: list[Hit], choices: list[str] | None = None) -> Iterator[str]:
        body = {
            "model": self.model, "messages": prompt.messages(question, hits, choices), "max_tokens": self.max_tokens,
            "temperature": 0, "stream": True,
        }
        deadline = time.monotonic() + self.timeout_s
        for attempt in range(self.retries + 1):
            started = False
            try:
                for piece in self._attempt(body, deadline):
                    started = True
                    yield piece
                return
            except _Retryable as exc:
                left = deadline - time.monotonic()
                if started or attempt == self.retries or left <= BACKOFF_S:
                    tries = f" (after {attempt + 1} attempts)" if attempt else ""
                    raise GeneratorError(f"{exc}{tries}") from None
                time.sleep(min(BACKOFF_S * 2**attempt, left / 2))

    def _attempt(self, body: dict, deadline: float) -> Iterator[str]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise GeneratorError(f"the LLM server did not answer within {self.timeout_s:g} s")
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        timeout = httpx.Timeout(left, connect=min(left, 10.0))
        try:
            with httpx.Client(timeout=timeout) as client, \
                    client.stream("POST", self.url, json=body, headers=headers) as r:
                if r.status_code == 429 or r.status_code >= 500:
                    raise _Retryable(f"the LLM server at {self.url} answered HTTP {r.status_code}")
                if r.status_code != 200:
                    detail = " ".join(r.read().decode("utf-8", "replace").split())[:200]
                    raise GeneratorError(f"the LLM server at {self.url} answered HTTP {r.status_code}: {detail}")
                if r.headers.get("content-type", "").startswith("text/event-stream"):
                    yield from self._events(r, deadline)
                else:
                    yield _message_content(r.read())
        except httpx.TimeoutException:
            raise _Retryable(f"the LLM server at {self.url} did not answer within {self.timeout_s:g} s") from None
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise _Retryable(f"cannot reach the LLM server at {self.url} ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise GeneratorError(f"the LLM server at {self.url} failed: {type(exc).__name__}") from None

    def _events(self, r: httpx.Response, deadline: float) -> Iterator[str]:
        size = 0
        for line in r.iter_lines():
            if time.monotonic() > deadline:
                raise GeneratorError(f"the LLM server did not finish within {self.timeout_s:g} s")
            if not line.startswith("data:"):
                continue  # comments, `event:` and blank lines
            data = line[5:].strip()
            if data == "[DONE]":
                return
            piece = _delta_content(data)
            size += len(piece)
            if size > MAX_REPLY_CHARS:
                return
            yield piece


def chat_url(base_url: str) -> str:
    """`http://h:p`, `http://h:p/v1` or the full endpoint -> `.../v1/chat/completions`."""
    base = base_url.rstrip("/")
    if base.endswith("/chat/completions"):
        return base
    return f"{base}/chat/completions" if base.endswith("/v1") else f"{base}/v1/chat/completions"


def _delta_content(data: str) -> str:
    try:
        event = json.loads(data)
        if "error" in event:
            raise GeneratorError(f"the LLM server reported an error: {_short(event['error'])}")
        choices = event.get("choices") or []
        if not choices:
            return ""
        return choices[0].get("delta", {}).get("content") or ""
    except (ValueError, AttributeError, TypeError):
        raise GeneratorError("the LLM server sent a stream event that is not OpenAI-style JSON") from None


def _message_content(raw: bytes) -> str:
    try:
        reply = json.loads(raw)
        content = reply["choices"][0]["message"]["content"]
        if not isinstance(content, str):
            raise TypeError
        return content[:MAX_REPLY_CHARS]
    except (ValueError, KeyError, IndexError, TypeError):
        raise GeneratorError("the LLM server's reply is not an OpenAI-style chat completion") from None


def _short(error: object) -> str:
    message = error.get("message", error) if isinstance(error, dict) else error
    return " ".join(str(message).split())[:200]
