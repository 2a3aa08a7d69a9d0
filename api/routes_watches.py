"""Standing questions: `POST/GET /watches`, `GET/DELETE /watches/{id}`, `GET /watches/{id}/events`.

Creating and deleting are writes (a key when keys are set); listing is a read. A webhook URL that
is not http(s), does not resolve or is private (unless RAG_FETCH_ALLOW_PRIVATE or
RAG_FETCH_ALLOW_HOSTS allow it) is a 422 sentence.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException
from starlette.concurrency import run_in_threadpool

from rag.schema import DeletedOut
from rag.service import Service
from rag.watches import WatchCreated, WatchError, WatchEventOut, WatchIn, WatchOut

from .deps import get_service
from .security import require_read, require_write

router = APIRouter(tags=["watches"])


def _unknown(watch_id: str) -> HTTPException:
    return HTTPException(404, f"no watch with id {watch_id!r}")


@router.post(
    "/watches", response_model=WatchCreated, status_code=201, summary="Add a standing question",
    dependencies=[Depends(require_write)],
)
async def add_watch(watch: WatchIn, service: Service = Depends(get_service)) -> WatchCreated:
    try:
        return await run_in_threadpool(service.watches.add, watch)  # resolves the URL's host: blocking
    except WatchError as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("/watches", response_model=list[WatchOut], summary="List standing questions", dependencies=[Depends(require_read)])
def list_watches(service: Service = Depends(get_service)) -> list[WatchOut]:
    return service.watches.list()


@router.get(
    "/watches/{watch_id}", response_model=WatchOut, summary="One standing question", dependencies=[Depends(require_read)]
)
def get_watch(watch_id: str, service: Service = Depends(get_service)) -> WatchOut:
    found = service.watches.get(watch_id)
    if found is None:
        raise _unknown(watch_id)
    return found


@router.delete(
    "/watches/{watch_id}", response_model=DeletedOut, summary="Remove a standing question and its deliveries",
    dependencies=[Depends(require_write)],
)
def delete_watch(watch_id: str, service: Service = Depends(get_service)) -> DeletedOut:
    if not service.watches.delete(watch_id):
        raise _unknown(watch_id)
    return DeletedOut(id=watch_id)


@router.get(
    "/watches/{watch_id}/events", response_model=list[WatchEventOut], summary="A standing question's deliveries",
    dependencies=[Depends(require_read)],
)
def watch_events(watch_id: str, service: Service = Depends(get_service)) -> list[WatchEventOut]:
    found = service.watches.events(watch_id)
    if found is None:
        raise _unknown(watch_id)
    return found
