"""What a web page in the user's browser may ask of the service: the Host it names, cross-site
writes, and CORS.

A browser on the same machine can reach a loopback server from any page it opens. Two doors are
closed here, before any route runs:

- **Host names** (DNS rebinding): a page whose name re-resolves to 127.0.0.1 reaches the server
  with its own name in `Host`. On a connection that arrives on a loopback address only loopback
  names are served (`localhost`, `127.0.0.1`, `[::1]`, any port); `RAG_ALLOWED_HOSTS` adds names
  and then applies to every connection; `*` turns the check off. Another Host gets 421.
- **Cross-site writes** (CSRF): a page can send a form or a `fetch` to any origin. A request that
  may change state (any method but GET, HEAD and OPTIONS) is refused with 403 when `Sec-Fetch-Site`
  says it came from another site, or `Origin` names an origin other than the server's own, unless
  that origin is listed in `RAG_CORS_ORIGINS`. A request with neither header (curl, the CLI, a
  script) is no browser's and passes. A key does not change this: a form cannot be told apart from
  its page by the key a browser may hold for it.

Origins in `RAG_CORS_ORIGINS` also get CORS answers (Starlette's CORSMiddleware), preflight
included; no other origin gets any CORS header, so other pages cannot read the answers either.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from rag.config import Settings

from .errors import send_error
from .security import SecurityConfigError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Sec-Fetch-Site values a browser sends for the service's own page and for what the user typed or
# bookmarked; `same-site` (another port of localhost, another subdomain) is another origin.
OWN_SITES = frozenset({"same-origin", "none"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class OriginConfigError(SecurityConfigError):
    """An unusable RAG_CORS_ORIGINS or RAG_ALLOWED_HOSTS; the message names the setting and value."""


def normal_origin(value: str) -> str | None:
    """`scheme://host[:port]` in lower case with the scheme's default port dropped; None if `value`
    is not a plain http(s) origin (a path, a query, `null`, another scheme)."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    if parts.query or parts.fragment or parts.username or parts.password:
        return None
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    shown_port = "" if port in (None, _DEFAULT_PORTS[parts.scheme]) else f":{port}"
    return f"{parts.scheme}://{host}{shown_port}"


def parse_origins(raw: str) -> tuple[str, ...]:
    """The origins of RAG_CORS_ORIGINS (comma-separated); OriginConfigError on one that is not."""
    origins = []
    for item in (x.strip() for x in raw.split(",")):
        if not item:
            continue
        origin = normal_origin(item)
        if origin is None or item == "*":
            raise OriginConfigError(
                f"RAG_CORS_ORIGINS: {item!r} is not an origin; list each one as scheme://host[:port], "
                "e.g. https://newsroom.example (`*` is not accepted: it would let every page write)"
            )
        origins.append(origin)
    return tuple(dict.fromkeys(origins))


def host_name(header: str) -> str:
    """The name of a Host header without its port, lower case, brackets and a trailing dot dropped."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0].rstrip(".") if value.count(":") <= 1 else value


def is_loopback_name(name: str) -> bool:
    """`localhost` (and names under it, which browsers keep on this machine) or a loopback address."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class HostRule:
    """Which Host names are served. `names` None: the default (loopback names on loopback
    connections, others unchecked); `everything`: `*`, no check at all."""

    names: tuple[str, ...] | None = None
    everything: bool = False

    @classmethod
    def parse(cls, raw: str) -> "HostRule":
        items = [x.strip().lower() for x in raw.split(",") if x.strip()]
        if not items:
            return cls()
        if "*" in items:
            if len(items) > 1:
                raise OriginConfigError("RAG_ALLOWED_HOSTS: `*` (no check) cannot be combined with names")
            return cls(everything=True)
        names = []
        for item in items:
            name = host_name(item)
            pattern = name[2:] if name.startswith("*.") else name
            if not pattern or any(c in item for c in "/@ ") or "*" in pattern:
                raise OriginConfigError(
                    f"RAG_ALLOWED_HOSTS: {item!r} is not a host name; use names such as news.example, "
                    "*.example.org or 192.0.2.10, comma-separated (`*` turns the check off)"
                )
            names.append(name)
        return cls(tuple(names))

    def allows(self, header: str | None, local_address: str | None) -> bool:
        if self.everything or not header:  # no Host at all: an HTTP/1.0 client, not a browser
            return True
        name = host_name(header)
        if is_loopback_name(name):
            return True
        if self.names is None:
            return not _is_loopback_ip(local_address)
        return any(name == n or (n.startswith("*.") and name.endswith(n[1:])) for n in self.names)


