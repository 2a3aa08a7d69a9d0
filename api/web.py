"""The web page at `/`: one static HTML page, its script and its styles, served from `api/static/`.

No build step. The page talks to the JSON API (`POST /query`, `POST /timeline`, `GET /documents/{id}`)
like any other client and builds its DOM with `textContent`, so article text is never parsed as HTML.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent / "static"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}

# Defence in depth behind the page's own escaping: only this origin's script and styles run.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_ASSET_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


def _static_files() -> dict[str, Path]:
    """The servable files, by name: a fixed list, so no request path ever reaches the filesystem."""
    if not STATIC.is_dir():
        return {}
    return {p.name: p for p in STATIC.iterdir() if p.is_file() and p.suffix in _TYPES}


_FILES = _static_files()


@router.get("/")
def index() -> FileResponse:
    page = _FILES.get("index.html")
    if page is None:
        raise HTTPException(404, "the web page is not installed (api/static/index.html is missing)")
    return FileResponse(page, media_type=_TYPES[".html"], headers=_PAGE_HEADERS)


@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    path = _FILES.get(name)
    if path is None:
        raise HTTPException(404, f"no static file {name!r}")
    return FileResponse(path, media_type=_TYPES[path.suffix], headers=_ASSET_HEADERS)
