"""`POST /query/stream`: the answer as server-sent events while it is generated.

Events, in order (each `data:` is one JSON object):
- `passages`: `{"question", "passages": [...]}`, as soon as retrieval is done;
- `delta`: `{"text"}`, pieces of the draft as the generator writes them (not yet verified);
- `answer`: `{"question", "answerable", "answer", "choice"}`, the verified answer (see AnswerOut): the
  text to keep, with the count of unsupported sentences left out and any fallback and its reason,
  and the multiple-choice answer when the query gave `choices` (see ChoiceOut), else null;
- `error`: `{"error"}`, only if the server failed after the stream began.
A `: keep-alive` comment goes out while a slow model has nothing new to say.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Iterator

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from rag.answering.drafting import Delta, Retrieved
from rag.schema import Query, QueryResponse
from rag.service import Service

from .deps import get_service
from .security import require_read

router = APIRouter()
log = logging.getLogger("rag.api")

KEEPALIVE_S = 15.0
_DONE = object()


class _Cancelled(Exception):
    """The client went away: stop drafting."""


@router.post(
    "/query/stream", summary="Ask a question; the answer streams as server-sent events",
    dependencies=[Depends(require_read)], response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "passages, delta..., answer"}},
)
def query_stream(q: Query, service: Service = Depends(get_service)) -> StreamingResponse:
    items: queue.Queue = queue.Queue()
    cancelled = threading.Event()

    def on_event(event: Retrieved | Delta) -> None:
        if cancelled.is_set():
            raise _Cancelled
        items.put(event)

    def work() -> None:
        try:
            items.put(service.ask(q, on_event=on_event))
        except _Cancelled:
            pass
        except Exception as exc:
            items.put(exc)
        finally:
            items.put(_DONE)

    threading.Thread(target=work, name="rag-query-stream", daemon=True).start()
    first = items.get()
    if isinstance(first, Exception):
        raise first  # before the stream began: an ordinary error response (api/errors.py)
    return StreamingResponse(
        _stream(first, items, cancelled, q.question), media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _stream(first: object, items: queue.Queue, cancelled: threading.Event, question: str) -> Iterator[str]:
    try:
        item = first
        while item is not _DONE:
            if isinstance(item, Exception):
                log.error("query stream failed", exc_info=item)
                yield sse("error", {"error": "internal error; the server log has the details"})
            elif item is not None:
                yield _event(item, question)
            try:
                item = items.get(timeout=KEEPALIVE_S)
            except queue.Empty:
                item = None
                yield ": keep-alive\n\n"
    finally:
        cancelled.set()


def _event(item: object, question: str) -> str:
    if isinstance(item, Retrieved):
        return sse("passages", {"question": question, "passages": [p.model_dump() for p in item.passages]})
    if isinstance(item, Delta):
        return sse("delta", {"text": item.text})
    assert isinstance(item, QueryResponse)
    answer = item.answer.model_dump() if item.answer else None
    choice = item.choice.model_dump() if item.choice else None
    return sse("answer", {"question": item.question, "answerable": item.answerable, "answer": answer, "choice": choice})


def sse(event: str, data: dict) -> str:
    """One server-sent event; JSON never holds a raw newline, so one `data:` line suffices."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
