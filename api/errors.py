"""Every error leaves as JSON with an `error` sentence, never a traceback: a 4xx for bad input,
507 when the disk is full (with the file and what to do), 500 for the server's own failures.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import tempfile
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Send

from rag.embedding.base import EmbeddingError
from rag.storage.space import StorageFull, storage_full

log = logging.getLogger("rag.api")

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


async def send_error(send: Send, status: int, error: str, headers: dict[str, str] | None = None) -> None:
    """The same JSON error, sent from pure ASGI middleware that answers before any route runs."""
    body = json.dumps({"error": error}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _describe(errors: list[dict]) -> tuple[int, str]:
    """One readable sentence from pydantic's error list (and the status it deserves)."""
    first = errors[0] if errors else {}
    kind = first.get("type", "")
    if kind == "json_invalid":
        return 400, "the request body is not valid JSON"
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    return 422, f"{where}: {first.get('msg', 'invalid value')}"


def _jsonable(errors: list[dict]) -> list[dict]:
    keep = ("type", "loc", "msg")
    return [{k: (list(e[k]) if k == "loc" else e[k]) for k in keep if k in e} for e in errors]


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        status, message = _describe(errors)
        return JSONResponse({"error": message, "detail": _jsonable(errors)}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 405:
            allowed = allowed_methods(request)
            return JSONResponse(
                {"error": f"{request.method} is not served here; use {', '.join(allowed)}"}, status_code=405,
                headers={"Allow": ", ".join(allowed)},
            )
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(UnicodeDecodeError)
    async def _not_utf8(_: Request, exc: UnicodeDecodeError) -> JSONResponse:
        return JSONResponse({"error": f"the request body is not UTF-8: invalid byte at offset {exc.start}"}, 400)

    @app.exception_handler(StorageFull)
    async def _full(_: Request, exc: StorageFull) -> JSONResponse:
        log.error("%s", exc)
        return JSONResponse({"error": str(exc)}, status_code=507)

    @app.exception_handler(EmbeddingError)
    async def _embedding(_: Request, exc: EmbeddingError) -> JSONResponse:
        # An embedding server that stopped answering: the request may succeed once it is back.
        log.error("%s", exc)
        return JSONResponse({"error": str(exc)}, status_code=503)

    @app.exception_handler(OSError)
    async def _os_error(_: Request, exc: OSError) -> JSONResponse:
        return _os_or_sqlite(exc)

    @app.exception_handler(sqlite3.Error)
    async def _sqlite_error(_: Request, exc: sqlite3.Error) -> JSONResponse:
        return _os_or_sqlite(exc)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse({"error": "internal error; the server log has the details"}, status_code=500)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path: Starlette's own 405 names only the first
    route's, and GET /documents/{id} and DELETE /documents/{id} are two routes."""
    routes = request.app.router.routes
    return [
        m for m in _METHODS
        if any(route.matches({**request.scope, "method": m})[0] == Match.FULL for route in routes)
    ]


def _os_or_sqlite(exc: Exception) -> JSONResponse:
    """No room outside an index write (the index's own are StorageFull already), such as a full
    temporary folder while an upload spools, is 507 too; any other file or database failure is a
    500 that says which kind, without a traceback."""
    full = storage_full(exc, Path(tempfile.gettempdir()))
    if full is not None:
        log.error("%s", full)
        return JSONResponse({"error": str(full)}, status_code=507)
    log.error("operating-system or database error", exc_info=exc)
    if isinstance(exc, OSError):
        what = f"an operating-system error ({exc.strerror or type(exc).__name__})"
    else:
        what = f"a database error in the index store ({exc})"
    return JSONResponse({"error": f"the server met {what}; the server log has the details"}, status_code=500)
