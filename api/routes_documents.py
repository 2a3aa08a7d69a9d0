"""Writing endpoints: add, replace and delete documents.

`POST /documents` takes one article as JSON, or one file as a multipart upload (.txt, .md, .jsonl,
.jsonl.gz, .html, .htm) parsed the way `rag ingest` parses files. Ingest is idempotent by content hash, so a
repeated request is a no-op. Writes are serialised per app by an asyncio lock (the index's file
lock serialises them across processes); blocking work runs in the thread pool, so queries keep
answering from the last committed index meanwhile.
"""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import Iterator
from typing import IO

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from rag.config import Settings
from rag.ingestion import strictjson
from rag.ingestion.documents import (
    MAX_ID_CHARS,
    SUPPORTED_SUFFIXES,
    Document,
    DocumentError,
    decode_utf8,
    document_from_record,
    document_from_text,
    has_visible,
    validate_doc_id,
)
from rag.ingestion.pipeline import IngestReport
from rag.schema import DeletedOut, IngestedDocument, IngestOut
from rag.service import Service

from .bodies import is_json
from .deps import get_service
from .security import human_bytes, require_write

router = APIRouter(dependencies=[Depends(require_write)], tags=["documents"])

UPLOAD_FIELD = "file"


# --- contract ------------------------------------------------------------------------------------
class DocumentIn(BaseModel):
    """One article. Without `id`, the id is derived from `url` (else the text), as `rag ingest` does."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, min_length=1, max_length=MAX_ID_CHARS, description="stable id; derived when absent")
    title: str | None = Field(None, max_length=1000)
    url: str | None = Field(None, max_length=4000, description="where the article came from; becomes its source")
    published: str | None = Field(
        None, max_length=100, description="YYYY-MM-DD or an ISO datetime; also YYYY/MM/DD, RFC 822, 'Sep 6, 2022'"
    )
    text: str = Field(..., min_length=1, description="the article; passages cite it by character offsets")

    @field_validator("id")
    @classmethod
    def _valid_id(cls, v: str | None) -> str | None:
        return None if v is None else validate_doc_id(v)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("text must not be empty")
        return v

    @field_validator("title")
    @classmethod
    def _visible_title(cls, v: str | None) -> str | None:
        if v is not None and not has_visible(v):
            raise ValueError("a title needs a visible letter or digit; leave it out instead")
        return v

    @field_validator("published")
    @classmethod
    def _some_date(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("published must be a date; leave it out instead")
        return v


_UPLOAD_SCHEMA = {
    "type": "object",
    "properties": {UPLOAD_FIELD: {"type": "string", "format": "binary", "description": ", ".join(SUPPORTED_SUFFIXES)}},
    "required": [UPLOAD_FIELD],
}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": DocumentIn.model_json_schema()},
            "multipart/form-data": {"schema": _UPLOAD_SCHEMA},
        },
    }
}


# --- routes --------------------------------------------------------------------------------------
@router.post(
    "/documents", response_model=IngestOut, summary="Add or replace a document (JSON) or a file of them (upload)",
    openapi_extra=_BODY,
)
async def add_documents(request: Request, service: Service = Depends(get_service)) -> IngestOut:
    settings = service.settings
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if is_json(content_type):
        body = await request.body()
        docs = [await run_in_threadpool(_from_json, body)]
    elif content_type == "multipart/form-data":
        async with request.form(max_files=1, max_fields=8) as form:
            other = next((k for k in form.keys() if k != UPLOAD_FIELD), None)
            if other is not None:
                raise HTTPException(422, f"the upload takes one form field, `{UPLOAD_FIELD}`; {other!r} is not one")
            upload = form.get(UPLOAD_FIELD)
            if not isinstance(upload, UploadFile):
                raise HTTPException(422, f"the upload needs a file in the form field `{UPLOAD_FIELD}`")
            docs = await run_in_threadpool(_from_upload, upload, settings)
    else:
        raise HTTPException(415, "send the document as application/json, or a file as multipart/form-data")
    async with _write_lock(request):
        report = await run_in_threadpool(service.ingest, docs)
    return await run_in_threadpool(_ingest_out, service, docs, report)


@router.delete(
    "/documents/{doc_id}", response_model=DeletedOut, summary="Remove a document and all its chunks",
)
async def delete_document(doc_id: str, request: Request, service: Service = Depends(get_service)) -> DeletedOut:
    try:
        validate_doc_id(doc_id)
    except DocumentError as exc:
        raise HTTPException(422, str(exc)) from None
    async with _write_lock(request):
        found = await run_in_threadpool(service.delete, [doc_id])
    if not found:
        raise HTTPException(404, f"no document with id {doc_id!r}")
    return DeletedOut(id=doc_id)


# --- helpers -------------------------------------------------------------------------------------
def _write_lock(request: Request) -> asyncio.Lock:
    """One write at a time per app, waiting in the event loop rather than holding a pool thread."""
    state = request.app.state
    lock = getattr(state, "write_lock", None)
    if lock is None:
        lock = state.write_lock = asyncio.Lock()
    return lock


def _from_json(body: bytes) -> Document:
    try:
        record = strictjson.loads(decode_utf8(body, "the request body"))
    except DocumentError as exc:
        raise HTTPException(400, str(exc)) from None
    except strictjson.JSONInputError as exc:
        raise HTTPException(400, f"the request body is not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise HTTPException(422, "the request body must be a JSON object with at least `text`")
    try:
        doc_in = DocumentIn.model_validate(record)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None
    try:
        return document_from_record(doc_in.model_dump(exclude_none=True), "the request body")
    except DocumentError as exc:
        raise HTTPException(422, str(exc)) from None


def _base_name(filename: str) -> str:
    """The file's own name, whatever path (POSIX or Windows) the client sent with it."""
    return filename.replace("\\", "/").rsplit("/", 1)[-1]


