"""SIGKILL in the middle of a large `rag ingest`, then restart: the last committed index is whole.

The ingest runs as a real subprocess over ~3000 short synthetic articles in tiny chunks, so it
commits several times; once the store shows a committed generation it is killed. After the
restart every committed article must be intact and searchable, every other one wholly absent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eval.load import synthetic_article, unique_word
from rag.config import Settings
from rag.schema import Query
from rag.storage import segments
from support import committed

ROOT = Path(__file__).resolve().parents[2]
N_DOCS = 3000
# Tiny chunks and the int8 ONNX backend: several thousand chunks, so several commits, in seconds.
ENV = {"RAG_EMBED_BACKEND": "onnx", "RAG_CHUNK_TOKENS": "16", "RAG_CHUNK_OVERLAP": "4"}
WAIT_FOR_COMMIT_S = 300


def _untitled(record: dict) -> dict:
    """No title: it would be embedded with every chunk, and the time to the first commit counts here."""
    record.pop("title")
    return record


def test_sigkill_mid_ingest_leaves_every_document_whole_or_absent(tmp_path):
    records = [_untitled(synthetic_article(n, prefix="crash")) for n in range(N_DOCS)]
    big = tmp_path / "big.jsonl"
    big.write_text("".join(json.dumps(r) + "\n" for r in records))
    index = tmp_path / "index"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env |= ENV | {"RAG_INDEX_DIR": str(index), "RAG_CACHE_DIR": str(ROOT / ".cache")}
    log = tmp_path / "ingest.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "ingest", str(big)], cwd=tmp_path, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + WAIT_FOR_COMMIT_S
    try:
        while (seen := committed(index / "store.sqlite"))[0] < 1:
            assert proc.poll() is None, f"the ingest ended before its first commit:\n{log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "no commit within the time limit"
            time.sleep(0.05)
        time.sleep(0.2)  # into the next batch's encoding (or its commit)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the ingest finished before the kill: make the corpus larger"

    from rag.service import Service

    settings = Settings(index_dir=index, embed_backend="onnx", chunk_tokens=16, chunk_overlap=4, cache_dir=ROOT / ".cache")
    service = Service(settings)
    try:
        _check_whole(service, records, at_least=seen[1])
        # the killed writer's lock died with it: the index takes writes again and tidies its files
        gen = service.index.store.generation()
        extra = [_untitled(synthetic_article(n, prefix="crash")) for n in range(N_DOCS, N_DOCS + 3)]
        from rag.ingestion.documents import document_from_record

        report = service.ingest(document_from_record(r, "extra") for r in extra)
        assert report.added == [r["id"] for r in extra] and service.index.store.generation() == gen + 1
        recorded = {r["name"] for r in service.index.segment_stats()}
        assert {p.name for p in segments.folders(index)} == recorded  # no folder of the killed commit
        assert service.delete([records[0]["id"]]) == [records[0]["id"]]
    finally:
        service.close()


def _check_whole(service, records: list[dict], at_least: int) -> None:
    store, index = service.index.store, service.index
    conn = store.connect()
    snapshot = index.snapshot()
    assert snapshot.generation == store.generation() >= 1

    present = [d.id for d in store.documents()]
    by_id = {r["id"]: r for r in records}
    order = [r["id"] for r in records]
    # commits follow the input order: what survived is exactly a prefix, at least what was seen
    assert sorted(present) == sorted(order[: len(present)])
    assert at_least <= len(present) < len(records)

    # vectors and rows agree: one FAISS vector per stored chunk, same ids, and FTS rows likewise
    vids = {r[0] for r in conn.execute("SELECT vid FROM chunks")}
    assert index.vector_count() == len(vids)
    live = set()
    for view in snapshot.views:
        live |= set(view.segment.ids.tolist()) - set(view.dead.tolist())
    assert live == vids
    assert conn.execute("SELECT COUNT(*) FROM chunks_fts").fetchone()[0] == len(vids)
    assert conn.execute("SELECT COUNT(*) FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents)").fetchone()[0] == 0

    # every committed document is whole: its text, and all of its chunks at their offsets
    for doc_id in present:
        row, text = store.document(doc_id)
        record = by_id[doc_id]
        assert text == record["text"] and row.title is None and row.published == record["published"]
        chunks = conn.execute('SELECT ordinal, start, "end", text FROM chunks WHERE doc_id=? ORDER BY ordinal',
                              (doc_id,)).fetchall()
        expected = service.chunker.split(doc_id, text)
        assert row.chunk_count == len(chunks) == len(expected) >= 2
        assert [tuple(c) for c in chunks] == [(c.ordinal, c.start, c.end, c.text) for c in expected]

    # and searchable, by its unique word and by the vector of its own chunk
    sample = present[:: max(1, len(present) // 12)] + [present[-1]]
    for doc_id in sample:
        n = int(doc_id.rsplit("-", 1)[1])
        word = unique_word(n)
        hits = service.ask(Query(question=word, k=3, mode="lexical", answer=False)).passages
        assert hits and hits[0].doc_id == doc_id, (doc_id, [h.doc_id for h in hits])
        chunk = next(c for c in service.chunker.split(doc_id, by_id[doc_id]["text"]) if word in c.text)
        hits = service.ask(Query(question=chunk.text, k=3, mode="dense", answer=False)).passages
        assert hits and hits[0].doc_id == doc_id, (doc_id, [h.doc_id for h in hits])

    absent = set(order) - set(present)
    assert not absent & set(store.hashes())
