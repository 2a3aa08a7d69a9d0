"""Reading endpoints: questions, documents, health."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Response

from rag.schema import DocumentOut, DocumentSummary, Health, Query, QueryResponse
from rag.service import Service

from .deps import get_service
from .security import require_read

router = APIRouter()


@router.post("/query", response_model=QueryResponse, summary="Ask a question", dependencies=[Depends(require_read)])
def query(q: Query, service: Service = Depends(get_service)) -> Response:
    # Serialised once by pydantic: returning the model would make FastAPI dump it to a dict,
    # validate that against QueryResponse again and encode it (~1-2 ms of a ~12 ms query).
    return Response(service.ask(q).model_dump_json(), media_type="application/json")


@router.get(
    "/documents", response_model=list[DocumentSummary], summary="List documents", dependencies=[Depends(require_read)]
)
def documents(service: Service = Depends(get_service)) -> list[DocumentSummary]:
    return service.documents()


@router.get(
    "/documents/{doc_id}", response_model=DocumentOut, summary="One document with its full text",
    dependencies=[Depends(require_read)],
)
def document(doc_id: str, service: Service = Depends(get_service)) -> DocumentOut:
    doc = service.document(doc_id)
    if doc is None:
        raise HTTPException(404, f"no document with id {doc_id!r}")
    return doc


@router.get("/health", response_model=Health, summary="Liveness and index size")
def health(service: Service = Depends(get_service)) -> Health:
    return service.health()
