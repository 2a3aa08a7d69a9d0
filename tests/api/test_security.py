"""API keys (only hashes kept, constant-time check), protected reads, and `rag serve`'s refusals."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api import security
from api.app import create_app
from api.security import Guard, SecurityConfigError, is_loopback

ROOT = Path(__file__).resolve().parents[2]
KEY_A = "a" * 8 + "-first-test-key-0001"
KEY_B = "b" * 8 + "-second-test-key-0002"
DOC = {"id": "keyed-1", "text": "The ferry to Eastholm resumed on Monday after the storm."}


@pytest.fixture()
def keyed(make_service):
    """A client over a fresh index whose service has the given key settings."""
    clients = []

    def build(**overrides) -> TestClient:
        c = TestClient(create_app(make_service(**overrides)))
        clients.append(c)
        return c

    yield build
    for c in clients:
        c.close()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_401(r) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.headers["content-type"].startswith("application/json") and r.json()["error"]


def test_writes_need_a_valid_key(keyed):
    c = keyed(api_keys=f"{KEY_A}, {KEY_B}")
    assert_401(c.post("/documents", json=DOC))
    assert_401(c.post("/documents", json=DOC, headers=bearer("wrong-key-but-long-enough")))
    assert_401(c.post("/documents", json=DOC, headers={"Authorization": f"Basic {KEY_A}"}))
    assert_401(c.post("/documents", json=DOC, headers={"Authorization": KEY_A}))
    assert_401(c.delete("/documents/keyed-1"))
    assert "Authorization: Bearer" in c.post("/documents", json=DOC).json()["error"]
    assert c.post("/documents", json=DOC, headers=bearer(KEY_A)).status_code == 200
    assert c.post("/documents", json=DOC, headers={"Authorization": f"bearer {KEY_B}"}).json()["unchanged"] == ["keyed-1"]
    # reads stay open unless RAG_PROTECT_READS
    assert c.post("/query", json={"question": "ferry"}).status_code == 200
    assert c.get("/documents/keyed-1").status_code == 200
    assert_401(c.delete("/documents/keyed-1", headers=bearer(KEY_A + "x")))
    assert c.delete("/documents/keyed-1", headers=bearer(KEY_B)).status_code == 200


def test_protect_reads(keyed):
    c = keyed(api_keys=KEY_A, protect_reads=True)
    assert_401(c.post("/query", json={"question": "ferry"}))
    assert_401(c.get("/documents"))
    assert_401(c.get("/documents/anything"))
    assert c.post("/query", json={"question": "ferry"}, headers=bearer(KEY_A)).status_code == 200
    assert c.get("/documents", headers=bearer(KEY_A)).status_code == 200
    assert c.get("/health").status_code == 200  # liveness stays open
    assert c.get("/openapi.json").status_code == 200


def test_no_keys_means_open(keyed):
    c = keyed(protect_reads=True)  # nothing to check against: `rag serve` refuses this combination
    assert c.post("/documents", json=DOC).status_code == 200
    assert c.delete("/documents/keyed-1").status_code == 200


def test_keys_from_a_file_are_kept_as_hashes_only(keyed, tmp_path):
    f = tmp_path / "keys.txt"
    f.write_text(f"# service keys\n{KEY_A}\n\n  {KEY_B}  \n")
    c = keyed(api_keys=f"@{f}")
    guard = c.app.state.guard
    assert guard.digests == (hashlib.sha256(KEY_A.encode()).digest(), hashlib.sha256(KEY_B.encode()).digest())
    assert KEY_A not in repr(guard) and KEY_A.encode() not in b"".join(guard.digests)
    assert c.post("/documents", json=DOC, headers=bearer(KEY_B)).status_code == 200
    assert_401(c.post("/documents", json=DOC, headers=bearer("# service keys")))


def test_every_digest_is_compared_in_constant_time(monkeypatch):
    calls: list[tuple[bytes, bytes]] = []
    real = security.hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", counting)
    guard = Guard(tuple(hashlib.sha256(k.encode()).digest() for k in (KEY_A, KEY_B, "c" * 20)))
    assert guard.accepts(KEY_A) and not guard.accepts("nope")
    assert len(calls) == 6, "no early exit on the first match"
    assert all(len(a) == len(b) == 32 for a, b in calls), "hashes are compared, never the keys"


@pytest.mark.parametrize(
    "raw,phrase",
    [
        ("@/no/such/keys.txt", "cannot read"),
        ("short", "shorter than 16"),
        (" , ,", "no keys"),
        (f"{KEY_A},with space in it xxxxxxxx", "whitespace"),
    ],
)
def test_bad_key_settings_stop_the_start(make_service, raw, phrase):
    with pytest.raises(SecurityConfigError, match=phrase):
        create_app(make_service(api_keys=raw))


def test_empty_key_file(make_service, tmp_path):
    f = tmp_path / "keys"
    f.write_text("# nothing yet\n\n")
    with pytest.raises(SecurityConfigError, match="no keys"):
        create_app(make_service(api_keys=f"@{f}"))


@pytest.mark.parametrize(
    "host,loopback",
    [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("example.com", False), ("", False)],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


# --- `rag serve` -------------------------------------------------------------------------------
def serve(tmp_path: Path, *args: str, **env: str) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    environ |= {"RAG_INDEX_DIR": str(tmp_path / "index"), "RAG_SEEDS_DIR": str(tmp_path / "no-seeds"), **env}
    return subprocess.Popen([sys.executable, "-m", "rag.cli", "serve", *args], cwd=tmp_path, env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize(
    "args,env,phrase",
    [
        (["--host", "0.0.0.0"], {}, "refusing to serve on 0.0.0.0 without API keys"),
        (["--host", "192.168.1.5"], {}, "RAG_API_KEYS"),
        (["--host", "127.0.0.1"], {"RAG_API_KEYS": "@/no/such/file"}, "cannot read the key file"),
        (["--host", "127.0.0.1"], {"RAG_PROTECT_READS": "true"}, "RAG_PROTECT_READS=true needs RAG_API_KEYS"),
        (["--host", "0.0.0.0"], {"RAG_MAX_BODY_BYTES": "nope"}, "max_body_bytes"),
    ],
)
def test_serve_refuses_unsafe_starts_with_exit_2(tmp_path, args, env, phrase):
    proc = serve(tmp_path, *args, "--port", "9", **env)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, (out, err)
    assert phrase in err and "Traceback" not in err
    assert not (tmp_path / "index").exists(), "refused before touching the index"


def test_serve_on_loopback_says_writes_are_open(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = serve(tmp_path, "--host", "127.0.0.1", "--port", str(port))
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(proc.stderr.readline()), daemon=True)
    reader.start()
    reader.join(timeout=120)
    proc.kill()
    proc.communicate(timeout=60)
    assert lines and "writes (POST and DELETE /documents) are open to anyone on this machine" in lines[0]


def test_load_tool_only_talks_to_loopback():
    from eval.load import loopback_url

    assert loopback_url("http://localhost:8000/") == "http://127.0.0.1:8000"
    assert loopback_url("http://127.0.0.1:9") == "http://127.0.0.1:9"
    for url in ("http://10.0.0.1:8000", "https://127.0.0.1:8000", "http://example.com:80", "http://127.0.0.1"):
        with pytest.raises(SystemExit):
            loopback_url(url)
