"""Polite, bounded HTTP fetching of pages and feeds (httpx).

Every request names the project in its user agent, has a timeout (per operation and for the whole
body), a size cap, and follows at most a set number of redirects, each hop checked again: only
http and https, and, unless allowed, no host any of whose addresses is loopback, private,
link-local or otherwise not public. Conditional requests (ETag, Last-Modified) let an unchanged
page or feed answer 304 with no body.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from email.message import Message
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from ..config import Settings
from .documents import DocumentError

_REDIRECTS = {301, 302, 303, 307, 308}
_READ_CHUNK = 64 * 1024


class FetchError(DocumentError):
    """A URL that could not be fetched; the message names it and says why."""


@dataclass(frozen=True)
class FetchPolicy:
    timeout_s: float = 10.0
    max_bytes: int = 5 * 1024 * 1024
    max_redirects: int = 5
    allow_private: bool = False
    user_agent: str = "rag-news/0.1"
    # Hosts (as written in URLs) whose private addresses are allowed: one trusted intranet feed,
    # without opening every private address.
    allow_hosts: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, s: Settings) -> "FetchPolicy":
        hosts = tuple(h.strip().lower() for h in s.fetch_allow_hosts.split(",") if h.strip())
        return cls(
            s.fetch_timeout_s, s.fetch_max_bytes, s.fetch_max_redirects, s.fetch_allow_private, s.fetch_user_agent, hosts
        )


@dataclass(frozen=True)
class Fetched:
    url: str  # the final URL, after redirects
    status: int  # 200, or 304 when the conditional request found it unchanged
    content: bytes
    content_type: str
    charset: str | None
    etag: str | None
    last_modified: str | None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class Fetcher:
    """One httpx client under one policy (reuse it: connections are pooled)."""

    def __init__(self, policy: FetchPolicy) -> None:
        self.policy = policy
        self.client = httpx.Client(
            transport=guarded_transport(policy),
            timeout=httpx.Timeout(policy.timeout_s),
            follow_redirects=False,  # followed here, so every hop is checked
            headers={"User-Agent": policy.user_agent},
            trust_env=False,  # a proxy would fetch on our behalf, past the address check
        )

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "Fetcher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, url: str, etag: str | None = None, last_modified: str | None = None) -> Fetched:
        """The body at `url` (or a 304); FetchError for anything else, naming the URL."""
        headers = {"Accept": "text/html, application/xhtml+xml, application/rss+xml, application/atom+xml, */*;q=0.5"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        current = url
        for _hop in range(self.policy.max_redirects + 1):
            check_url(current, self.policy.allow_private, self.policy.allow_hosts)
            try:
                result = self._once(current, headers)
            except httpx.TimeoutException:
                raise FetchError(f"{current}: timed out after {self.policy.timeout_s:g} s") from None
            except httpx.HTTPError as exc:
                raise FetchError(f"{current}: {type(exc).__name__}: {exc or 'connection failed'}") from None
            if isinstance(result, str):  # a redirect's target
                current = result
                continue
            return result
        raise FetchError(f"{url}: more than {self.policy.max_redirects} redirects (RAG_FETCH_MAX_REDIRECTS)")

    def _once(self, url: str, headers: dict[str, str]) -> Fetched | str:
        # The timeout bounds each wait; this bounds the whole body (a server dripping bytes).
        deadline = time.monotonic() + self.policy.timeout_s
        with self.client.stream("GET", url, headers=headers) as resp:
            if resp.status_code in _REDIRECTS:
                target = resp.headers.get("location")
                if not target:
                    raise FetchError(f"{url}: redirect ({resp.status_code}) without a Location")
                return urljoin(url, target)
            if resp.status_code == 304:
                return self._result(url, resp, b"")
            if resp.status_code != 200:
                raise FetchError(f"{url}: HTTP {resp.status_code} {resp.reason_phrase}".rstrip())
            declared = resp.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.policy.max_bytes:
                raise self._too_large(url)
            body = bytearray()
            for piece in resp.iter_bytes(_READ_CHUNK):  # decoded: the cap bounds what gzip expands to
                body += piece
                if len(body) > self.policy.max_bytes:
                    raise self._too_large(url)
                if time.monotonic() > deadline:
                    raise FetchError(f"{url}: timed out reading the body")
            return self._result(url, resp, bytes(body))

    def _too_large(self, url: str) -> FetchError:
        return FetchError(f"{url}: larger than {self.policy.max_bytes:,} bytes (RAG_FETCH_MAX_BYTES)")

    @staticmethod
    def _result(url: str, resp: httpx.Response, body: bytes) -> Fetched:
        ctype, charset = parse_content_type(resp.headers.get("content-type", ""))
        return Fetched(url, resp.status_code, body, ctype, charset, resp.headers.get("etag"), resp.headers.get("last-modified"))


def guarded_transport(policy: FetchPolicy) -> httpx.HTTPTransport:
    """httpx's transport with every connection dialled through `GuardedBackend`. The pool's backend
    is not a public setting of httpx, so its installation is checked: where a new httpx or httpcore
    moved it, fetching fails closed with a sentence rather than connecting unchecked."""
    transport = httpx.HTTPTransport()
    if policy.allow_private:
        return transport
    pool = getattr(transport, "_pool", None)
    if not isinstance(pool, httpcore.ConnectionPool) or not isinstance(getattr(pool, "_network_backend", None), httpcore.SyncBackend):
        raise FetchError(
            f"fetching is off: the connect-time address check cannot be installed in httpx {httpx.__version__} "
            f"with httpcore {httpcore.__version__} (its transport no longer has a connection pool with a network "
            "backend); install the versions in constraints.txt, or set RAG_FETCH_ALLOW_PRIVATE=true to fetch unchecked"
        )
    pool._network_backend = GuardedBackend(policy.allow_hosts)
    return transport


class GuardedBackend(httpcore.SyncBackend):
    """Connects only to the public addresses it has just checked: the host is resolved once, at
    connect time, so a name that resolved to a public address for `check_url` cannot turn into a
    private one for the connection (DNS rebinding). TLS still verifies the host's own name."""

    def __init__(self, allow_hosts: tuple[str, ...] = ()) -> None:
        self.allow_hosts = allow_hosts

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):  # type: ignore[no-untyped-def]
        if host.lower() not in self.allow_hosts:
            addrs = resolve(host, port, f"{host}:{port}")
            bad = [a for a in addrs if not is_public(a)]
            if bad:
                raise FetchError(
                    f"{host}:{port} resolves to {bad[0]}, a loopback, private or reserved address "
                    "(RAG_FETCH_ALLOW_PRIVATE=true allows it)"
                )
            host = addrs[0]
        return super().connect_tcp(host, port, timeout, local_address, socket_options)


