"""Backfills on a real two-node Ray cluster against a local ingest of the same documents: the same
documents, chunks and offsets, vectors at cosine >= 0.9999 and the same answers; and a backfill
that loses its worker node midway still ends with every document exactly once."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from eval.ray_cluster import RAY_ENV, wait_for

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "seeds"
RTQA = ROOT.parent / "shared" / "data" / "realtimeqa-2022" / "corpus.jsonl.gz"
ARTICLES = 100  # ~900 chunks, each embedded twice (cluster, then locally) by the torch backend


def contents(service) -> dict[str, tuple]:  # type: ignore[no-untyped-def]
    """Each document: its hash and chunks (ordinal, start, end, text), and the chunks' vectors."""
    store, out = service.index.store, {}
    for row in store.documents():
        vids = store.chunk_vids(row.id)
        chunks = store.chunks_by_vid(vids)
        spans = [(chunks[v].ordinal, chunks[v].start, chunks[v].end, chunks[v].text) for v in vids]
        order = np.argsort([s[0] for s in spans])
        out[row.id] = (row.content_hash, [spans[i] for i in order], service.index.vectors_for(vids)[order])
    return out


def assert_same(ray_side, local_side) -> None:  # type: ignore[no-untyped-def]
    a, b = contents(ray_side), contents(local_side)
    assert sorted(a) == sorted(b)
    for doc_id in b:
        assert a[doc_id][0] == b[doc_id][0], doc_id
        assert a[doc_id][1] == b[doc_id][1], doc_id  # same chunks, same offsets, nothing doubled
        cos = np.sum(a[doc_id][2] * b[doc_id][2], axis=1)
        assert cos.min() >= 0.9999, (doc_id, float(cos.min()))
    assert ray_side.index.store.counts() == local_side.index.store.counts()


def rtqa_articles(n: int, path: Path) -> Path:
    with gzip.open(RTQA, "rt") as f:
        rows = [json.loads(line) for line in itertools.islice(f, n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture()
def ray_env(monkeypatch):
    for k, v in RAY_ENV.items():
        monkeypatch.setenv(k, v)


def test_seeds_through_ray_match_a_local_ingest(ray_cluster, ray_env, make_service, seeds_service, gold, tmp_path):
    from rag.cluster import RayEmbedding
    from rag.ingestion import load_path
    from rag.schema import Query

    service = make_service()
    docs = [d for p in sorted(SEEDS.iterdir()) for d in load_path(p)]
    report = service.ingest(docs, remote=RayEmbedding(service.settings, ray_cluster.address))
    assert len(report.added) == len(docs)
    assert_same(service, seeds_service)
    for case in gold[:6]:
        got = service.ask(Query(question=case["question"]))
        want = seeds_service.ask(Query(question=case["question"]))
        assert [p.chunk_id for p in got.passages] == [p.chunk_id for p in want.passages]
        assert got.answer == want.answer


def test_backfill_survives_losing_its_worker_node(ray_cluster, tmp_path):
    """`rag ingest --ray ADDRESS` as a user runs it; the worker node's raylet is SIGKILLed once
    its embedding actor is working. Ray restarts the lost work on the head; the writer keeps
    each chunk once. The cluster gets its worker back afterwards for the other tests.

    The torch backend here: the shipped ONNX model is int8 with dynamic quantisation, whose
    scales are taken over a whole batch, so its vectors move with their batch-mates (cosine
    ~0.995) and a cluster batches differently from one process."""
    from rag.config import Settings
    from rag.service import Service

    corpus = rtqa_articles(ARTICLES, tmp_path / "articles.jsonl")
    env = {**os.environ, **RAY_ENV, "RAG_INDEX_DIR": str(tmp_path / "ray-index"), "HF_HUB_OFFLINE": "1", "RAG_EMBED_BACKEND": "torch"}
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "ingest", "--ray", ray_cluster.address, str(corpus)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        worker = ray_cluster.worker_raylet()

        def embedding_on_worker() -> bool:  # an actor process busy under the worker's raylet
            kids = worker.children(recursive=True)
            return any("MapWorker" in " ".join(k.cmdline()) and k.cpu_percent(0.2) > 20 for k in kids if k.is_running())

        assert wait_for(embedding_on_worker, timeout=240), "no embedding actor ran on the worker node"
        time.sleep(3)
        ray_cluster.kill_worker_node()
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
        ray_cluster.start_worker()
    assert proc.returncode == 0, err[-3000:]
    assert " added" in out, out

    from rag.ingestion import load_path

    local = Service(Settings(index_dir=tmp_path / "local-index", embed_backend="torch"))
    ray_side = Service(Settings(index_dir=tmp_path / "ray-index", embed_backend="torch"), embedder=local.embedder)
    try:
        local.ingest(list(load_path(corpus)))
        assert_same(ray_side, local)
    finally:
        local.close()
        ray_side.close()
