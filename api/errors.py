"""Every error leaves as a 4xx with a JSON body that says what is wrong; never a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("rag.api")


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
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(UnicodeDecodeError)
    async def _not_utf8(_: Request, exc: UnicodeDecodeError) -> JSONResponse:
        return JSONResponse({"error": f"the request body is not UTF-8: invalid byte at offset {exc.start}"}, 400)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse({"error": "internal error; the server log has the details"}, status_code=500)
