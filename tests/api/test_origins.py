"""What a web page may ask of the service (api/origins.py): Host names, cross-site writes, CORS.

The refusals are checked against a live uvicorn on loopback with the headers a browser sends, and
once in Debian's Chromium itself: a page served from another loopback origin posts to the service,
and the service's own page posts to it."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from browser import needs_chromium
from api.origins import HostRule, OriginConfigError, host_name, normal_origin, parse_origins
from newsserver import NewsServer, Route
from support import LiveServer

KEY = "origin-test-key-0123456789"
EVIL = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
DOC = {"id": "planted", "text": "A fabricated report that the ceasefire collapsed overnight."}


def docs(base: str, **headers: str) -> list[str]:
    return [d["id"] for d in httpx.get(f"{base}/documents", headers=headers).json()]


def assert_refused(r: httpx.Response, status: int, phrase: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert phrase in r.json()["error"]
    assert "access-control-allow-origin" not in r.headers


# --- the parts -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value,origin",
    [("http://Example.org", "http://example.org"), ("https://example.org:443", "https://example.org"),
     ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"), ("http://[::1]:80", "http://[::1]"),
     ("null", None), ("file:///etc", None), ("http://example.org/page", None), ("http://a@example.org", None),
     ("http://example.org:99999", None), ("", None)],
)
def test_origins_are_normalised(value, origin):
    assert normal_origin(value) == origin


def test_cors_origins_setting():
    assert parse_origins(" https://news.example , http://localhost:3000,https://news.example") == (
        "https://news.example", "http://localhost:3000")
    for bad in ("*", "news.example", "https://news.example/app", "ftp://news.example"):
        with pytest.raises(OriginConfigError, match="RAG_CORS_ORIGINS"):
            parse_origins(bad)


@pytest.mark.parametrize(
    "header,name",
    [("LocalHost:8000", "localhost"), ("[::1]:8000", "::1"), ("127.0.0.1", "127.0.0.1"),
     ("localhost.:80", "localhost"), ("news.example", "news.example")],
)
def test_host_names(header, name):
    assert host_name(header) == name


def test_host_rule():
    default = HostRule.parse("")
    for host in ("localhost:8000", "127.0.0.1:9", "[::1]:8000", "127.0.0.2", "app.localhost:1"):
        assert default.allows(host, "127.0.0.1"), host
    assert not default.allows("attacker.example:8000", "127.0.0.1")
    assert not default.allows("attacker.example", "::1")
    assert default.allows("news.example", "192.0.2.10"), "a connection on another address is not checked by default"
    listed = HostRule.parse("news.example, *.example.org")
    assert listed.allows("news.example:443", "192.0.2.10") and listed.allows("a.b.example.org", "192.0.2.10")
    assert listed.allows("localhost:8000", "127.0.0.1")
    assert not listed.allows("example.org", "192.0.2.10") and not listed.allows("other.example", "192.0.2.10")
    assert HostRule.parse("*").allows("anything.example", "127.0.0.1")
    for bad in ("*, news.example", "http://news.example/x", "a b"):
        with pytest.raises(OriginConfigError, match="RAG_ALLOWED_HOSTS"):
            HostRule.parse(bad)


# --- in the app ----------------------------------------------------------------------------------
@pytest.fixture()
def app_client(make_service):
    clients = []

    def build(**overrides) -> TestClient:
        c = TestClient(create_app(make_service(**overrides)))
        clients.append(c)
        return c

    yield build
    for c in clients:
        c.close()


@pytest.mark.parametrize(
    "headers",
    [EVIL, {"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"},
     {"Origin": "http://localhost:3000", "Sec-Fetch-Site": "same-site"}, {"Origin": "https://testserver"}],
)
def test_cross_site_writes_are_refused_whatever_their_form(app_client, headers):
    c = app_client()
    assert_refused(c.post("/documents", json=DOC, headers=headers), 403, "cross-site request refused")
    form = c.post("/documents", files={"file": ("evil.txt", b"Planted text about a ceasefire.", "text/plain")}, headers=headers)
    assert_refused(form, 403, "cross-site request refused")
    plain = c.post("/documents", content=b'{"id": "x", "text": "y"}', headers={**headers, "Content-Type": "text/plain"})
    assert_refused(plain, 403, "RAG_CORS_ORIGINS")
    assert_refused(c.post("/query", json={"question": "ceasefire"}, headers=headers), 403, "cross-site")
    assert c.get("/documents").json() == []


def test_same_origin_and_browserless_writes_pass(app_client):
    c = app_client()
    own = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    assert c.post("/documents", json=DOC, headers=own).status_code == 200
    assert c.post("/documents", json={**DOC, "id": "curl"}).status_code == 200  # no Origin, no Sec-Fetch-Site
    assert c.post("/documents", json={**DOC, "id": "typed"}, headers={"Sec-Fetch-Site": "none"}).status_code == 200
    assert c.delete("/documents/curl", headers=own).status_code == 200


def test_a_key_does_not_make_a_cross_site_write_safe(app_client):
    c = app_client(api_keys=KEY)
    bearer = {"Authorization": f"Bearer {KEY}"}
    assert_refused(c.post("/documents", json=DOC, headers={**EVIL, **bearer}), 403, "cross-site")
    assert_refused(c.delete("/documents/planted", headers={**EVIL, **bearer}), 403, "cross-site")
    assert c.post("/documents", json=DOC, headers=bearer).status_code == 200


def test_listed_origins_get_cors_answers_and_no_other_does(app_client):
    c = app_client(cors_origins="https://newsroom.example")
    friend = {"Origin": "https://newsroom.example"}
    pre = c.options("/documents", headers={**friend, "Access-Control-Request-Method": "POST",
                                           "Access-Control-Request-Headers": "content-type, authorization"})
    assert pre.status_code == 200, pre.text
    assert pre.headers["access-control-allow-origin"] == "https://newsroom.example"
    assert "POST" in pre.headers["access-control-allow-methods"]
    assert "authorization" in pre.headers["access-control-allow-headers"].lower()
    r = c.post("/documents", json=DOC, headers={**friend, "Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://newsroom.example"
    assert "access-control-allow-origin" not in c.get("/documents", headers={"Origin": "http://evil.example"}).headers
    evil_pre = c.options("/documents", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert_refused(evil_pre, 403, "not allowed")
    assert_refused(c.post("/documents", json={**DOC, "id": "x"}, headers=EVIL), 403, "cross-site")


def test_without_cors_origins_no_page_gets_cors_headers(app_client):
    c = app_client()
    r = c.get("/documents", headers={"Origin": "http://evil.example"})
    assert r.status_code == 200 and not any(h.startswith("access-control-") for h in r.headers)


@pytest.mark.parametrize("settings", [{"cors_origins": "*"}, {"allowed_hosts": "*,news.example"}])
def test_bad_settings_stop_the_app(make_service, settings):
    with pytest.raises(OriginConfigError):
        create_app(make_service(**settings))


def test_serve_refuses_a_bad_cors_setting_with_exit_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env |= {"RAG_INDEX_DIR": str(tmp_path / "index"), "RAG_CORS_ORIGINS": "*"}
    proc = subprocess.run([sys.executable, "-m", "rag.cli", "serve", "--port", "9"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "RAG_CORS_ORIGINS" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "index").exists()


# --- against a live server on loopback ---------------------------------------------------------
@pytest.fixture()
def live(make_service):
    def start(**overrides) -> LiveServer:
        return LiveServer(create_app(make_service(**overrides)))

    return start


def test_rebound_host_names_are_refused_on_loopback(live):
    with live() as base:
        port = base.rsplit(":", 1)[1]
        assert_refused(httpx.get(f"{base}/documents", headers={"Host": f"attacker.example:{port}"}), 421,
                       "does not answer to the host name 'attacker.example")
        assert_refused(httpx.post(f"{base}/query", json={"question": "x"}, headers={"Host": "attacker.example"}), 421,
                       "RAG_ALLOWED_HOSTS")
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "localhost"):
            assert httpx.get(f"{base}/documents", headers={"Host": host}).status_code == 200, host
        assert httpx.get(f"{base}/health").status_code == 200


def test_allowed_hosts_on_a_live_server(live):
    with live(allowed_hosts="news.example") as base:
        assert httpx.get(f"{base}/documents", headers={"Host": "news.example:8000"}).status_code == 200
        assert httpx.get(f"{base}/documents").status_code == 200  # 127.0.0.1 stays served
        assert_refused(httpx.get(f"{base}/documents", headers={"Host": "other.example"}), 421, "host name")
    with live(allowed_hosts="*") as base:
        assert httpx.get(f"{base}/documents", headers={"Host": "attacker.example"}).status_code == 200


def test_cross_site_writes_to_a_live_server_leave_the_archive_unchanged(live):
    with live(api_keys=KEY) as base:
        bearer = {"Authorization": f"Bearer {KEY}"}
        upload = httpx.post(f"{base}/documents", headers={**EVIL, **bearer},
                            files={"file": ("evil.jsonl", b'{"id": "evil", "text": "Planted."}\n', "application/x-ndjson")})
        assert_refused(upload, 403, "a page at http://evil.example may not change this archive")
        assert docs(base) == []
        assert httpx.post(f"{base}/documents", json=DOC, headers=bearer).status_code == 200  # curl with a key
        assert docs(base) == ["planted"]
        assert_refused(httpx.delete(f"{base}/documents/planted", headers={**EVIL, **bearer}), 403, "cross-site")
        assert docs(base) == ["planted"]


# --- in a real browser ---------------------------------------------------------------------------
@needs_chromium
def test_a_page_of_another_origin_cannot_write_and_the_service_page_can(live, browser):
    """Chromium loads an attacker's page from another loopback port (same site, other origin) that
    posts a form and a no-cors fetch to the service; then the service's own page posts to it."""
    with live() as base:
        evil = NewsServer()
        try:
            evil.routes["/"] = Route(f"""<!doctype html><title>evil</title>
<form id=f method=post enctype=text/plain action="{base}/documents"><input name='{{"id":"form","text":"x","p":"' value='"}}'></form>
<script>
window.done = fetch("{base}/documents", {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}},
  body: JSON.stringify({{id: "fetched", text: "Planted by a page."}})}}).then(() => "sent", e => String(e));
</script>""".encode())
            context = browser.new_context()
            page = context.new_page()
            page.goto(evil.url("/"))
            assert page.evaluate("window.done") == "sent"
            with page.expect_response(lambda r: r.url.endswith("/documents")) as reply:
                page.evaluate("document.getElementById('f').submit()")
            assert reply.value.status == 403
            page.wait_for_url(f"{base}/documents")  # the form's navigation ends, so the next goto is not cut off by it
            assert docs(base) == []
            page.goto(f"{base}/")
            status = page.evaluate("""async () => (await fetch('/documents', {method: 'POST',
                headers: {'Content-Type': 'application/json'}, body: JSON.stringify({id: 'own', text: 'From the page.'})})).status""")
            assert status == 200
            assert docs(base) == ["own"]
            context.close()
        finally:
            evil.close()
