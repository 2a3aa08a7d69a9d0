"""The service as a Model Context Protocol server (the official MCP SDK, `mcp`): tools to ask,
search and read the articles and to add and delete them, and each article as a resource
`news://documents/{id}`.

Two transports, one server: `rag mcp` speaks stdio to the host that launched it; `rag serve`
answers streamable HTTP at `/mcp` inside the HTTP app, so its API keys, body limit and Origin and
Host rules apply there as on every route. Over HTTP the server is stateless (no session to keep):
every request stands alone, so any replica of `rag serve --ray` can answer any of them.

Keys over HTTP: with RAG_PROTECT_READS every MCP request needs a valid key, like every read; the
write tools (`add_document`, `delete_document`) need one whenever RAG_API_KEYS is set. They are
listed all the same, so a client sees what the server offers, and a call without a key gets the
sentence HTTP's 401 gives. Over stdio the host launched the process with the user's own files:
no key is asked.

A bad argument or a failure is a tool error (`isError`) carrying the sentence the HTTP API gives
for the same input; the server and the session carry on.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
from fastapi import FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from rag.config import GeneratorKind
from rag.embedding.base import EmbeddingError
from rag.ingestion.documents import DocumentError, document_from_record, validate_doc_id
from rag.schema import (
    MAX_K, MAX_QUESTION_CHARS, DocumentOut, DocumentSummary, Passage, Query, QueryResponse, TimelineQuery,
    TimelineResponse,
)
from rag.service import Service
from rag.storage.space import StorageFull

from . import errors, metrics
from .routes_documents import DeletedOut, DocumentIn, IngestOut, _ingest_out
from .security import Guard

log = logging.getLogger("rag.mcp")

PATH = "/mcp"
RESOURCE = "news://documents/{doc_id}"
# A host lists resources to let a person pick; past this many documents it lists the first ones
# (every document stays readable by its URI, and `list_documents` names them all).
MAX_LISTED_RESOURCES = 1000
INSTRUCTIONS = (
    "Questions over a collection of news articles. `ask` answers with passages cited by "
    "character offsets into their article; `get_document` returns the article's full text, so "
    "text[start:end] of a passage can be checked. `as_of` answers as of a date: later articles "
    "are left out."
)
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


class Filters(BaseModel):
    """Which articles a question may draw on (the same fields as `POST /query`)."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(None, max_length=2000, description="only articles whose source starts with this")
    doc_ids: list[str] | None = Field(None, max_length=1000, description="only these articles")
    published_after: str | None = Field(None, description="YYYY-MM-DD, inclusive")
    published_before: str | None = Field(None, description="YYYY-MM-DD, inclusive")
    include_undated: bool = Field(
        True, description="keep articles with no date (every question is asked as of a time, so this always applies)"
    )


Question = Annotated[str, Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="the question")]
K = Annotated[int, Field(ge=1, le=MAX_K, description="passages to return")]
AsOf = Annotated[
    str | None,
    Field(description="answer as of this date or ISO datetime (default now): later articles are left out"),
]
Choices = Annotated[
    list[str] | None, Field(description="multiple-choice options (2 to 10): the answer says which one the passages support")
]
DocId = Annotated[str, Field(min_length=1, description="the document's id, as `list_documents` or a passage gives it")]


class ServiceSource:
    """Where the tools find the service: a ready one (stdio) or the HTTP app's holder, which
    builds it on first use (in a worker thread: it loads the model)."""

    def __init__(self, get: Callable[[], Service], ready: Callable[[], bool] = lambda: True) -> None:
        self._get = get
        self._ready = ready

    async def __call__(self) -> Service:
        if self._ready():
            return self._get()
        return await anyio.to_thread.run_sync(self._get)


class NewsMCP(MCPServer):
    """MCPServer whose tool errors carry the HTTP API's sentence, without the SDK's prefix, and
    whose resource list names the documents."""

    def __init__(self, service: ServiceSource, guard: Guard | None) -> None:
        super().__init__("rag-news", instructions=INSTRUCTIONS, version="0.1.0", log_level="WARNING")
        self.service = service
        self.guard = guard or Guard()

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Context | None = None):  # type: ignore[override]
        t0 = time.perf_counter()
        outcome = "error"
        try:
            result = await super().call_tool(name, arguments, context)
            outcome = "ok"
            return result
        except UnexpectedToolError as exc:
            raise UnexpectedToolError("internal error; the server log has the details") from exc.__cause__
        except ToolError as exc:
            raise ToolError(_sentence(exc)) from exc.__cause__
        finally:
            metrics.tool_called(name, outcome, time.perf_counter() - t0)

    async def list_resources(self):  # type: ignore[no-untyped-def]
        from mcp_types import Resource

        service = await self.service()
        docs = (await anyio.to_thread.run_sync(service.documents))[:MAX_LISTED_RESOURCES]
        listed = [
            Resource(uri=RESOURCE.format(doc_id=d.id), name=d.id, title=d.title, mime_type="text/plain",
                     description=" · ".join(x for x in (d.source, d.published) if x) or None)
            for d in docs
        ]
        return listed + await super().list_resources()


