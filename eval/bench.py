"""Speed figures, measured in one run: ingest vs raw encode, warm HTTP query, cold `rag ask`.

    python -m eval.bench [--docs N] [--queries N] [--json]

Ratios come from the same texts in the same process, so a busy machine skews both sides alike.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from eval import metrics as m
from eval.harness import load_gold
from rag.config import Settings
from rag.documents import Document, load_path
from rag.service import Service

ROOT = Path(__file__).resolve().parents[1]
RTQA = ROOT.parent / "shared" / "data" / "realtimeqa-2022" / "corpus.jsonl.gz"


def corpus(n_docs: int) -> list[Document]:
    """Real news: the first articles of RealTime QA when present, else the seeds repeated."""
    if RTQA.exists():
        return list(itertools.islice(load_path(RTQA), n_docs))
    seeds = list(load_path(ROOT / "seeds"))
    return [Document(f"{d.id}-{i}", d.text + f"\n(copy {i})") for i in range(n_docs // len(seeds) + 1) for d in seeds][:n_docs]


def bench_ingest(settings: Settings, docs: list[Document]) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    try:
        service = Service(settings.model_copy(update={"index_dir": folder}))
        t0 = time.perf_counter()
        report = service.ingest(docs)
        ingest_s = time.perf_counter() - t0
        texts = [c.text for d in docs for c in service.chunker.split(d.id, d.text)]
        raw = getattr(service.embedder, "model", None)
        t0 = time.perf_counter()
        if raw is not None and hasattr(raw, "encode"):  # the sentence-transformers model itself
            raw.encode(texts, batch_size=settings.embed_batch_size, normalize_embeddings=True)
        else:
            service.embedder.encode(texts, batch_size=settings.embed_batch_size)
        raw_s = time.perf_counter() - t0
        service.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "ingest_docs": len(docs), "ingest_chunks": report.chunks, "ingest_chunks_per_s": report.chunks / ingest_s,
        "raw_encode_chunks_per_s": len(texts) / raw_s, "ingest_vs_raw_ratio": (report.chunks / ingest_s) / (len(texts) / raw_s),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_http(env: dict[str, str], project: Path, questions: list[str], n: int) -> dict[str, float]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "serve", "--port", str(port)], cwd=project, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            for _ in range(600):
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            for q in questions[:10]:  # warm-up
                client.post("/query", json={"question": q})
            lat = []
            for q in itertools.islice(itertools.cycle(questions), n):
                t0 = time.perf_counter()
                r = client.post("/query", json={"question": q, "answer": True})
                lat.append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"query_http_p50_ms": m.percentile(lat, 50), "query_http_p90_ms": m.percentile(lat, 90), "queries": float(n)}


def bench_cold_ask(env: dict[str, str], project: Path, runs: int = 3) -> dict[str, float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "rag.cli", "ask", "What does Russia demand on NATO?"], cwd=project,
                       env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return {"cold_ask_s_median": m.percentile(times, 50), "cold_ask_s_min": min(times)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=150, help="articles for the ingest figure")
    ap.add_argument("--queries", type=int, default=300, help="HTTP queries for the latency figure")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    settings = Settings()
    out: dict[str, float | str] = {"backend": settings.embed_backend.value, "mode": settings.retrieval_mode.value}
    out |= bench_ingest(settings, corpus(args.docs))
    with tempfile.TemporaryDirectory(prefix="rag-bench-project-") as tmp:
        project = Path(tmp)
        shutil.copytree(ROOT / "seeds", project / "seeds")
        env = dict(os.environ, RAG_INDEX_DIR=str(project / "index"), RAG_CACHE_DIR=str(ROOT / ".cache"))
        subprocess.run([sys.executable, "-m", "rag.cli", "ask", "warm the index"], cwd=project, env=env, check=True, capture_output=True)
        out |= bench_http(env, project, [g["question"] for g in load_gold()], args.queries)
        out |= bench_cold_ask(env, project)
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:28s} {v:.3f}" if isinstance(v, float) else f"{k:28s} {v}")


if __name__ == "__main__":
    main()
