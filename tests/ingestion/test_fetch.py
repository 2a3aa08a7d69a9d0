"""Polite, bounded fetching (rag/ingestion/fetch.py) against a real HTTP server on loopback.

No request ever leaves loopback: refused addresses are refused before any connection is made."""

from __future__ import annotations

import pytest

from rag.ingestion.fetch import Fetcher, FetchError, FetchPolicy, check_url, is_public
from newsserver import Route

OPEN = FetchPolicy(timeout_s=0.5, max_bytes=64 * 1024, max_redirects=3, allow_private=True, user_agent="rag-news-test/1")


@pytest.fixture()
def fetcher():
    with Fetcher(OPEN) as f:
        yield f


def test_fetches_with_the_project_user_agent_and_the_declared_charset(site, fetcher):
    site.routes["/a"] = Route(b"<p>caf\xe9</p>", content_type="text/html; charset=ISO-8859-1")
    got = fetcher.get(site.url("/a"))
    assert got.status == 200 and got.content == b"<p>caf\xe9</p>"
    assert got.content_type == "text/html" and got.charset == "ISO-8859-1" and got.etag
    assert site.hits[-1].headers["user-agent"] == "rag-news-test/1"


def test_conditional_requests_get_304(site, fetcher):
    site.routes["/a"] = Route(b"<p>hello</p>")
    first = fetcher.get(site.url("/a"))
    again = fetcher.get(site.url("/a"), etag=first.etag, last_modified=first.last_modified)
    assert again.not_modified and again.content == b""
    assert site.hits[-1].headers["if-none-match"] == first.etag
    assert site.hits[-1].headers["if-modified-since"] == first.last_modified


def test_a_page_over_the_size_cap_is_a_clear_error_with_or_without_content_length(site, fetcher):
    site.routes["/big"] = Route(b"x" * (OPEN.max_bytes + 1))
    site.routes["/big-chunked"] = Route(b"x" * (OPEN.max_bytes * 3), chunked=True)
    for path in ("/big", "/big-chunked"):
        with pytest.raises(FetchError, match=r"larger than 65,536 bytes \(RAG_FETCH_MAX_BYTES\)"):
            fetcher.get(site.url(path))


def test_redirects_are_followed_a_bounded_number_of_times(site, fetcher):
    site.routes["/old"] = Route(status=301, headers={"Location": "/new"}, validators=False)
    site.routes["/new"] = Route(b"<p>moved</p>")
    got = fetcher.get(site.url("/old"))
    assert got.url == site.url("/new") and got.content == b"<p>moved</p>"
    site.routes["/loop-a"] = Route(status=302, headers={"Location": "/loop-b"}, validators=False)
    site.routes["/loop-b"] = Route(status=302, headers={"Location": "/loop-a"}, validators=False)
    with pytest.raises(FetchError, match=r"more than 3 redirects"):
        fetcher.get(site.url("/loop-a"))
    assert len(site.requests_to("/loop-a")) + len(site.requests_to("/loop-b")) == 4  # the first + 3 hops


def test_only_http_and_https(site, fetcher):
    site.routes["/to-file"] = Route(status=302, headers={"Location": "file:///etc/passwd"}, validators=False)
    with pytest.raises(FetchError, match="only http and https"):
        fetcher.get(site.url("/to-file"))
    with pytest.raises(FetchError, match="only http and https"):
        fetcher.get("ftp://127.0.0.1/feed.xml")


def test_a_page_that_times_out(site, fetcher):
    site.routes["/slow"] = Route(b"<p>late</p>", delay=1.5)
    with pytest.raises(FetchError, match=r"/slow: timed out after 0.5 s"):
        fetcher.get(site.url("/slow"))


def test_http_errors_name_the_url_and_status(site, fetcher):
    site.routes["/gone"] = Route(b"gone", status=410, validators=False)
    with pytest.raises(FetchError, match=r"/gone: HTTP 410"):
        fetcher.get(site.url("/gone"))
    with pytest.raises(FetchError, match=r"/missing: HTTP 404"):
        fetcher.get(site.url("/missing"))


def test_loopback_and_private_addresses_are_refused_without_the_setting(site):
    site.routes["/a"] = Route(b"<p>private</p>")
    with Fetcher(FetchPolicy(timeout_s=0.5)) as guarded:
        for url in (site.url("/a"), f"http://localhost:{site.server.server_address[1]}/a", "http://10.1.2.3/feed",
                    "http://[::1]/feed", "http://169.254.169.254/latest/meta-data", "http://192.168.0.1/"):
            with pytest.raises(FetchError, match="loopback, private or reserved address"):
                guarded.get(url)
    assert site.hits == []  # refused before connecting


