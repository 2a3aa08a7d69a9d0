"""What a backfill on Ray costs against a local ingest, on this machine.

    python -m eval.bench_ray [--articles 300] [--json]

Starts a real two-node Ray cluster here (`ray start --head` plus a second node, one CPU each, as
the tests do), then ingests the same RealTime QA articles into two fresh indexes: once locally
(the default ONNX backend on both cores) and once through `rag ingest --ray`'s path (chunked by Ray
Data tasks, embedded by an actor pool over both nodes, committed here). Prints chunks/s for each,
the cluster's start-up apart, and the overhead: 1 - ray / local chunks/s. On two cores expect about
the same throughput: the figure is what Ray's scheduling, serialisation and actor start cost.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import tempfile
import time
from pathlib import Path

from eval.ray_cluster import RAY_ENV, Cluster
from eval.realtimeqa import CORPUS
from rag.config import Settings
from rag.ingestion import load_path


def articles(n: int, folder: Path) -> list:  # type: ignore[no-untyped-def]
    path = folder / "articles.jsonl"
    with gzip.open(CORPUS, "rt") as f:
        path.write_text("".join(itertools.islice(f, n)))
    return list(load_path(path))


def timed_ingest(folder: Path, docs: list, remote=None) -> dict:  # type: ignore[no-untyped-def]
    from rag.service import Service

    service = Service(Settings(index_dir=folder))
    try:
        t0 = time.perf_counter()
        report = service.ingest(docs, remote=remote)
        seconds = time.perf_counter() - t0
    finally:
        service.close()
    return {"documents": len(report.added), "chunks": report.chunks, "seconds": round(seconds, 1),
            "chunks_per_s": round(report.chunks / seconds, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--articles", type=int, default=300)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.environ.update(RAY_ENV)
    from rag.cluster import RayEmbedding

    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        work = Path(tmp)
        docs = articles(args.articles, work)
        local = timed_ingest(work / "local", docs)
        cluster = Cluster()
        try:
            t0 = time.perf_counter()
            cluster.start()
            start_s = time.perf_counter() - t0
            ray = timed_ingest(work / "ray", docs, RayEmbedding(Settings(index_dir=work / "ray"), cluster.address))
        finally:
            cluster.stop()
    result = {"articles": args.articles, "cores": os.cpu_count(), "local": local, "ray": ray,
              "cluster_start_s": round(start_s, 1), "nodes": 2,
              "overhead": round(1 - ray["chunks_per_s"] / local["chunks_per_s"], 3)}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"local {local['chunks_per_s']} chunks/s, Ray over 2 nodes {ray['chunks_per_s']} chunks/s "
              f"({local['chunks']} chunks); overhead {result['overhead']:.1%}; cluster start {result['cluster_start_s']} s")


if __name__ == "__main__":
    main()
