"""RealTime QA 2022: an outside benchmark of real news articles and editors' quiz questions."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from rag.config import RetrievalMode
from rag.schema import Query
from rag.service import Service

from . import metrics as m

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "realtimeqa-2022"
CORPUS = DATA / "corpus.jsonl.gz"
QUESTIONS = DATA / "dev.jsonl"
DEPTH = 10


@dataclass(frozen=True)
class BenchmarkPaths:
    corpus: Path = CORPUS
    questions: Path = QUESTIONS

    def missing(self) -> list[Path]:
        return [p for p in (self.corpus, self.questions) if not p.exists()]


def load_questions(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def ensure_ingested(service: Service, corpus: Path, on_progress=None) -> float | None:  # type: ignore[no-untyped-def]
    """Ingest the corpus once; returns the seconds it took, or None when it was already there."""
    if service.index.store.meta("benchmark_corpus") == str(corpus.resolve()):
        stored = service.index.store.meta("benchmark_ingest_seconds")
        return None if stored is None else float(stored)
    report = service.ingest_paths([corpus], on_progress=on_progress)
    from rag.storage.store import Store

    conn = service.index.store.connect()
    Store.set_meta(conn, "benchmark_corpus", str(corpus.resolve()))
    Store.set_meta(conn, "benchmark_ingest_seconds", f"{report.seconds:.1f}")
    return report.seconds


def run(service: Service, questions: list[dict], mode: RetrievalMode | None = None) -> dict[str, float]:
    """hit@1/5/10 and MRR@10 by gold URL, answer-in-passages@5/10, latency, over all questions."""
    rows = []
    for q in questions:
        t0 = time.perf_counter()
        resp = service.ask(Query(question=q["question"], k=DEPTH), mode)
        latency = (time.perf_counter() - t0) * 1000
        urls = [p.source or "" for p in resp.passages]
        # A passage shown once for several copies of a story counts for each copy's URL.
        for i, p in enumerate(resp.passages):
            also = getattr(p, "also_in_sources", None) or []
            if q["gold_url"] in also:
                urls[i] = q["gold_url"]
        rank = m.hits_by_key(urls, q["gold_url"])
        texts = [p.text for p in resp.passages]
        rows.append({
            "hit@1": m.hit_at(rank, 1), "hit@5": m.hit_at(rank, 5), "hit@10": m.hit_at(rank, 10),
            "rr@10": m.reciprocal_rank(rank, 10),
            "answer_in_passages@5": float(m.answer_in_passages(texts, q["answer"], 5)),
            "answer_in_passages@10": float(m.answer_in_passages(texts, q["answer"], 10)),
            "latency_ms": latency,
        })
    lat = [r["latency_ms"] for r in rows]
    out = {k: m.mean(r[k] for r in rows) for k in rows[0] if k != "latency_ms"} if rows else {}
    out["mrr@10"] = out.pop("rr@10", 0.0)
    out |= {"latency_p50_ms": m.percentile(lat, 50), "latency_p95_ms": m.percentile(lat, 95), "questions": float(len(rows))}
    return out
