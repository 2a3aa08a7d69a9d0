"""`rag watches add|list|events|rm|test` as a user runs them: subprocesses in a fresh project folder,
the test delivery checked by a real receiver that verifies its signature."""

from __future__ import annotations

import json
import os
import subprocess
import sys

RAG = [sys.executable, "-m", "rag.cli"]


def run(folder, *args, **env):
    return subprocess.run(
        RAG + list(args), cwd=folder, capture_output=True, text=True, timeout=300,
        env={**os.environ, "RAG_INDEX_DIR": str(folder / "index"), **env},
    )


def test_add_list_test_and_remove_a_watch(tmp_path, receiver):
    loopback = {"RAG_FETCH_ALLOW_PRIVATE": "true"}
    r = run(tmp_path, "watches", "add", "What does Russia demand on NATO?", "--url", receiver.url)
    assert r.returncode == 2 and "webhook URL refused" in r.stderr and "RAG_FETCH_ALLOW_PRIVATE" in r.stderr
    r = run(tmp_path, "watches", "add", "What?", "--url", "ftp://example.org/x", **loopback)
    assert r.returncode == 2 and "only http and https" in r.stderr
    r = run(tmp_path, "watches", "add", "What?", "--url", receiver.url, "--secret", "nope", **loopback)
    assert r.returncode == 2 and "whsec_" in r.stderr

    r = run(tmp_path, "watches", "add", "What does Russia demand on NATO?", "--url", receiver.url, "--json", **loopback)
    assert r.returncode == 0, r.stderr
    made = json.loads(r.stdout)
    receiver.secret = made["secret"]
    listed = run(tmp_path, "watches", "list")
    assert listed.returncode == 0 and made["id"] in listed.stdout and receiver.url in listed.stdout

    t = run(tmp_path, "watches", "test", made["id"], **loopback)
    assert t.returncode == 0, t.stderr
    assert "Delivered: the webhook answered HTTP 200" in t.stdout
    [got] = receiver.deliveries
    assert got.error is None and got.payload["type"] == "watch.test"
    assert got.payload["data"]["question"] == "What does Russia demand on NATO?"

    receiver.statuses = [503]
    t = run(tmp_path, "watches", "test", made["id"], **loopback)
    assert t.returncode == 1 and "did not accept the test delivery" in t.stderr and "HTTP 503" in t.stderr

    assert run(tmp_path, "watches", "test", "w_nope").returncode == 1

    # Both test deliveries are events: the one delivered, the refused one with the receiver's status.
    r = run(tmp_path, "watches", "events", made["id"], "--json")
    assert r.returncode == 0, r.stderr
    sent = json.loads(r.stdout)
    assert [e["type"] for e in sent] == ["watch.test", "watch.test"], sent
    assert sent[0]["status"] == "delivered" and sent[0]["last_status"] == 200 and sent[1]["last_status"] == 503
    plain = run(tmp_path, "watches", "events", made["id"]).stdout.splitlines()
    assert len(plain) == 2 and plain[0].startswith(sent[0]["id"]) and "delivered (1 attempt(s), last HTTP 200)" in plain[0]
    r = run(tmp_path, "watches", "events", "w_nope")
    assert r.returncode == 1 and "no watch with id 'w_nope'" in r.stderr and "Traceback" not in r.stderr
    r = run(tmp_path, "watches", "rm", made["id"], "w_nope")
    assert r.returncode == 1 and f"Removed 1 watch(es): {made['id']}" in r.stdout and "'w_nope'" in r.stderr
    assert "No standing questions." in run(tmp_path, "watches", "list").stdout
