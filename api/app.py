"""FastAPI app: translates HTTP to `rag.Service` calls and back. Knows nothing of FAISS."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException

from rag.config import Settings
from rag.schema import DocumentOut, DocumentSummary, ErrorOut, Health, Query, QueryResponse
from rag.service import Service

from . import errors

ERROR_RESPONSES: dict[int | str, dict] = {400: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut}}


def create_app(service: Service | None = None, settings: Settings | None = None) -> FastAPI:
    """The app over a ready service (tests, `rag serve`) or one built from settings at start."""
    app = FastAPI(
        title="News RAG",
        version="0.1.0",
        description="Ask questions of a collection of news articles; every passage cites its article by offsets.",
        responses=ERROR_RESPONSES,
    )
    errors.install(app)
    state: dict[str, Service] = {}

    def svc() -> Service:
        if "service" not in state:
            state["service"] = service or Service(settings or Settings())
        return state["service"]

    @app.post("/query", response_model=QueryResponse, summary="Ask a question")
    def query(q: Query) -> QueryResponse:
        return svc().ask(q)

    @app.get("/documents", response_model=list[DocumentSummary], summary="List documents")
    def documents() -> list[DocumentSummary]:
        return svc().documents()

    @app.get("/documents/{doc_id}", response_model=DocumentOut, summary="One document with its full text")
    def document(doc_id: str) -> DocumentOut:
        doc = svc().document(doc_id)
        if doc is None:
            raise HTTPException(404, f"no document with id {doc_id!r}")
        return doc

    @app.get("/health", response_model=Health, summary="Liveness and index size")
    def health() -> Health:
        return svc().health()

    return app
