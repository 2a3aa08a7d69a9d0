"""The vector index at scale, in one run per question:

    python -m eval.bench_index structures [--n 1000000] [--real INDEX_DIR] [--json]
    python -m eval.bench_index commit [--sizes 65000,1000000] [--json]
    python -m eval.bench_index scale [--n 10000000] [--workdir DIR] [--json]

`structures`: flat vs IVF-Flat vs IVF-PQ (with exact re-scoring) on the same vectors: build
seconds, memory per vector, search p50/p99 one query at a time (as the service searches), and
recall@10 against exact search. `commit`: what adding 100 chunks costs an index of each size, bytes
written and seconds, for the segmented commit and for the single-file commit it replaced (clone
the whole FAISS index, add, write the whole file), measured on the same index in the same run.
`scale`: one segment of N vectors built from a memory-mapped file (never all in memory), then, in a
fresh process, its resident memory and search figures: undated, as of a date in the middle of the
ten years its vectors' publication times span (in arrival order, a feed's jitter of days), and
within the last 7 days, interleaved query by query; recall against exact search over the
vectors each limit admits.

Synthetic vectors stand in for passages: unit vectors from a 48-dimensional mixture of 1,000 topics
mapped into 384 dimensions, since real sentence embeddings are clustered and of low intrinsic
dimension (uniform noise would make any partition look worse than it is on text). Each run prints
how close neighbours are (mean cosine of the 1st and 10th nearest, and the median pair), to set
beside RealTime QA's real vectors: 0.784, 0.644 and 0.078.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np

from rag.storage import segments, vectors
from rag.storage.index import Batch, Index, Manifest, PendingDoc
from rag.storage.store import ChunkRow, DocRow
from rag.storage.timerange import Plan, TimeRange
from rag.storage.vectors import IndexKind, IndexPolicy

DIM = 384
BLOCK = 100_000


def synthetic_blocks(n: int, seed: int = 0, topics: int = 1000, latent: int = 48) -> Iterator[np.ndarray]:
    """n unit vectors in blocks of BLOCK, the same sequence for the same seed whatever n."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(topics, latent))
    lift = rng.normal(size=(latent, DIM)) / np.sqrt(latent)
    for lo in range(0, n, BLOCK):
        m = min(BLOCK, n - lo)
        z = centres[rng.integers(0, topics, m)] + 0.7 * rng.normal(size=(m, latent))
        x = z @ lift + 0.05 * rng.normal(size=(m, DIM))
        yield (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def synthetic(n: int, seed: int = 0) -> np.ndarray:
    return np.vstack(list(synthetic_blocks(n, seed))) if n else np.zeros((0, DIM), np.float32)


def neighbourhood(x: np.ndarray, queries: np.ndarray) -> dict[str, float]:
    """How close the nearest neighbours are: what makes a partition easy or hard."""
    s = np.sort(queries[:50] @ x[:200_000].T, axis=1)
    return {"nn1_cosine": round(float(s[:, -1].mean()), 3), "nn10_cosine": round(float(s[:, -10].mean()), 3),
            "median_cosine": round(float(np.median(s)), 3)}


def exact_top(x: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Row numbers of each query's exact top k, streamed over x (which may be a memory map)."""
    return exact_tops(x, queries, k, [None])[0]


def exact_tops(x: np.ndarray, queries: np.ndarray, k: int, keeps: list[np.ndarray | None]) -> list[np.ndarray]:
    """`exact_top` among the rows each mask of `keeps` admits (None: all), in one pass over x."""
    best_s = [np.full((len(queries), k), -np.inf, np.float32) for _ in keeps]
    best_i = [np.zeros((len(queries), k), np.int64) for _ in keeps]
    for lo in range(0, len(x), 500_000):
        whole = queries @ np.asarray(x[lo : lo + 500_000]).T
        for j, keep in enumerate(keeps):
            s = whole if keep is None else np.where(keep[lo : lo + whole.shape[1]], whole, -np.inf)
            top = np.argpartition(-s, min(k, s.shape[1] - 1), axis=1)[:, :k]
            cand_s = np.concatenate([best_s[j], np.take_along_axis(s, top, 1)], axis=1)
            cand_i = np.concatenate([best_i[j], top + lo], axis=1)
            order = np.argsort(-cand_s, axis=1, kind="stable")[:, :k]
            best_s[j], best_i[j] = np.take_along_axis(cand_s, order, 1), np.take_along_axis(cand_i, order, 1)
    return best_i


# Publication times of the scale run: ten years up to 2026-01-01, in arrival order give or take a
# feed's jitter (a normal of two days' spread).
END = 1_767_225_600
TEN_YEARS = 3652 * 86_400


def synthetic_times(n: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = END - TEN_YEARS + (np.arange(n, dtype=np.float64) * (TEN_YEARS / max(n, 1)))
    return np.minimum(END, t + rng.normal(0, 2 * 86_400, n)).astype(np.int64)


def timed_search(search, queries: np.ndarray, truth: np.ndarray, k: int = 10) -> dict[str, float]:  # type: ignore[no-untyped-def]
    lat, recall = [], []
    for q, want in zip(queries, truth):
        t0 = time.perf_counter()
        got = search(q, k)
        lat.append((time.perf_counter() - t0) * 1000)
        recall.append(len(set(np.asarray(got).tolist()) & set(want.tolist())) / k)
    return {"search_p50_ms": round(float(np.percentile(lat, 50)), 3), "search_p99_ms": round(float(np.percentile(lat, 99)), 3),
            "recall_at_10": round(float(np.mean(recall)), 4)}


# --- structures ----------------------------------------------------------------------------------
def compare(x: np.ndarray, queries: np.ndarray, policy: IndexPolicy, label: str) -> dict:
    """Flat, IVF-Flat and IVF-PQ segments over the same vectors (ids are row numbers)."""
    ids = np.arange(len(x), dtype=np.int64)
    truth = exact_top(x, queries, 10)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        for kind in (IndexKind.flat, IndexKind.ivf, IndexKind.ivfpq):
            p = IndexPolicy(kind=kind, nlist=policy.nlist, nprobe=policy.nprobe, rescore=policy.rescore)
            t0 = time.perf_counter()
            w = segments.build(Path(tmp), ids, x, p)
            segments.publish(Path(tmp), w.name)
            seg = segments.open_segment(Path(tmp), w.name, w.structure, p)
            build_s = time.perf_counter() - t0
            view = segments.View(seg, np.zeros(0, np.int64))
            name = w.structure if w.structure == "flat" else f"{w.structure} nlist={vectors.ivf_of(seg.index).nlist} nprobe={p.nprobe}"
            if w.structure == "ivfpq":
                name += f" rescore={p.rescore}x"
            rows[name] = {"build_s": round(build_s, 2), "memory_bytes_per_vector": round(seg.memory_bytes / len(x), 1),
                          **timed_search(lambda q, k: view.search(q, k)[0], queries, truth)}
    base = next(iter(rows.values()))["search_p50_ms"]
    for row in rows.values():
        row["speedup_vs_flat"] = round(base / row["search_p50_ms"], 1)
    return {"corpus": label, "n": len(x), "queries": len(queries), **neighbourhood(x, queries), "rows": rows}


def real_vectors(folder: Path, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """A built index's vectors (segments or a single file); the last `n_queries` held out as queries."""
    manifest = Index.read_manifest(folder)
    if manifest is None:
        raise SystemExit(f"error: {folder} holds no index")
    index = Index(folder, manifest)
    x = np.vstack([v.segment.vectors_of(np.flatnonzero(~np.isin(v.segment.ids, v.dead))) for v in index.snapshot().views])
    order = np.random.default_rng(0).permutation(len(x))
    return x[order[:-n_queries]], x[order[-n_queries:]]


def structures_table(result: dict) -> str:
    lines = [f"{result['corpus']}: {result['n']:,} vectors, {result['queries']} queries one at a time; neighbours: "
             f"1st {result['nn1_cosine']}, 10th {result['nn10_cosine']}, median pair {result['median_cosine']}",
             "| structure | build s | memory B/vector | p50 ms | p99 ms | recall@10 | speed-up |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in result["rows"].items():
        lines.append(f"| {name} | {r['build_s']:.1f} | {r['memory_bytes_per_vector']:.0f} | {r['search_p50_ms']:.2f} | "
                     f"{r['search_p99_ms']:.2f} | {r['recall_at_10']:.3f} | {r['speedup_vs_flat']:.1f}x |")
    return "\n".join(lines)


# --- commit --------------------------------------------------------------------------------------
def _written_bytes() -> int:
    """Bytes this process has caused to be written to storage (Linux /proc/self/io)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/self/io")


def _batch(index: Index, x: np.ndarray, first_doc: int, per_doc: int = 10) -> Batch:
    batch = Batch()
    vids = index.reserve_vids(len(x))
    for d in range(0, len(x), per_doc):
        doc = f"doc-{first_doc + d // per_doc}"
        text = f"Article {doc} on topic {d % 997}: talks, ports, grain and the ceasefire."
        chunks = [ChunkRow(vids[d + i], doc, i, 0, len(text), text) for i in range(min(per_doc, len(x) - d))]
        batch.upserts.append(PendingDoc(DocRow(doc, None, None, None, doc, len(chunks)), text, chunks, x[d : d + len(chunks)]))
    return batch


def commit_cost(n: int, adds: int = 100, repeats: int = 5) -> dict:
    """Build an index of n synthetic chunks, then commit `adds` more, segmented and single-file."""
    folder = Path(tempfile.mkdtemp(prefix="bench-commit-"))
    try:
        manifest = Manifest(model_name="synthetic", model_sha256="0" * 64, backend="none", dim=DIM, chunker={})
        index = Index.open(folder, manifest)
        t0 = time.perf_counter()
        gen = synthetic_blocks(n + adds * repeats, seed=1)
        done = 0
        pending = []
        for block in gen:
            pending.append(block)
            if sum(len(b) for b in pending) >= 50_000 or done + sum(len(b) for b in pending) >= n:
                x = np.vstack(pending)
                take = x[: n - done]
                extra = x[n - done :]
                with index.writer():
                    index.commit(_batch(index, take, done // 10))
                done += len(take)
                pending = [extra] if len(extra) else []
                if done >= n:
                    break
        rest = np.vstack(pending + list(gen))
        index.maintain()  # as `rag ingest` leaves it: merged
        build_s = time.perf_counter() - t0
        reader = Index(folder, manifest)  # another process's view, e.g. `rag serve`
        after, reader_s, seg_bytes = [], [], []
        for r in range(repeats):
            batch = _batch(index, rest[r * adds : (r + 1) * adds], 10**7 + r * 100)
            b0, t1 = _written_bytes(), time.perf_counter()
            with index.writer():
                index.commit(batch)
            after.append((time.perf_counter() - t1, _written_bytes() - b0))
            seg_bytes.append(index.segment_stats()[-1]["disk_bytes"])
            t2 = time.perf_counter()
            reader.snapshot()
            reader_s.append(time.perf_counter() - t2)
        before = single_file_cost(index, rest[:adds])
        segs = index.segment_stats()
        return {
            "n": n, "added_chunks": adds, "build_s": round(build_s, 1),
            "segments": [(s["structure"], s["vectors"]) for s in segs],
            "after": {"commit_s": round(float(np.median([a[0] for a in after])), 4),
                      "bytes_written": int(np.median([a[1] for a in after])),
                      "segment_bytes": int(np.median(seg_bytes)),
                      "reader_refresh_s": round(float(np.median(reader_s)), 4)},
            "before": before,
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def single_file_cost(index: Index, new: np.ndarray) -> dict:
    """What the single-file commit did to the vectors: clone the whole FAISS index, add, write the
    whole file (fsynced), and a reader read it back whole. Rows cost the same either way and are
    not counted here; the segmented figures include them."""
    views = index.snapshot().views
    ids = np.concatenate([v.segment.ids for v in views])
    x = np.vstack([np.asarray(v.segment.vecs) for v in views])
    policy = IndexPolicy()
    kind, nlist = ("ivf", vectors.default_nlist(len(x))) if len(x) > policy.ivf_above else ("flat", 0)
    if kind == "ivf":
        old = vectors.build_ivf(ids, x, nlist, policy.nprobe)
    else:
        old = vectors.new_index(DIM)
        vectors.add(old, ids, x)
    del x
    path = index.folder / "single-file.faiss"
    b0, t0 = _written_bytes(), time.perf_counter()
    copy = faiss.clone_index(old)
    vectors.add(copy, np.arange(10**9, 10**9 + len(new)), new)
    vectors.write(copy, path)
    commit_s = time.perf_counter() - t0
    written = _written_bytes() - b0
    t1 = time.perf_counter()
    vectors.read(path)
    reader_s = time.perf_counter() - t1
    path.unlink()
    return {"structure": kind, "commit_s": round(commit_s, 4), "bytes_written": written, "reader_refresh_s": round(reader_s, 4)}


def commit_table(rows: list[dict]) -> str:
    lines = ["| index | commit s (single file → segments) | bytes written (single file → segments) | reader refresh s |",
             "|---:|---:|---:|---:|"]
    for r in rows:
        b, a = r["before"], r["after"]
        lines.append(f"| {r['n']:,} | {b['commit_s']:.3f} → {a['commit_s']:.3f} | {b['bytes_written']:,} → {a['bytes_written']:,} | "
                     f"{b['reader_refresh_s']:.3f} → {a['reader_refresh_s']:.4f} |")
    return "\n".join(lines)


# --- scale ---------------------------------------------------------------------------------------
def scale(n: int, workdir: Path, n_queries: int = 200) -> dict:
    """One segment of n vectors (IVF-PQ by the default policy above PQ_ABOVE), measured fresh."""
    workdir.mkdir(parents=True, exist_ok=True)
    source = np.lib.format.open_memmap(workdir / "source.npy", mode="w+", dtype=np.float32, shape=(n, DIM))
    t0 = time.perf_counter()
    queries = None
    for i, block in enumerate(synthetic_blocks(n + n_queries, seed=2)):
        lo = i * BLOCK
        if lo + len(block) <= n:
            source[lo : lo + len(block)] = block
        else:
            keep = max(0, n - lo)
            source[lo : lo + keep] = block[:keep]
            queries = block[keep:] if queries is None else np.vstack([queries, block[keep:]])
    source.flush()
    generate_s = time.perf_counter() - t0
    assert queries is not None and len(queries) == n_queries
    times = synthetic_times(n)
    limits = {"as of the middle": (None, END - TEN_YEARS // 2), "last 7 days": (END - 7 * 86_400, END)}
    t1 = time.perf_counter()
    keeps = [None] + [TimeRange(a, b).admits(times) for a, b in limits.values()]
    truths = exact_tops(source, queries, 10, keeps)
    exact_s = time.perf_counter() - t1
    near = neighbourhood(source, queries)
    root = workdir / "index"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    policy = IndexPolicy()
    t2 = time.perf_counter()
    w = segments.build(root, np.arange(n, dtype=np.int64), source, policy, times=times)
    segments.publish(root, w.name)
    build_s = time.perf_counter() - t2
    del source
    (workdir / "source.npy").unlink()  # its pages would otherwise crowd the page cache
    np.save(workdir / "queries.npy", queries)
    np.save(workdir / "truth.npy", truths[0])
    for j, name in enumerate(limits, start=1):
        np.save(workdir / f"truth-{j}.npy", truths[j])
    (workdir / "limits.json").write_text(json.dumps({name: [a, b, float(keeps[j].mean())]  # type: ignore[union-attr]
                                                     for j, (name, (a, b)) in enumerate(limits.items(), start=1)}))
    child = subprocess.run([sys.executable, "-m", "eval.bench_index", "_search", str(root), w.name, w.structure, str(workdir)],
                           capture_output=True, text=True, check=True)
    return {"n": n, "structure": w.structure, "generate_s": round(generate_s, 1), "exact_search_s": round(exact_s, 1),
            "build_s": round(build_s, 1), "disk_bytes": w.bytes, **near, **json.loads(child.stdout.splitlines()[-1])}


def _rss() -> dict[str, int]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return fields


def _uncache(folder: Path) -> None:
    """Drop a segment's files from the page cache, as after a restart: the build just wrote them, and
    a mapping over cached pages is filled a whole large folio per fault, so resident memory would
    show the cache rather than the pages the searches read."""
    for f in folder.iterdir():
        fd = os.open(f, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _search_child(root: Path, name: str, structure: str, workdir: Path) -> None:
    """Open the segment in a fresh process and search it: resident memory is then the index's."""
    queries, truth = np.load(workdir / "queries.npy"), np.load(workdir / "truth.npy")
    _uncache(root / segments.FOLDER / name)
    before = _rss()
    t0 = time.perf_counter()
    policy = IndexPolicy()
    seg = segments.open_segment(root, name, structure, policy)
    open_s = time.perf_counter() - t0
    view = segments.View(seg, np.zeros(0, np.int64))
    limits = json.loads((workdir / "limits.json").read_text())
    ranges = {name: TimeRange(a, b) for name, (a, b, _) in limits.items()}
    truths = {name: np.load(workdir / f"truth-{j}.npy") for j, name in enumerate(limits, start=1)}
    timed_search(lambda q, k: view.search(q, k)[0], queries[:20], truth[:20])  # first touches
    for name, within in ranges.items():
        timed_search(lambda q, k: view.search(q, k, within=within)[0], queries[:20], truths[name][:20])
    figures, dated = _interleaved(view, queries, truth, ranges, truths)
    after = _rss()
    print(json.dumps({
        "open_s": round(open_s, 1), "threads": faiss.omp_get_max_threads(), "nprobe": policy.nprobe,
        "rescore": policy.rescore, "nlist": vectors.ivf_of(seg.index).nlist if structure != "flat" else 0,
        "index_memory_bytes": seg.memory_bytes,
        "rss_bytes": after["VmRSS"] - before["VmRSS"], "rss_peak_bytes": after["VmHWM"],
        "rss_anon_bytes": after.get("RssAnon", 0) - before.get("RssAnon", 0),
        "rss_mapped_file_bytes": after.get("RssFile", 0) - before.get("RssFile", 0), **figures,
        "dated": {name: {"admitted_share": round(limits[name][2], 5), **f} for name, f in dated.items()},
    }))


def _interleaved(view: segments.View, queries: np.ndarray, truth: np.ndarray, ranges: dict[str, TimeRange],
                 truths: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """Undated and each date limit query by query, so load from elsewhere falls on all alike;
    each limit's p50 also as a ratio to the undated p50, with the strategy the segment took. Which
    goes first turns with each query: the first pays for the rows of the vectors file the others
    then find in the page cache."""
    lat: dict[str, list[float]] = {"": [], **{name: [] for name in ranges}}
    recall: dict[str, list[float]] = {name: [] for name in lat}
    plans = {name: Plan() for name in ranges}
    names = list(lat)
    for i, q in enumerate(queries):
        for name in names[i % len(names):] + names[: i % len(names)]:
            want = truth[i] if not name else truths[name][i]
            t0 = time.perf_counter()
            got = view.search(q, 10) if not name else view.search(q, 10, within=ranges[name], plan=plans[name])
            lat[name].append((time.perf_counter() - t0) * 1000)
            recall[name].append(len(set(got[0].tolist()) & set(want.tolist())) / 10)

    def fig(name: str) -> dict:
        return {"search_p50_ms": round(float(np.percentile(lat[name], 50)), 3),
                "search_p99_ms": round(float(np.percentile(lat[name], 99)), 3),
                "recall_at_10": round(float(np.mean(recall[name])), 4)}

    base = fig("")
    dated = {name: {**fig(name), "p50_vs_undated": round(fig(name)["search_p50_ms"] / base["search_p50_ms"], 3),
                    "recall_minus_undated": round(fig(name)["recall_at_10"] - base["recall_at_10"], 4),
                    "plan": dict(plans[name].vector)} for name in ranges}
    return base, dated


# --- command line --------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    s = sub.add_parser("structures", help="flat vs IVF-Flat vs IVF-PQ on the same vectors")
    s.add_argument("--n", type=int, default=1_000_000)
    s.add_argument("--queries", type=int, default=200)
    s.add_argument("--nprobe", type=int, default=IndexPolicy.nprobe)
    s.add_argument("--nlist", type=int, default=None)
    s.add_argument("--rescore", type=int, default=IndexPolicy.rescore)
    s.add_argument("--real", type=Path, default=None, help="an index folder whose vectors to use as well")
    c = sub.add_parser("commit", help="bytes and seconds of committing 100 chunks, single file vs segments")
    c.add_argument("--sizes", default="65000,1000000", help="comma-separated index sizes")
    g = sub.add_parser("scale", help="one segment of N vectors: memory, latency, recall, build time")
    g.add_argument("--n", type=int, default=10_000_000)
    g.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bench-scale")
    g.add_argument("--keep", action="store_true", help="keep the workdir: `_search ROOT NAME STRUCTURE WORKDIR` measures it again")
    for p in (s, c, g):
        p.add_argument("--json", action="store_true")
    h = sub.add_parser("_search")
    for a in ("root", "name", "structure", "workdir"):
        h.add_argument(a)
    args = ap.parse_args()
    if args.what == "_search":
        return _search_child(Path(args.root), args.name, args.structure, Path(args.workdir))
    if args.what == "structures":
        policy = IndexPolicy(nlist=args.nlist, nprobe=args.nprobe, rescore=args.rescore)
        results = []
        if args.real is not None:
            x, q = real_vectors(args.real, args.queries)
            results.append(compare(x, q, policy, f"real vectors ({args.real})"))
        x = synthetic(args.n + args.queries)
        results.append(compare(x[: args.n], x[args.n :], policy, "synthetic"))
        print(json.dumps(results, indent=2) if args.json else "\n\n".join(structures_table(r) for r in results))
    elif args.what == "commit":
        rows = [commit_cost(int(n)) for n in args.sizes.split(",")]
        print(json.dumps(rows, indent=2) if args.json else commit_table(rows))
    else:
        result = scale(args.n, args.workdir)
        if not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)
        print(json.dumps(result, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