def test_every_redirect_hop_is_checked_not_only_the_first_url(site):
    # The first host is trusted by name; the redirect's target resolves to loopback too, but is not.
    site.routes["/hop"] = Route(status=302, headers={"Location": f"http://localhost:{site.server.server_address[1]}/a"},
                                validators=False)
    site.routes["/to-private"] = Route(status=302, headers={"Location": "http://10.0.0.7/admin"}, validators=False)
    with Fetcher(FetchPolicy(timeout_s=0.5, allow_hosts=("127.0.0.1",))) as guarded:
        for path in ("/hop", "/to-private"):
            with pytest.raises(FetchError, match="loopback, private or reserved address"):
                guarded.get(site.url(path))
    assert [h.path for h in site.hits] == ["/hop", "/to-private"]


def test_public_addresses():
    assert is_public("93.184.216.34") and is_public("2606:2800:220:1:248:1893:25c8:1946")
    for addr in ("127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
                 "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "224.0.0.1"):
        assert not is_public(addr), addr


@pytest.mark.parametrize(
    "addr",
    [
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b:1::a00:1",  # NAT64's local-use prefix
        "::ffff:0:7f00:1",  # SIIT's IPv4-translated 127.0.0.1
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "::127.0.0.1",  # IPv4-compatible
        "::10.0.0.1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo (its client end is 192.0.2.45)
        "fec0::1",  # site-local
        "fec0::1%eth0",
    ],
)
def test_addresses_that_lead_to_private_ipv4_or_site_local_are_not_public(addr):
    assert not is_public(addr)


@pytest.mark.parametrize("addr", ["64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8"])
def test_addresses_that_embed_a_public_ipv4_are_judged_by_it(addr):
    assert is_public(addr)


def test_fetching_fails_closed_when_the_connect_time_check_cannot_be_installed(monkeypatch):
    # Stands in for an httpx release whose transport keeps no httpcore pool where this code looks.
    from rag.ingestion import fetch

    class Moved(fetch.httpx.HTTPTransport):
        def __init__(self) -> None:
            super().__init__()
            self._pool = object()

    monkeypatch.setattr(fetch.httpx, "HTTPTransport", Moved)
    with pytest.raises(FetchError, match=r"fetching is off: the connect-time address check cannot be installed in httpx"):
        Fetcher(FetchPolicy())


def test_a_name_that_rebinds_to_loopback_between_check_and_connect_is_refused(site, monkeypatch):
    # The resolver is ours: socket.getaddrinfo answers for `rebind.test` (a reserved name) with a
    # public address the first time and loopback every time after, as a rebinding DNS server does;
    # other names resolve as usual. Replacing it process-wide means httpx's own connect path would
    # see the second answer too: without the connect-time check, this fetch reaches the news server.
    import socket

    real = socket.getaddrinfo
    asked: list[str] = []
    port = site.server.server_address[1]

    def rebinding(host, port_, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host != "rebind.test":
            return real(host, port_, *args, **kwargs)
        asked.append(host)
        addr = "93.184.216.34" if len(asked) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (addr, port_))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    site.routes["/a"] = Route(b"<p>private</p>")
    with Fetcher(FetchPolicy(timeout_s=2)) as guarded:
        with pytest.raises(FetchError, match=r"rebind.test:\d+ resolves to 127.0.0.1, a loopback"):
            guarded.get(f"http://rebind.test:{port}/a")
    assert len(asked) == 2, "checked once by URL, once more at connect time"
    assert site.hits == []


def test_urls_without_a_host_are_refused():
    with pytest.raises(FetchError, match="no host"):
        check_url("http:///feed", allow_private=True)


def test_the_connection_itself_goes_only_to_checked_public_addresses(site):
    # What the URL check approved is checked again at connect time, on the addresses actually dialled
    # (a name may resolve differently the second time).
    from rag.ingestion.fetch import GuardedBackend

    port = site.server.server_address[1]
    for host in ("localhost", "127.0.0.1"):
        with pytest.raises(FetchError, match="loopback, private or reserved address"):
            GuardedBackend().connect_tcp(host, port, timeout=0.5)
    stream = GuardedBackend(allow_hosts=("127.0.0.1",)).connect_tcp("127.0.0.1", port, timeout=0.5)
    stream.close()
    assert site.hits == []
