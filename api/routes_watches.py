"""Standing questions: `POST/GET /watches`, `GET/DELETE /watches/{id}`, `GET /watches/{id}/events`,
and `GET /watches/{id}/stream`, the same events as server-sent events for a page.

Creating and deleting are writes (a key when keys are set); listing is a read. A webhook URL that
is not http(s), does not resolve or is private (unless RAG_FETCH_ALLOW_PRIVATE or
RAG_FETCH_ALLOW_HOSTS allow it) is a 422 sentence.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from rag.schema import DeletedOut
from rag.service import Service
from rag.watches import WatchCreated, WatchError, WatchEventOut, WatchIn, WatchOut

from .deps import get_service
from .security import require_read, require_write

router = APIRouter(tags=["watches"])

# The stream looks for new events this often (one indexed SQLite read), and says it is alive
# with a comment this often when there are none (proxies close idle connections).
STREAM_POLL_S = 0.5
KEEPALIVE_S = 15.0


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


# Not in the OpenAPI document: a stream that never ends cannot be described or fuzzed as an
# operation with a response; README "Standing questions" describes it.
@router.get("/watches/{watch_id}/stream", dependencies=[Depends(require_read)], include_in_schema=False)
async def watch_stream(
    watch_id: str, request: Request, service: Service = Depends(get_service),
    after: str | None = Query(None, max_length=100, description="only events queued after this event id"),
    last_event_id: str | None = Header(None, max_length=100),
) -> StreamingResponse:
    """Every event of the watch, oldest first, then each new one as it is queued: `id:` is the
    delivery's id (a reconnecting EventSource resumes after it, by `Last-Event-ID`), `event:` its
    type, `data:` the JSON body the webhook gets. An `error` event ends it if the watch is deleted."""
    if await run_in_threadpool(service.watches.get, watch_id) is None:
        raise _unknown(watch_id)
    return StreamingResponse(
        _events(service, watch_id, last_event_id or after, request), media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _events(service: Service, watch_id: str, after: str | None, request: Request) -> AsyncIterator[str]:
    quiet_since = time.monotonic()
    while not await request.is_disconnected():
        found = await run_in_threadpool(service.watches.events, watch_id, after)
        if found is None:
            yield f"event: error\ndata: {json.dumps({'error': f'the watch {watch_id!r} was deleted'})}\n\n"
            return
        for event in found:
            yield f"id: {event.id}\nevent: {event.type}\ndata: {json.dumps(event.payload, ensure_ascii=False)}\n\n"
            after = event.id
        if found:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > KEEPALIVE_S:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(STREAM_POLL_S)