def _sentence(exc: ToolError) -> str:
    """The HTTP API's sentence for what went wrong: a tool's own refusal, or the arguments'
    validation error phrased as `POST /query` phrases it."""
    cause = exc.__cause__
    if isinstance(cause, ValidationError):
        return errors._describe(list(cause.errors()))[1]
    if isinstance(cause, ToolError):
        return str(cause)
    return str(exc)


def _failure(exc: Exception) -> ToolError:
    """A service failure as the tool error whose text HTTP would give for it."""
    if isinstance(exc, HTTPException):
        return ToolError(str(exc.detail))
    if isinstance(exc, ValidationError):
        return ToolError(errors._describe(list(exc.errors()))[1])
    if isinstance(exc, (StorageFull, EmbeddingError, DocumentError)):
        return ToolError(str(exc))
    if isinstance(exc, (OSError, sqlite3.Error)):
        return ToolError(json.loads(errors._os_or_sqlite(exc).body)["error"])
    raise exc


async def _run(fn: Callable[..., Any], *args: Any) -> Any:
    """A blocking service call in a worker thread; its known failures as tool errors."""
    try:
        return await anyio.to_thread.run_sync(fn, *args)
    except (HTTPException, ValidationError, StorageFull, EmbeddingError, DocumentError, OSError, sqlite3.Error) as exc:
        raise _failure(exc) from None


def _require_key(server: NewsMCP, ctx: Context) -> None:
    """Writes over HTTP need a valid key when keys are set (stdio has no request: the user's own)."""
    request = ctx.request_context.request
    if request is None or not server.guard.enabled:
        return
    try:
        server.guard.check(_credentials(Headers(scope=request.scope)), write=True)
    except HTTPException as exc:
        raise ToolError(str(exc.detail)) from None


def _credentials(headers: Headers) -> HTTPAuthorizationCredentials | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return HTTPAuthorizationCredentials(scheme="Bearer", credentials=token.strip())


