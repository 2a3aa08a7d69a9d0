"""The load tool end to end, briefly: a real `rag serve` over the seeds, a paced writer and query
clients; no errors, no inconsistent passages, and the background merger keeps segments few."""

import secrets

from eval.load import local_server, run, table


def test_paced_writer_and_readers_against_a_live_server():
    key = secrets.token_urlsafe(16)
    with local_server(None, False, key, startup_s=300) as (url, folder):
        r = run(url, key, clients=4, seconds=12, rate=3, folder=folder)
    assert r["errors"] == 0 and r["inconsistent"] == 0 and r["stale"] == 0, r["examples"]
    assert r["documents_added"] >= 20 and r["documents_deleted"] >= 10  # one commit each: 30+ segments written
    assert r["samples"] >= 3 and r["segments_max"] <= 20, r  # merged in the background as they came
    assert r["per_minute"] and r["per_minute"][0]["queries"] > 0
    assert "segments: at most" in table(r)
