"""The OpenAPI document says what this server enforces, for the settings it runs with.

FastAPI's own document is refined here, and `tests/api/test_fuzz.py` holds the two together by
running schemathesis with all its checks against the app:
- security per operation: writes need a key when RAG_API_KEYS is set, reads only with
  RAG_PROTECT_READS too, `/health` never; with no keys the document declares no security at all;
- each operation lists exactly the error codes it can answer (ERRORS), each as `ErrorOut`;
- request bodies carry the limits the validators apply beyond types and lengths (`pattern`s for
  ids, visible text, non-blank strings), the upload's single `file` part and its file names;
- what JSON Schema cannot say (two fields compared, case-insensitive duplicates, the inside of
  an uploaded file) is said in the descriptions.

The `pattern`s are regular expressions as Python's `re` reads them (`\\w` is Unicode-aware), and
the server applies those very expressions.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from fastapi import FastAPI

from rag.ingestion.documents import ID_PATTERN, MAX_ID_CHARS, SUPPORTED_SUFFIXES, VISIBLE_PATTERN
from rag.ingestion.strictjson import MAX_DEPTH
from rag.schema import ErrorOut

from .security import Guard

SCHEME = "apiKey"
# A character Python's str.strip() would keep: no kind of whitespace (the same in ECMA-262).
NOT_BLANK_PATTERN = r"[^\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"


def _any_case(suffix: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in suffix)


# The upload's file name, as its part's Content-Disposition gives it: one of the suffixes, any case.
UPLOAD_FILENAME_PATTERN = 'filename="[^"]*(?:' + "|".join(_any_case(s) for s in SUPPORTED_SUFFIXES) + ')"'

_BAD_JSON = f"not UTF-8, not JSON, nested deeper than {MAX_DEPTH} levels, NaN/Infinity, a key twice, a huge integer"
_WHY = {
    400: f"The body cannot be read: {_BAD_JSON}; a broken upload (multipart, gzip, UTF-8, a JSON line)",
    401: "Missing or wrong API key (`Authorization: Bearer <key>`)",
    404: "No document (or watch) with this id",
    413: "Body, upload, expanded upload or document count over its limit (RAG_MAX_* settings)",
    415: f"Neither JSON nor a multipart upload of a {', '.join(SUPPORTED_SUFFIXES)} file",
    422: "A value the server refuses; `error` says which and why",
    507: "No space left to write the index; nothing was changed: free space and retry",
}
# Every operation: whose key it needs (security.require_write / require_read guard them) and the
# error codes it can answer besides 401. An operation missing here stops the document's build.
OPERATIONS: dict[tuple[str, str], tuple[str, tuple[int, ...]]] = {
    ("post", "/query"): ("read", (400, 413, 422)),
    ("post", "/query/stream"): ("read", (400, 413, 422)),
    ("post", "/timeline"): ("read", (400, 413, 422)),
    ("get", "/documents"): ("read", ()),
    ("get", "/documents/{doc_id}"): ("read", (404,)),
    ("get", "/health"): ("open", ()),
    ("post", "/documents"): ("write", (400, 413, 415, 422, 507)),
    ("delete", "/documents/{doc_id}"): ("write", (404, 422, 507)),
    ("post", "/watches"): ("write", (400, 413, 422)),
    ("get", "/watches"): ("read", ()),
    ("get", "/watches/{watch_id}"): ("read", (404,)),
    ("delete", "/watches/{watch_id}"): ("write", (404,)),
    ("get", "/watches/{watch_id}/events"): ("read", (404,)),
}


def install(app: FastAPI) -> None:
    """Serve the refined document at /openapi.json (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = refine(FastAPI.openapi(app), app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def refine(base: dict[str, Any], app: FastAPI) -> dict[str, Any]:
    spec = copy.deepcopy(base)
    guard: Guard = getattr(app.state, "guard", None) or Guard()
    secured = False
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if (method, path) not in OPERATIONS:
                raise KeyError(f"{method.upper()} {path} is not in api/openapi.py's OPERATIONS")
            access, errors = OPERATIONS[(method, path)]
            needs_key = guard.enabled and (access == "write" or (access == "read" and guard.protect_reads))
            secured |= needs_key
            _security(op, needs_key)
            _responses(op, set(errors) | ({401} if needs_key else set()))
    schemes = spec.get("components", {}).get("securitySchemes", {})
    if not secured:
        schemes.pop(SCHEME, None)
    elif SCHEME in schemes:
        schemes[SCHEME]["description"] = "A key from RAG_API_KEYS, sent as `Authorization: Bearer <key>`."
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas["ErrorOut"] = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
    _doc_id_parameters(spec)
    _query_body(spec)
    _watch_body(spec)
    _document_bodies(spec)
    return spec


def _security(op: dict[str, Any], needs_key: bool) -> None:
    if needs_key:
        op["security"] = [{SCHEME: []}]
    else:
        op.pop("security", None)


def _responses(op: dict[str, Any], codes: set[int]) -> None:
    kept = {code: r for code, r in op["responses"].items() if code.startswith("2")}
    for code in sorted(codes):
        kept[str(code)] = {
            "description": _WHY[code],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
        }
    if 401 in codes:
        kept["401"]["headers"] = {
            "WWW-Authenticate": {"required": True, "schema": {"type": "string"}, "description": "`Bearer`"},
        }
    op["responses"] = kept


def _doc_id_parameters(spec: dict[str, Any]) -> None:
    for item in spec["paths"].values():
        for op in item.values():
            for param in op.get("parameters", []):
                if param["name"] == "doc_id":
                    param["schema"] = _id_schema()
                    param["description"] = (
                        "a document id: no path separator, control or invisible character, not `.`/`..`, not only "
                        "spaces"
                    )


def _id_schema() -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS, "pattern": ID_PATTERN}


def _query_body(spec: dict[str, Any]) -> None:
    """The question's and choices' rules, which the validators of Query and TimelineQuery apply
    beyond types and lengths."""
    schemas = spec.get("components", {}).get("schemas", {})
    for query in (schemas.get("Query"), schemas.get("TimelineQuery")):
        if query is None:
            continue
        props = query.get("properties", {})
        if "question" in props:
            props["question"]["pattern"] = NOT_BLANK_PATTERN
        for option in props.get("choices", {}).get("anyOf", []):
            if option.get("type") == "array":
                option["uniqueItems"] = True
                option.setdefault("items", {}).update({"minLength": 1, "pattern": NOT_BLANK_PATTERN})
        notes = ["`published_after` may not be later than `published_before`"]
        if "since" in props:
            notes.append("`since` may not be later than `as_of`")
        if "choices" in props:
            notes.append("no two `choices` may be the same once case and spacing are ignored")
        query["description"] = (query.get("description", "") + " Also refused (422): " + "; ".join(notes) + ".").strip()


def _watch_body(spec: dict[str, Any]) -> None:
    """A standing question's rules beyond types: a visible question, and a webhook URL that the
    fetch guard admits, which depends on what its host resolves to when asked."""
    watch = spec.get("components", {}).get("schemas", {}).get("WatchIn")
    if watch is None:
        return
    props = watch.get("properties", {})
    if "question" in props:
        props["question"]["pattern"] = NOT_BLANK_PATTERN
    if "url" in props:  # an annotation (JSON Schema validates no unknown format): a webhook's URL
        props["url"]["format"] = "webhook-url"
    watch["description"] = (
        watch.get("description", "") + " Also refused (422): a `url` that is not http(s), has no host, does not "
        "resolve, or resolves to a loopback, private or reserved address (unless RAG_FETCH_ALLOW_PRIVATE or "
        "RAG_FETCH_ALLOW_HOSTS allow it); `filters.published_after` later than `filters.published_before`."
    ).strip()


def _document_bodies(spec: dict[str, Any]) -> None:
    """The JSON article's rules, and the upload as one `file` part with a supported name."""
    body = spec["paths"].get("/documents", {}).get("post", {}).get("requestBody", {}).get("content", {})
    article = body.get("application/json", {}).get("schema", {})
    props = article.get("properties", {})
    for name, schema in (("id", _id_schema()), ("title", {"type": "string", "maxLength": 1000,
                                                           "pattern": VISIBLE_PATTERN})):
        if name in props:
            props[name]["anyOf"] = [schema, {"type": "null"}]
    if "published" in props:
        props["published"]["anyOf"] = [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"},
                                       {"type": "null"}]
    if "text" in props:
        props["text"]["pattern"] = rf"^[^\x00]*{VISIBLE_PATTERN}[^\x00]*$"
        props["text"]["description"] = (
            "the article, stored byte for byte (passages cite it by character offsets): a letter or digit of any "
            "script, no NUL character"
        )
    upload = body.get("multipart/form-data")
    if upload is not None:
        upload["schema"]["additionalProperties"] = False
        upload["encoding"] = {
            "file": {
                "headers": {
                    "Content-Disposition": {
                        "required": True,
                        "description": f"the file's name ends in {', '.join(SUPPORTED_SUFFIXES)} (any case)",
                        "schema": {"type": "string", "pattern": UPLOAD_FILENAME_PATTERN,
                                   "example": 'form-data; name="file"; filename="articles.jsonl"'},
                    }
                }
            }
        }