def build(service: ServiceSource, guard: Guard | None = None) -> NewsMCP:
    """The MCP server over `service`, its tools and the document resources registered."""
    server = NewsMCP(service, guard)

    def query(question: str, k: int, as_of: str | None, choices: list[str] | None, filters: Filters | None,
              generator: GeneratorKind | None, answer: bool) -> Query:
        try:
            return Query(question=question, k=k, as_of=as_of, choices=choices, generator=generator, answer=answer,
                         **(filters.model_dump(exclude_unset=True) if filters else {}))
        except ValidationError as exc:
            raise _failure(exc) from None

    @server.tool(annotations=READ_ONLY)
    async def ask(
        question: Question, k: K = 5, as_of: AsOf = None, choices: Choices = None, filters: Filters | None = None,
        generator: Annotated[GeneratorKind | None, Field(description="who drafts the answer; default RAG_GENERATOR")] = None,
    ) -> QueryResponse:
        """Answer a question from the articles: passages cited by character offsets into their article,
        a short answer citing them (or that the articles don't say), and with `choices` the option the
        passages support. The same JSON as the HTTP API's POST /query."""
        q = query(question, k, as_of, choices, filters, generator, answer=True)
        return await _run((await server.service()).ask, q)

    @server.tool(annotations=READ_ONLY)
    async def search(
        question: Question, k: K = 5, as_of: AsOf = None, filters: Filters | None = None,
    ) -> list[Passage]:
        """The passages that best answer a question, without drafting an answer."""
        q = query(question, k, as_of, None, filters, None, answer=False)
        return (await _run((await server.service()).ask, q)).passages

    @server.tool(annotations=READ_ONLY)
    async def timeline(question: Question, as_of: AsOf = None, filters: Filters | None = None) -> TimelineResponse:
        """A story's articles as dated events, oldest first: each event dated by its earliest article,
        with its key sentence cited by character offsets; undated articles listed apart. The same
        JSON as the HTTP API's POST /timeline (`doc_ids` does not apply to it)."""
        try:
            q = TimelineQuery(question=question, as_of=as_of, **(filters.model_dump(exclude_unset=True) if filters else {}))
        except ValidationError as exc:
            raise _failure(exc) from None
        return await _run((await server.service()).timeline, q)

    @server.tool(annotations=READ_ONLY)
    async def get_document(doc_id: DocId) -> DocumentOut:
        """One article with its full text (passages' start and end are offsets into it)."""
        doc = await _run((await server.service()).document, doc_id)
        if doc is None:
            raise ToolError(f"no document with id {doc_id!r}")
        return doc

    @server.tool(annotations=READ_ONLY)
    async def list_documents() -> list[DocumentSummary]:
        """Every article: id, title, source, date and its number of chunks."""
        return await _run((await server.service()).documents)

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True))
    async def add_document(
        ctx: Context,
        text: Annotated[str, Field(min_length=1, description="the article; passages cite it by character offsets")],
        id: Annotated[str | None, Field(description="stable id; derived from url (else the text) when absent")] = None,  # noqa: A002
        title: str | None = None,
        url: Annotated[str | None, Field(description="where the article came from; becomes its source")] = None,
        published: Annotated[str | None, Field(description="YYYY-MM-DD or an ISO datetime")] = None,
    ) -> IngestOut:
        """Add an article, or replace the one with the same id (unchanged text is a no-op). Needs an API key
        over HTTP when the server has keys."""
        _require_key(server, ctx)
        fields = {"id": id, "title": title, "url": url, "published": published, "text": text}
        try:
            record = DocumentIn.model_validate({k: v for k, v in fields.items() if v is not None})
            doc = document_from_record(record.model_dump(exclude_none=True), "the document")
        except (ValidationError, DocumentError) as exc:
            raise _failure(exc) from None
        service = await server.service()
        report = await _run(service.ingest, [doc])
        return await _run(_ingest_out, service, [doc], report)

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True))
    async def delete_document(ctx: Context, doc_id: DocId) -> DeletedOut:
        """Remove an article and all its passages. Needs an API key over HTTP when the server has keys."""
        _require_key(server, ctx)
        try:
            validate_doc_id(doc_id)
        except DocumentError as exc:
            raise _failure(exc) from None
        found = await _run((await server.service()).delete, [doc_id])
        if not found:
            raise ToolError(f"no document with id {doc_id!r}")
        return DeletedOut(id=doc_id)

    @server.resource(RESOURCE, name="document", mime_type="text/plain")
    async def document_text(doc_id: str) -> str:
        """An article's full text; passages' offsets index into it."""
        doc = await anyio.to_thread.run_sync((await server.service()).document, doc_id)
        if doc is None:
            from mcp.server.mcpserver.exceptions import ResourceNotFoundError

            raise ResourceNotFoundError(f"no document with id {doc_id!r}")
        return doc.text

    return server


# --- stdio: `rag mcp` ------------------------------------------------------------------------------
def run_stdio(service: Service) -> None:
    """Serve `service` over stdin and stdout until the host closes them."""
    build(ServiceSource(lambda: service)).run("stdio")


# --- streamable HTTP inside the app -----------------------------------------------------------------
class KeyedEndpoint:
    """`/mcp` as an ASGI app: with RAG_PROTECT_READS a request without a valid key is refused
    (401, as any read), before the MCP transport reads it."""

    def __init__(self, app: StreamableHTTPASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            self.guard.check(_credentials(Headers(scope=scope)), write=False)
        except HTTPException as exc:
            await errors.send_error(send, exc.status_code, str(exc.detail), exc.headers)
            return
        await self.app(scope, receive, send)


def install(app: FastAPI) -> None:
    """Serve MCP at `/mcp`, its session manager running in the app's lifespan, around whatever
    lifespan the app had (the background merges and feed polls of `rag serve`)."""
    holder = app.state.holder
    guard: Guard = app.state.guard
    server = build(ServiceSource(holder.get, lambda: holder.ready), guard)
    manager = StreamableHTTPSessionManager(
        app=server._lowlevel_server,
        json_response=True,  # one JSON answer a request: no stream to hold open
        stateless=True,
        # The app's own Host and Origin rules (api/origins.py) stand before every route, /mcp too.
        security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        max_request_body_size=holder.settings.max_body_bytes,
    )
    app.add_route(PATH, KeyedEndpoint(StreamableHTTPASGIApp(manager), guard), include_in_schema=False)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[Any]:
        async with manager.run(), inner(a) as state:
            yield state

    app.router.lifespan_context = lifespan
    app.state.mcp = server
