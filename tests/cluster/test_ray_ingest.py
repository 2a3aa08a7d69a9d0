"""Backfills on a real two-node Ray cluster against a local ingest of the same documents: the same
documents, chunks and offsets, vectors bit for bit (ONNX) or at cosine >= 0.9999 (torch) and the same answers; a backfill
that loses its worker node midway still ends with every document exactly once; and a backfill
killed after its first commits, then run again, ships only the rest and ends the same."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from eval.ray_cluster import RAY_ENV, wait_for
from support import committed

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


def assert_same(ray_side, local_side, exact: bool = False) -> None:  # type: ignore[no-untyped-def]
    """`exact`: the vectors bit for bit (the ONNX backend runs each text alone, so a cluster's
    batches change nothing); else at cosine >= 0.9999 (torch batches its padded texts)."""
    a, b = contents(ray_side), contents(local_side)
    assert sorted(a) == sorted(b)
    for doc_id in b:
        assert a[doc_id][0] == b[doc_id][0], doc_id
        assert a[doc_id][1] == b[doc_id][1], doc_id  # same chunks, same offsets, nothing doubled
        if exact:
            assert np.array_equal(a[doc_id][2], b[doc_id][2]), doc_id
        cos = np.sum(a[doc_id][2] * b[doc_id][2], axis=1)
        assert cos.min() >= 0.9999, (doc_id, float(cos.min()))
    assert ray_side.index.store.counts() == local_side.index.store.counts()


def rtqa_articles(n: int, path: Path, skip: int = 0) -> Path:
    with gzip.open(RTQA, "rt") as f:
        rows = [json.loads(line) for line in itertools.islice(f, skip, skip + n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture()
def ray_env(monkeypatch):
    for k, v in RAY_ENV.items():
        monkeypatch.setenv(k, v)


SECRETS = {"api_keys": "service-key-never-shipped-0001", "llm_api_key": "llm-key-never-shipped",
           "rerank_api_key": "rerank-key-never-shipped"}
EMBED_KEY = "embedding-server-key-shipped"


def test_seeds_through_ray_match_a_local_ingest(ray_cluster, ray_env, make_service, seeds_service, gold, tmp_path, monkeypatch):
    """Also: what the cluster's tasks and actors receive holds the embedding settings (and the
    embedding server's key) and no other secret. Every Dataset.map_batches call is recorded on its
    way to Ray's own (a spy: the backfill runs as it would)."""
    from ray.data import Dataset

    from rag.cluster import RayEmbedding
    from rag.cluster.ray_ingest import is_worker_setting
    from rag.ingestion import load_path
    from rag.schema import Query

    shipped: list[dict] = []
    real_map = Dataset.map_batches

    def recording(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        shipped.append(kwargs.get("fn_kwargs", {}).get("settings") or getattr(fn, "SETTINGS", None))
        return real_map(self, fn, *args, **kwargs)

    monkeypatch.setattr(Dataset, "map_batches", recording)
    service = make_service(**SECRETS, embed_api_key=EMBED_KEY)
    docs = [d for p in sorted(SEEDS.iterdir()) for d in load_path(p)]
    report = service.ingest(docs, remote=RayEmbedding(service.settings, ray_cluster.address))
    assert len(report.added) == len(docs)
    assert len(shipped) == 2 and all(shipped), "the chunking tasks' kwargs and the embedding actors' settings"
    for values in shipped:
        assert all(is_worker_setting(k) for k in values), sorted(values)
        assert values["embed_api_key"] == EMBED_KEY and values["embed_model"] == service.settings.embed_model
        text = json.dumps(values, default=str)
        assert not [k for k, secret in SECRETS.items() if secret in text]
    assert_same(service, seeds_service, exact=True)
    for case in gold[:6]:
        got = service.ask(Query(question=case["question"]))
        want = seeds_service.ask(Query(question=case["question"]))
        assert [p.chunk_id for p in got.passages] == [p.chunk_id for p in want.passages]
        assert got.answer == want.answer


def test_backfill_survives_losing_its_worker_node(ray_cluster, tmp_path):
    """`rag ingest --ray ADDRESS` as a user runs it; the worker node's raylet is SIGKILLed once
    its embedding actor is working. Ray restarts the lost work on the head; the writer keeps
    each chunk once. The cluster gets its worker back afterwards for the other tests.

    The torch backend here, whose padded batches move a vector by ~1e-7 with its batch mates, so
    the comparison allows cosine 0.9999 (the ONNX backend's vectors match bit for bit: seeds test)."""
    from rag.config import Settings
    from rag.service import Service

    corpus = rtqa_articles(ARTICLES, tmp_path / "articles.jsonl")
    env = {**os.environ, **RAY_ENV, "RAG_INDEX_DIR": str(tmp_path / "ray-index"), "HF_HUB_OFFLINE": "1", "RAG_EMBED_BACKEND": "torch"}
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "ingest", "--ray", ray_cluster.address, str(corpus)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        worker = ray_cluster.worker_raylet()

        def busy_map_worker(proc: psutil.Process) -> bool:
            try:
                return "MapWorker" in " ".join(proc.cmdline()) and proc.cpu_percent(0.2) > 20
            except psutil.Error:  # the process ended (or turned zombie) while being looked at
                return False

        def embedding_on_worker() -> bool:  # an actor process busy under the worker's raylet
            return any(busy_map_worker(k) for k in worker.children(recursive=True))

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


def test_a_killed_backfill_run_again_ships_only_what_was_not_committed(ray_cluster, tmp_path):
    """`rag ingest --ray ADDRESS` SIGKILLed once it has committed twice, then run again as a user
    would: the rerun skips the committed documents by content hash, ships the rest, and the index
    ends with every document once, chunked as the local chunker chunks it. Other articles than the
    worker-loss test's, so a few hundred different ones pass through the cluster."""
    from rag.config import Settings
    from rag.ingestion import load_path
    from rag.service import Service

    corpus = rtqa_articles(ARTICLES, tmp_path / "articles.jsonl", skip=ARTICLES)
    index = tmp_path / "index"
    # Small commits (one segment per ~15 articles), so the kill lands between commits.
    env = {**os.environ, **RAY_ENV, "RAG_INDEX_DIR": str(index), "HF_HUB_OFFLINE": "1", "RAG_COMMIT_CHUNKS": "128"}
    cmd = [sys.executable, "-m", "rag.cli", "ingest", "--ray", ray_cluster.address, str(corpus)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # Polled often: the cluster can hand back its last batches together, and the writer then
        # commits the rest within a few hundred ms, which a half-second poll would miss.
        assert wait_for(lambda: committed(index / "store.sqlite")[0] >= 2 or proc.poll() is not None, timeout=300,
                        every=0.02)
        assert proc.poll() is None, f"the backfill ended before the kill: {proc.communicate()[1][-2000:]}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    kept = committed(index / "store.sqlite")[1]
    assert 0 < kept < ARTICLES

    rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"{ARTICLES - kept} added, 0 replaced, {kept} unchanged" in rerun.stdout, rerun.stdout

    docs = list(load_path(corpus))
    service = Service(Settings(index_dir=index))
    try:
        store = service.index.store
        chunker = service.chunker  # the chunker a local ingest of this index uses
        assert sorted(r.id for r in store.documents()) == sorted(d.id for d in docs)
        for doc in docs:
            rows = store.chunks_by_vid(store.chunk_vids(doc.id)).values()
            got = sorted((c.ordinal, c.start, c.end, c.text) for c in rows)
            want = [(c.ordinal, c.start, c.end, c.text) for c in chunker.split(doc.id, doc.text)]
            assert got == want, doc.id
        assert service.index.vector_count() == store.counts()[1] == sum(len(chunker.split(d.id, d.text)) for d in docs)
    finally:
        service.close()
