"""`POST /timeline`: a question's story as dated events, oldest first (rag/retrieval/timeline.py).

A read, guarded like `/query` (a key with RAG_PROTECT_READS); a refused value is a 422 sentence.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from rag.schema import TimelineQuery, TimelineResponse
from rag.service import Service

from .deps import get_service
from .security import require_read

router = APIRouter()


@router.post(
    "/timeline", response_model=TimelineResponse, summary="A story's timeline: its articles as dated events",
    dependencies=[Depends(require_read)],
)
def story_timeline(q: TimelineQuery, service: Service = Depends(get_service)) -> Response:
    # Serialised once by pydantic, as /query's response is.
    return Response(service.timeline(q).model_dump_json(), media_type="application/json")