def parse_content_type(value: str) -> tuple[str, str | None]:
    """('text/html', 'iso-8859-1') of `text/html; charset="ISO-8859-1"`."""
    msg = Message()
    msg["content-type"] = value or "application/octet-stream"
    charset = msg.get_param("charset")
    return msg.get_content_type(), (charset if isinstance(charset, str) and charset else None)


def check_url(url: str, allow_private: bool, allow_hosts: tuple[str, ...] = ()) -> None:
    """FetchError unless `url` is http(s) with a host, and (unless allowed, for every host or this
    one) every address the host resolves to is public."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise FetchError(f"{url}: only http and https URLs are fetched")
    host = parts.hostname
    if not host:
        raise FetchError(f"{url}: the URL has no host")
    if allow_private or host.lower() in allow_hosts:
        return
    for addr in resolve(host, parts.port or (443 if parts.scheme == "https" else 80), url):
        if not is_public(addr):
            raise FetchError(
                f"{url}: {host} resolves to {addr}, a loopback, private or reserved address "
                "(RAG_FETCH_ALLOW_PRIVATE=true allows it)"
            )


def resolve(host: str, port: int, url: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"{url}: cannot resolve {host} ({exc})") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))  # in the system's order of preference


# IPv6 prefixes that carry an IPv4 address in their last 32 bits: NAT64's well-known prefix
# (RFC 6052) and SIIT's IPv4-translated form (RFC 2765). A gateway would dial the IPv4 inside.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("::ffff:0:0:0/96"))
# NAT64's local-use prefix (RFC 8215): where it leads is the operator's choice, so never public.
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")


def is_public(addr: str) -> bool:
    """A globally routable unicast address. An IPv6 address that embeds an IPv4 one (mapped,
    compatible, NAT64, 6to4, Teredo) is judged by the IPv4 it leads to; site-local is never public."""
    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_site_local or ip in _LOCAL_NAT64:
            return False
        inner = embedded_ipv4(ip)
        if inner:
            return all(_global(v4) for v4 in inner)
    return _global(ip)


def _global(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not ip.is_multicast


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address hands traffic on to (both ends of a Teredo address)."""
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip.teredo is not None:
        return list(ip.teredo)
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    low = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if any(ip in net for net in _NAT64):
        return [low]
    if int(ip) >> 32 == 0 and int(ip) > 1:  # IPv4-compatible ::a.b.c.d (deprecated, still routed by some stacks)
        return [low]
    return []
