"""JSON request bodies are checked whole before any route parses them, on every route.

A body sent as `application/json` (or `application/*+json`) must be UTF-8 and JSON as
`rag.ingestion.strictjson` reads it: nested at most MAX_DEPTH levels, no NaN or Infinity, no key
twice in one object, no integer of thousands of digits. Anything else is answered 400 with the
reason, so no parser behind this ever meets a body that could exhaust its stack. The body is
already bounded by `security.BodyLimit`, which sits outside this middleware.

Its JSON types must then be those the operation's schema in the OpenAPI document gives (422
otherwise): pydantic alone would read `1` as `true`, `"5"` as 5 and `0` as a date, none of which
the document allows. Values, lengths and patterns are the models' own validators' business.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.ingestion import strictjson

from .errors import send_error


def is_json(content_type: str) -> bool:
    """`application/json`, `application/x+json` and the like (parameters such as charset ignored)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def read(body: bytes) -> tuple[object, str | None]:
    """The body's JSON value, or why the service will not read it as JSON."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, f"the request body is not UTF-8: invalid byte at offset {exc.start}"
    try:
        return strictjson.loads(text), None
    except strictjson.JSONInputError as exc:
        return None, f"the request body is not valid JSON ({exc})"


_JSON_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    # JSON Schema's own rules: 2.0 is an integer, and true is no number.
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


def type_error(value: object, schema: dict[str, Any], spec: dict[str, Any], where: str = "") -> str | None:
    """The first place where a JSON value has a type the schema does not allow, or None."""
    schema = _resolve(schema, spec)
    options = [_resolve(o, spec) for o in schema.get("anyOf") or schema.get("oneOf") or []]
    if options:
        if any(type_error(value, option, spec, where) is None for option in options):
            return None
        fitting = [o for o in options if _fits(value, o)]
        if len(fitting) == 1:  # the right kind of value, wrong inside: say where
            return type_error(value, fitting[0], spec, where)
        allowed = sorted({t for o in options for t in _types(o)})
        return f"{where or 'the request body'}: {_kind(value)} where {_names(allowed)} is expected"
    if not _fits(value, schema):
        return f"{where or 'the request body'}: {_kind(value)} where {_names(_types(schema))} is expected"
    if isinstance(value, dict):
        for key, item in value.items():
            sub = schema.get("properties", {}).get(key)
            found = type_error(item, sub, spec, f"{where}.{key}" if where else key) if sub else None
            if found:
                return found
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            found = type_error(item, schema["items"], spec, f"{where}[{i}]")
            if found:
                return found
    return None


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = spec
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _fits(value: object, schema: dict[str, Any]) -> bool:
    types = _types(schema)
    return not types or any(_JSON_TYPES[t](value) for t in types if t in _JSON_TYPES)


def _types(schema: dict[str, Any]) -> list[str]:
    t = schema.get("type")
    return [t] if isinstance(t, str) else list(t or [])


_NAMES = {"object": "a JSON object", "array": "an array", "string": "a string", "integer": "an integer",
          "number": "a number", "boolean": "true or false", "null": "null"}


def _names(types: list[str]) -> str:
    return " or ".join(_NAMES.get(t, t) for t in types)


def _kind(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    return {dict: "an object", list: "an array", str: "a string"}[type(value)]


def body_schemas(spec: dict[str, Any]) -> list[tuple[re.Pattern[str], str, dict[str, Any]]]:
    """(path regex, method, JSON body schema) of every operation taking a JSON body."""
    found = []
    for path, item in spec.get("paths", {}).items():
        rx = re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(path)) + "$")
        for method, op in item.items():
            schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if schema is not None:
                found.append((rx, method.upper(), schema))
    return found


class StrictJSONBodies:
    """Pure ASGI middleware: reads a JSON body, checks it, then hands the same bytes on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._spec: dict[str, Any] | None = None
        self._schemas: list[tuple[re.Pattern[str], str, dict[str, Any]]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_json(Headers(scope=scope).get("content-type", "")):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left before sending it all
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body.strip():
            value, error = read(body)
            if error is not None:
                await send_error(send, 400, error)
                return
            error = self.type_error(scope, value)
            if error is not None:
                await send_error(send, 422, error)
                return
        await self.app(scope, _replay(body, receive), send)

    def type_error(self, scope: Scope, value: object) -> str | None:
        app = scope.get("app")
        if not hasattr(app, "openapi"):
            return None
        spec = app.openapi()
        if self._schemas is None or self._spec is not spec:
            self._spec, self._schemas = spec, body_schemas(spec)
        for rx, method, schema in self._schemas:
            if method == scope["method"] and rx.match(scope["path"]):
                return type_error(value, schema, spec)
        return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body once, as one message; after it, the real channel (a disconnect, for streams)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


