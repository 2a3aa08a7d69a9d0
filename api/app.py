"""FastAPI app: translates HTTP to `rag.Service` calls and back. Knows nothing of FAISS.

Each concern lives in its own router module; this file only assembles them.
"""

from __future__ import annotations

from fastapi import FastAPI

from rag.config import Settings
from rag.schema import ErrorOut
from rag.service import Service

from . import errors, routes_documents, routes_query, routes_stream, security, web
from .deps import ServiceHolder

ERROR_RESPONSES: dict[int | str, dict] = {
    code: {"model": ErrorOut} for code in (400, 401, 404, 413, 415, 422)
}


def create_app(service: Service | None = None, settings: Settings | None = None) -> FastAPI:
    """The app over a ready service (tests, `rag serve`) or one built from settings on first use."""
    app = FastAPI(
        title="News RAG",
        version="0.1.0",
        description="Ask questions of a collection of news articles; every passage cites its article by offsets.",
        responses=ERROR_RESPONSES,
    )
    app.state.holder = ServiceHolder(service, settings)
    errors.install(app)
    security.install(app)
    app.include_router(routes_query.router)
    app.include_router(routes_stream.router)
    app.include_router(routes_documents.router)
    app.include_router(web.router)
    return app
