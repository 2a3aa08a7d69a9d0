"""API keys and request limits: what makes the service safe to leave running.

Keys (`RAG_API_KEYS`): comma-separated, or `@/path/to/file` with one key per line. Only their
sha256 digests are kept; a presented key is hashed and compared with every digest in constant
time. With keys set, writes need `Authorization: Bearer <key>`; `RAG_PROTECT_READS=true` extends
that to reads (`/health`, `/docs` and `/openapi.json` stay open).

Limits: the request body (`RAG_MAX_BODY_BYTES`; `RAG_MAX_UPLOAD_BYTES` for a multipart upload to
`POST /documents`) is checked against Content-Length before anything is read, and counted while it
streams in, so a missing or lying Content-Length cannot get past it either.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.config import Settings

from .errors import send_error

MIN_KEY_CHARS = 16
UPLOAD_PATH = "/documents"
# Room for the multipart boundaries and part headers around an upload of the maximum size.
MULTIPART_SLACK = 64 * 1024


class SecurityConfigError(ValueError):
    """Keys or limits that cannot be used; the message says which setting and why."""


def human_bytes(n: int) -> str:
    """'10 MiB', '1500 bytes': limits quoted in error messages."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def _parse_keys(raw: str) -> list[str]:
    """Plain keys from `k1,k2` or from the file named by `@path` (blank lines and # comments skipped)."""
    raw = raw.strip()
    if raw.startswith("@"):
        path = Path(raw[1:]).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise SecurityConfigError(f"RAG_API_KEYS: cannot read the key file {path}: {exc}") from None
        keys = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
        where = f"the key file {path}"
    else:
        keys = [k.strip() for k in raw.split(",") if k.strip()]
        where = "RAG_API_KEYS"
    if not keys:
        raise SecurityConfigError(f"{where} holds no keys")
    short = [i for i, k in enumerate(keys, start=1) if len(k) < MIN_KEY_CHARS]
    if short:
        raise SecurityConfigError(
            f"{where}: key number {short[0]} is shorter than {MIN_KEY_CHARS} characters; "
            "use long random keys (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    if any(c.isspace() for k in keys for c in k):
        raise SecurityConfigError(f"{where}: a key contains whitespace")
    return keys


@dataclass(frozen=True)
class Guard:
    """Digests of the accepted keys and whether reads need one too. Never holds a plain key."""

    digests: tuple[bytes, ...] = ()
    protect_reads: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> "Guard":
        raw = settings.api_keys.get_secret_value() if settings.api_keys is not None else ""
        if not raw.strip():
            return cls((), settings.protect_reads)
        return cls(tuple(_digest(k) for k in _parse_keys(raw)), settings.protect_reads)

    @property
    def enabled(self) -> bool:
        return bool(self.digests)

    def accepts(self, key: str) -> bool:
        """Constant time in the key and over all digests: no early exit on a match."""
        presented = _digest(key)
        ok = False
        for d in self.digests:
            ok |= hmac.compare_digest(presented, d)
        return ok

    def check(self, credentials: HTTPAuthorizationCredentials | None, write: bool) -> None:
        if not self.enabled or not (write or self.protect_reads):
            return
        if credentials is None:
            raise HTTPException(
                401, "this endpoint needs an API key: send the header `Authorization: Bearer <key>`",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not self.accepts(credentials.credentials):
            raise HTTPException(401, "the API key is not valid", headers={"WWW-Authenticate": "Bearer"})


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`; any other name counts as reachable from outside."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# --- dependencies ------------------------------------------------------------------------------
_bearer = HTTPBearer(auto_error=False, scheme_name="apiKey", description="A key from RAG_API_KEYS.")


def _guard(request: Request) -> Guard:
    return getattr(request.app.state, "guard", None) or Guard()


async def require_write(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    """Writes need a key whenever keys are configured. (async: a digest compare, nothing that
    blocks, so it runs on the event loop instead of a thread-pool hop per request)"""
    _guard(request).check(credentials, write=True)


async def require_read(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    """Reads need a key only with RAG_PROTECT_READS=true."""
    _guard(request).check(credentials, write=False)


# --- body size ---------------------------------------------------------------------------------
class BodyTooLarge(HTTPException):
    """Raised from inside `receive` so the app's HTTPException handler answers 413 as JSON."""

    def __init__(self, limit: int, setting: str) -> None:
        what = "the upload" if setting == "RAG_MAX_UPLOAD_BYTES" else "the request body"
        super().__init__(413, f"{what} is larger than {human_bytes(limit)} ({setting})")


class BodyLimit:
    """Pure ASGI middleware (it must see the body stream, which BaseHTTPMiddleware would buffer)."""

    def __init__(self, app: ASGIApp, max_body: int, max_upload: int) -> None:
        self.app = app
        self.max_body = max_body
        self.max_upload = max_upload

    def limit_for(self, scope: Scope, headers: Headers) -> tuple[int, int, str]:
        """(bytes allowed, the limit to quote, its setting) for this request."""
        content_type = headers.get("content-type", "").lower()
        if scope["method"] == "POST" and scope["path"] == UPLOAD_PATH and content_type.startswith("multipart/form-data"):
            return self.max_upload + MULTIPART_SLACK, self.max_upload, "RAG_MAX_UPLOAD_BYTES"
        return self.max_body, self.max_body, "RAG_MAX_BODY_BYTES"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        limit, shown, setting = self.limit_for(scope, headers)
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await _send_json(send, 400, "the Content-Length header is not a number")
                return
            if int(declared) > limit:
                await _send_json(send, 413, BodyTooLarge(shown, setting).detail)
                return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(shown, setting)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge as exc:  # read somewhere no handler sits; answer here if still possible
            if started:
                raise
            await _send_json(send, 413, exc.detail)


async def _send_json(send: Send, status: int, error: str) -> None:
    """Closing the connection: the body it refused is left unread."""
    await send_error(send, status, error, {"connection": "close"})


# --- wiring ------------------------------------------------------------------------------------
def app_settings(app: FastAPI) -> Settings:
    """The settings of the app's service (or the ones it will be built from)."""
    return app.state.holder.settings


def install(app: FastAPI) -> None:
    """Keys (as digests) on `app.state.guard`, and the body-size middleware.

    Raises SecurityConfigError when the keys cannot be read, so a bad key file stops the start.
    """
    settings = app_settings(app)
    app.state.guard = Guard.from_settings(settings)
    app.add_middleware(BodyLimit, max_body=settings.max_body_bytes, max_upload=settings.max_upload_bytes)