def _is_loopback_ip(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:  # a test client's made-up server name
        return False


def same_origin(origin: str, host_header: str, scheme: str) -> bool:
    """Does the normalised `origin` name this server, as the request's Host and scheme do?"""
    # Scheme included: another server on this host's port 443 is another origin. Behind a TLS proxy
    # the scheme is the one the proxy reports (uvicorn reads X-Forwarded-Proto from loopback proxies).
    return host_header is not None and normal_origin(f"{scheme}://{host_header.strip()}") == origin


def cross_site_refusal(headers: Headers, scheme: str, allowed: tuple[str, ...]) -> str | None:
    """Why a state-changing request must be refused as cross-site, or None when it may pass."""
    raw_origin = headers.get("origin")
    site = (headers.get("sec-fetch-site") or "").strip().lower()
    origin = normal_origin(raw_origin) if raw_origin else None
    if origin is not None and origin in allowed:
        return None
    foreign_site = bool(site) and site not in OWN_SITES
    foreign_origin = raw_origin is not None and (origin is None or not same_origin(origin, headers.get("host", ""), scheme))
    if not (foreign_site or foreign_origin):
        return None
    where = f"a page at {raw_origin.strip()[:100]}" if raw_origin else f"a {site} page"
    return (
        f"cross-site request refused: {where} may not change this archive or ask on its behalf; "
        "list a trusted origin in RAG_CORS_ORIGINS to allow it"
    )


class BrowserGuard:
    """Pure ASGI middleware: 421 for a Host this server does not answer to, 403 for a cross-site
    write or a preflight from an origin not allowed."""

    def __init__(self, app: ASGIApp, hosts: HostRule, allowed_origins: tuple[str, ...]) -> None:
        self.app = app
        self.hosts = hosts
        self.allowed = allowed_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host")
        server = scope.get("server")
        if not self.hosts.allows(host, server[0] if server else None):
            shown = (host or "").strip()[:100]
            await send_error(send, 421, (
                f"this server does not answer to the host name {shown!r}: a page whose name was re-pointed "
                "at this machine is refused; add the name to RAG_ALLOWED_HOSTS if it is really this server's"
            ))
            return
        method = scope.get("method", "GET")
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
        refusal = None
        if method not in SAFE_METHODS or scope["type"] == "websocket":
            refusal = cross_site_refusal(headers, scheme, self.allowed)
        elif method == "OPTIONS" and "access-control-request-method" in headers:
            refusal = self._preflight_refusal(headers, scheme)
        if refusal is not None:
            await send_error(send, 403, refusal)
            return
        await self.app(scope, receive, send)

    def _preflight_refusal(self, headers: Headers, scheme: str) -> str | None:
        raw = headers.get("origin")
        origin = normal_origin(raw) if raw else None
        if origin is not None and (origin in self.allowed or same_origin(origin, headers.get("host", ""), scheme)):
            return None
        return f"cross-origin requests from {(raw or 'this page')[:100]} are not allowed (RAG_CORS_ORIGINS lists those that are)"


def check(settings: Settings) -> tuple[tuple[str, ...], HostRule]:
    """The allowed origins and the Host rule; OriginConfigError when a setting cannot be read."""
    return parse_origins(settings.cors_origins), HostRule.parse(settings.allowed_hosts)


def install(app: FastAPI, settings: Settings) -> None:
    """CORS for the listed origins (inside), the Host and cross-site checks (outside it).

    Raises OriginConfigError when a setting cannot be read, so a bad value stops the start."""
    origins, hosts = check(settings)
    if origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=list(origins), allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"], max_age=600,
        )
    app.add_middleware(BrowserGuard, hosts=hosts, allowed_origins=origins)
