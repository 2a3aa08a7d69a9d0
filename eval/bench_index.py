"""Vector index structures at scale: flat vs IVF on N vectors, in one run.

    python -m eval.bench_index [--n 1000000] [--queries 200] [--real INDEX_DIR] [--json]

Prints, for each structure: build seconds, memory per vector (bytes of the serialised index, which
is what is held in RAM), search p50/p99 for one query at a time (as the service searches), and
recall@10 against exact search. Synthetic vectors stand in for a million passages: unit vectors
from a 48-dimensional mixture of 1,000 topics mapped into 384 dimensions, since real sentence
embeddings are clustered and of low intrinsic dimension (uniform noise would make any partition
look worse than it is on text). `--real` repeats the comparison on a built index's own vectors with
its chunks' texts as queries' stand-ins (vectors of held-out chunks).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import faiss
import numpy as np

from rag.storage import vectors
from rag.storage.vectors import IndexPolicy

DIM = 384


def synthetic(n: int, seed: int = 0, topics: int = 1000, latent: int = 48) -> np.ndarray:
    """n unit vectors, built in blocks so 1M fits without a second copy."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(topics, latent))
    lift = rng.normal(size=(latent, DIM)) / np.sqrt(latent)
    out = np.empty((n, DIM), np.float32)
    for lo in range(0, n, 100_000):
        m = min(100_000, n - lo)
        z = centres[rng.integers(0, topics, m)] + 0.7 * rng.normal(size=(m, latent))
        x = z @ lift + 0.05 * rng.normal(size=(m, DIM))
        out[lo : lo + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def exact_top(x: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    scores = queries @ x.T
    return np.argsort(-scores, axis=1)[:, :k]


def measure(index: faiss.Index, queries: np.ndarray, truth: np.ndarray, k: int = 10) -> dict[str, float]:
    lat, recall = [], []
    for q, want in zip(queries, truth):
        t0 = time.perf_counter()
        got = vectors.search(index, q, k)
        lat.append((time.perf_counter() - t0) * 1000)
        recall.append(len({i for i, _ in got} & set(want.tolist())) / k)
    size = faiss.serialize_index(index).nbytes
    return {
        "search_p50_ms": float(np.percentile(lat, 50)), "search_p99_ms": float(np.percentile(lat, 99)),
        "recall_at_10": float(np.mean(recall)), "bytes_per_vector": size / index.ntotal,
    }


def compare(x: np.ndarray, queries: np.ndarray, policy: IndexPolicy, label: str) -> dict:
    ids = np.arange(len(x), dtype=np.int64)
    truth = exact_top(x, queries, 10)
    rows = {}
    t0 = time.perf_counter()
    flat = vectors.new_index(DIM)
    vectors.add(flat, ids, x)
    rows["flat"] = {"build_s": time.perf_counter() - t0, **measure(flat, queries, truth)}
    kind, nlist = IndexPolicy(kind=vectors.IndexKind.ivf, nlist=policy.nlist).wants(len(x))
    t0 = time.perf_counter()
    ivf = vectors.build_ivf(ids, x, nlist, policy.nprobe)
    rows[f"ivf nlist={nlist} nprobe={policy.nprobe}"] = {"build_s": time.perf_counter() - t0, **measure(ivf, queries, truth)}
    # deletion and replacement on the IVF index: remove 1%, add them back changed, check they are found
    t0 = time.perf_counter()
    gone = ids[:: 100]
    vectors.remove(ivf, gone.tolist())
    vectors.add(ivf, gone, x[gone])
    replace_s = time.perf_counter() - t0
    found = np.mean([vectors.search(ivf, x[i], 1)[0][0] == i for i in gone[:200]])
    ivf_row = rows[f"ivf nlist={nlist} nprobe={policy.nprobe}"]
    ivf_row["remove_readd_1pct_s"] = replace_s
    ivf_row["readded_found_at_1"] = float(found)
    for row in rows.values():
        row["speedup_vs_flat"] = rows["flat"]["search_p50_ms"] / row["search_p50_ms"]
    return {"corpus": label, "n": len(x), "queries": len(queries), "rows": rows}


def real_vectors(folder: Path, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """A built index's vectors; the last `n_queries` held out as queries."""
    _, x = vectors.all_vectors(vectors.read(max(folder.glob("vectors-*.faiss"), key=lambda p: p.stat().st_mtime)))
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    return x[order[:-n_queries]], x[order[-n_queries:]]


def table(result: dict) -> str:
    lines = [f"{result['corpus']}: {result['n']:,} vectors, {result['queries']} queries, one at a time",
             "| index | build s | bytes/vector | p50 ms | p99 ms | recall@10 | speed-up |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in result["rows"].items():
        lines.append(f"| {name} | {r['build_s']:.1f} | {r['bytes_per_vector']:.0f} | {r['search_p50_ms']:.2f} | "
                     f"{r['search_p99_ms']:.2f} | {r['recall_at_10']:.3f} | {r['speedup_vs_flat']:.1f}x |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--nprobe", type=int, default=IndexPolicy.nprobe)
    ap.add_argument("--nlist", type=int, default=None)
    ap.add_argument("--real", type=Path, default=None, help="an index folder whose vectors to use as well")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    policy = IndexPolicy(nlist=args.nlist, nprobe=args.nprobe)
    results = []
    if args.real is not None:
        x, q = real_vectors(args.real, args.queries)
        results.append(compare(x, q, policy, f"real vectors ({args.real})"))
    x = synthetic(args.n + args.queries)
    results.append(compare(x[: args.n], x[args.n :], policy, "synthetic"))
    print(json.dumps(results, indent=2) if args.json else "\n\n".join(table(r) for r in results))


if __name__ == "__main__":
    main()