def _from_upload(upload: UploadFile, settings: Settings) -> list[Document]:
    """Documents of one uploaded file, bounded in size, expansion and count (runs in a pool thread)."""
    name = _base_name(upload.filename or "")
    lower = name.lower()
    if not lower.endswith(SUPPORTED_SUFFIXES):
        raise HTTPException(415, f"the uploaded file {name!r} is not one of {', '.join(SUPPORTED_SUFFIXES)}")
    size = upload.size if upload.size is not None else _size_of(upload.file)
    if size > settings.max_upload_bytes:
        raise HTTPException(413, f"the uploaded file is larger than {human_bytes(settings.max_upload_bytes)} (RAG_MAX_UPLOAD_BYTES)")
    upload.file.seek(0)
    if lower.endswith((".txt", ".md")):
        stem = name[: name.rfind(".")]
        try:
            text = decode_utf8(upload.file.read(), name)
        except DocumentError as exc:
            raise HTTPException(400, str(exc)) from None
        try:
            return [document_from_text(stem, text, source=name)]
        except DocumentError as exc:
            raise HTTPException(422, str(exc)) from None
    if lower.endswith((".html", ".htm")):
        return _page_document(upload, name)
    if lower.endswith(".gz"):
        stream: IO[bytes] = gzip.GzipFile(fileobj=upload.file, mode="rb")
        limit, setting = settings.max_upload_expanded_bytes, "RAG_MAX_UPLOAD_EXPANDED_BYTES"
    else:
        stream, limit, setting = upload.file, settings.max_upload_bytes, "RAG_MAX_UPLOAD_BYTES"
    try:
        return _jsonl_documents(stream, name, settings.max_docs_per_upload, limit, setting)
    except (gzip.BadGzipFile, EOFError, zlib.error):
        raise HTTPException(400, f"{name} is not a valid gzip file") from None


def _page_document(upload: UploadFile, name: str) -> list[Document]:
    """A saved web page: its article text (rag/ingestion/html.py), by the charset the part or the page declares."""
    from rag.ingestion.fetch import parse_content_type
    from rag.ingestion.html import decode_html, document_from_html

    charset = parse_content_type(upload.headers.get("content-type", ""))[1]
    try:
        html = decode_html(upload.file.read(), name, charset)
    except DocumentError as exc:
        raise HTTPException(400, str(exc)) from None
    try:
        return [document_from_html(html, name, doc_id=name[: name.rfind(".")], source=name)]
    except DocumentError as exc:
        raise HTTPException(422, str(exc)) from None


def _jsonl_documents(stream: IO[bytes], name: str, max_docs: int, limit: int, setting: str) -> list[Document]:
    """One article a line, like `rag ingest`; errors name the line and the byte offset."""
    docs: list[Document] = []
    offset = 0
    for lineno, raw in enumerate(_bounded_lines(stream, limit, name, setting), start=1):
        line_start, offset = offset, offset + len(raw)
        if not raw.strip():
            continue
        where = f"{name}:{lineno}"
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise HTTPException(
                400, f"{where} is not UTF-8: invalid byte at offset {line_start + exc.start} of the file "
                f"(offset {exc.start} of line {lineno})",
            ) from None
        try:
            record = strictjson.loads(text)
        except strictjson.JSONInputError as exc:
            raise HTTPException(400, f"{where}: invalid JSON ({exc})") from None
        if len(docs) >= max_docs:
            raise HTTPException(413, f"the upload holds more than {max_docs} documents (RAG_MAX_DOCS_PER_UPLOAD)")
        try:
            docs.append(document_from_record(record, where))
        except DocumentError as exc:
            raise HTTPException(422, str(exc)) from None
    if not docs:
        raise HTTPException(422, f"{name} holds no documents")
    return docs


def _bounded_lines(stream: IO[bytes], limit: int, name: str, setting: str) -> Iterator[bytes]:
    """Lines of a byte stream, stopping with 413 once more than `limit` bytes were read."""
    total = 0
    while True:
        line = stream.readline(limit - total + 1)
        if not line:
            return
        total += len(line)
        if total > limit:
            raise HTTPException(413, f"{name} is larger than {human_bytes(limit)} once read ({setting})")
        yield line


def _size_of(fh: IO[bytes]) -> int:
    fh.seek(0, 2)
    return fh.tell()


def _ingest_out(service: Service, docs: list[Document], report: IngestReport) -> IngestOut:
    counts = dict(report.chunk_counts)
    missing = [d for d in dict.fromkeys(report.unchanged + report.metadata_only) if d not in counts]
    for i in range(0, len(missing), 500):  # stay far below SQLite's limit on bound parameters
        rows = service.index.store.documents_by_id(missing[i : i + 500])
        counts.update({k: row.chunk_count for k, row in rows.items()})
    status = {**{d: "unchanged" for d in report.unchanged}, **{d: "replaced" for d in report.replaced},
              **{d: "added" for d in report.added}}
    order = dict.fromkeys(d.id for d in docs)
    return IngestOut(
        documents=[IngestedDocument(id=d, status=status[d], chunks=counts.get(d, 0)) for d in order if d in status],
        added=report.added, replaced=report.replaced, unchanged=list(dict.fromkeys(report.unchanged)),
        chunks=report.chunks, seconds=round(report.seconds, 3),
    )
