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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from eval import metrics as m
from eval.harness import load_gold
from eval.serving import LOOPBACK, free_port, stop, wait_until_up
from rag.config import Settings
from rag.ingestion.documents import Document, load_path
from rag.service import Service

ROOT = Path(__file__).resolve().parents[1]
RTQA = ROOT.parent / "shared" / "data" / "realtimeqa-2022" / "corpus.jsonl.gz"


def corpus(n_docs: int) -> list[Document]:
    """Real news: the first articles of RealTime QA when present, else the seeds repeated."""
    if RTQA.exists():
        return list(itertools.islice(load_path(RTQA), n_docs))
    seeds = list(load_path(ROOT / "seeds"))
    return [Document(f"{d.id}-{i}", d.text + f"\n(copy {i})") for i in range(n_docs // len(seeds) + 1) for d in seeds][:n_docs]


def chunk_texts(service: Service, docs: list[Document]) -> list[str]:
    """The texts `service` embeds for `docs`: each chunk under its article's title."""
    from rag.text import context_text

    return [context_text(d.title, c.text) for d in docs for c in service.chunker.split(d.id, d.text)]


def print_figures(out: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(out))
        return
    for k, v in out.items():
        print(f"{k:34s} {v:.3f}" if isinstance(v, float) else f"{k:34s} {v}")


def bench_ingest(settings: Settings, docs: list[Document]) -> dict[str, float]:
    """Chunks/s for a full ingest with each backend, and for each backend's encode alone of the
    same chunk texts (torch's is `SentenceTransformer.encode` itself, the raw model): the ratios
    are what the pipeline costs."""
    out: dict[str, float] = {"ingest_docs": float(len(docs))}
    for backend in ("onnx", "torch"):
        folder = Path(tempfile.mkdtemp(prefix="rag-bench-"))
        try:
            service = Service(settings.model_copy(update={"index_dir": folder, "embed_backend": backend}))
            # one-off process costs (model session, lazily imported splitter and MinHash) out of the figure
            service.embedder.encode(["warm up"])
            service.ingest([Document("warm-up", "A warm-up article. " * 20)])
            service.delete(["warm-up"])
            t0 = time.perf_counter()
            report = service.ingest(docs)
            out[f"ingest_{backend}_chunks_per_s"] = report.chunks / (time.perf_counter() - t0)
            out["ingest_chunks"] = float(report.chunks)
            texts = chunk_texts(service, docs)
            t0 = time.perf_counter()  # the same backend's encode alone: what the pipeline adds
            service.embedder.encode(texts, batch_size=settings.embed_batch_size)
            out[f"raw_{backend}_encode_chunks_per_s"] = len(texts) / (time.perf_counter() - t0)
            service.close()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    # TorchEmbedder.encode is SentenceTransformer.encode(normalize_embeddings=True): the raw model
    out["raw_model_encode_chunks_per_s"] = out["raw_torch_encode_chunks_per_s"]
    for backend in ("onnx", "torch"):
        out[f"ingest_{backend}_vs_raw_model"] = out[f"ingest_{backend}_chunks_per_s"] / out["raw_model_encode_chunks_per_s"]
        out[f"ingest_{backend}_vs_own_encode"] = out[f"ingest_{backend}_chunks_per_s"] / out[f"raw_{backend}_encode_chunks_per_s"]
    return out


def bench_http(env: dict[str, str], project: Path, questions: list[str], n: int, label: str) -> dict[str, float]:
    """Warm `POST /query` (hybrid, answer on) against a live server, one request at a time."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "serve", "--port", str(port)], cwd=project, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://{LOOPBACK}:{port}"
    try:
        wait_until_up(proc, f"{url}/health", timeout_s=120)
        with httpx.Client(base_url=url, timeout=30) as client:
            for q in questions[:10]:  # warm-up
                client.post("/query", json={"question": q})
            lat = []
            for q in itertools.islice(itertools.cycle(questions), n):
                t0 = time.perf_counter()
                r = client.post("/query", json={"question": q, "answer": True})
                lat.append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
    finally:
        stop(proc)
    return {f"query_{label}_p50_ms": m.percentile(lat, 50), f"query_{label}_p90_ms": m.percentile(lat, 90),
            f"query_{label}_p99_ms": m.percentile(lat, 99),
            f"query_{label}_n": float(n)}


def bench_cold_ask(env: dict[str, str], project: Path, runs: int = 5) -> dict[str, float]:
    """Process start to printed answer, `rag ask` on the seeds index."""
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
    ap.add_argument("--queries", type=int, default=300, help="HTTP queries for each latency figure")
    ap.add_argument("--rtqa-index", type=Path, default=None, help="a built RealTime QA index to time queries on")
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    settings = Settings()
    out: dict[str, float | str] = {"backend": settings.embed_backend.value, "mode": settings.retrieval_mode.value}
    if not args.skip_ingest:
        out |= bench_ingest(settings, corpus(args.docs))
    with tempfile.TemporaryDirectory(prefix="rag-bench-project-") as tmp:
        project = Path(tmp)
        shutil.copytree(ROOT / "seeds", project / "seeds")
        env = dict(os.environ, RAG_INDEX_DIR=str(project / "index"), RAG_CACHE_DIR=str(ROOT / ".cache"))
        subprocess.run([sys.executable, "-m", "rag.cli", "ask", "warm the index"], cwd=project, env=env, check=True, capture_output=True)
        out |= bench_http(env, project, [g["question"] for g in load_gold()], args.queries, "seeds")
        out |= bench_cold_ask(env, project)
        if args.rtqa_index is not None:
            from eval.realtimeqa import QUESTIONS, load_questions

            # no seeds folder: the server must not add the seed articles to the benchmark's index
            rtqa_env = dict(env, RAG_INDEX_DIR=str(args.rtqa_index.resolve()), RAG_SEEDS_DIR=str(project / "none"))
            qs = [q["question"] for q in load_questions(QUESTIONS)]
            out |= bench_http(rtqa_env, project, qs, args.queries, "rtqa")
    print_figures(out, args.json)


if __name__ == "__main__":
    main()
