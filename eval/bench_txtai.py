"""This service beside txtai 9 on the same articles, the same packaged model and the same questions,
in one process and one run, so a busy machine slows both alike.

    pip install -e '.[bench]'      # txtai
    python -m eval.bench_txtai [--docs 300] [--queries 200] [--json]

Ingest: ours takes the articles and does everything it does in production (chunking, dedup,
SQLite, FTS5, FAISS). txtai gets our chunks' texts ready-made (it does not chunk), indexed with
`hybrid=True, content=True` (BM25 + dense, texts stored), its closest configuration to ours.
Query: each answers the questions one at a time, top 5: ours hybrid with and without the
extractive answer; txtai hybrid search. Ratios above 1 mean ours is faster.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from eval import metrics as m
from eval.bench import chunk_texts, corpus, print_figures
from eval.realtimeqa import QUESTIONS, load_questions
from rag.config import Settings
from rag.embedding.base import resolve_model_path
from rag.schema import Query
from rag.service import Service


def questions(n: int) -> list[str]:
    if QUESTIONS.exists():
        return [q["question"] for q in load_questions(QUESTIONS)][:n]
    from eval.harness import load_gold

    return [g["question"] for g in load_gold()][:n]


def timed(fn, items: list) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=300)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    try:
        from txtai import Embeddings
    except ImportError:
        raise SystemExit("txtai is not installed: pip install -e '.[bench]'") from None

    docs = corpus(args.docs)
    qs = questions(args.queries)
    folder = Path(tempfile.mkdtemp(prefix="rag-vs-txtai-"))
    try:
        settings = Settings(index_dir=folder / "ours")
        ours = Service(settings)
        ours.embedder.encode(["warm up"])
        t0 = time.perf_counter()
        report = ours.ingest(docs)
        ours_ingest = time.perf_counter() - t0
        texts = chunk_texts(ours, docs)

        theirs = Embeddings(path=resolve_model_path(settings.embed_model), content=True, hybrid=True)
        t0 = time.perf_counter()
        theirs.index([(i, t, None) for i, t in enumerate(texts)])
        theirs_ingest = time.perf_counter() - t0

        for q in qs[:10]:  # warm both
            ours.ask(Query(question=q))
            theirs.search(q, 5)
        ours_search = timed(lambda q: ours.ask(Query(question=q, answer=False)), qs)
        ours_answer = timed(lambda q: ours.ask(Query(question=q)), qs)
        theirs_search = timed(lambda q: theirs.search(q, 5), qs)
        ours.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    p50 = lambda xs: m.percentile(xs, 50)  # noqa: E731
    out = {
        "backend": settings.embed_backend.value, "docs": len(docs), "chunks": report.chunks, "queries": len(qs),
        "ours_ingest_s": ours_ingest, "txtai_ingest_s": theirs_ingest, "ingest_speedup": theirs_ingest / ours_ingest,
        "ours_search_p50_ms": p50(ours_search), "ours_search_p99_ms": m.percentile(ours_search, 99),
        "ours_with_answer_p50_ms": p50(ours_answer), "ours_with_answer_p99_ms": m.percentile(ours_answer, 99),
        "txtai_search_p50_ms": p50(theirs_search), "txtai_search_p99_ms": m.percentile(theirs_search, 99),
        "query_speedup": p50(theirs_search) / p50(ours_search),
        "query_with_answer_speedup": p50(theirs_search) / p50(ours_answer),
    }
    print_figures(out, args.json)


if __name__ == "__main__":
    main()
