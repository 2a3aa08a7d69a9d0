"""Date limits on the RealTime QA index, in one run:

    python -m eval.bench_asof [--index DIR] [--json] [--alone N]

Each dev question is asked the way POST /query asks it (`Service.ask`, k=10, the extractive answer):
undated (as of now, on the index as ingested), as of its quiz date, and as of now on a copy of the
index holding one more article, dated 2030-01-01 (a scheduled story, a feed in the wrong time
zone), beside the same copy with the article dated 2022-01-01 (inside the archive's span: what a
second index in the process costs by itself). The four are interleaved question by question, each
first in turn, so load from elsewhere falls on all alike; p50/p99 of each, the p50s as ratios to
the undated one (and the 2030 copy's to the 2022 copy's), and the search plans they took. Also
what reading the time a question names costs (rag/retrieval/timewindow.py), per question. With
--alone N, the original and the two copies are also asked undated each in processes of their own,
N each, taking turns: a second index in one process shares the CPU caches with the first.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from rag.config import Settings
from rag.ingestion.documents import Document
from rag.retrieval.timewindow import resolve
from rag.schema import Query
from rag.service import Service

from .realtimeqa import QUESTIONS, load_questions

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 10


ARTICLE = "The city council will vote on the harbour tramline extension and its budget at its first meeting of the year."


def _copy_with_one_more(index: Path, folder: Path, published: str, embedder) -> Service:  # type: ignore[no-untyped-def]
    """A copy of the index holding one more article, published on `published`."""
    shutil.copytree(index, folder, ignore=shutil.ignore_patterns("*.lock", ".building"))
    service = Service(Settings(index_dir=folder), embedder=embedder)
    service.ingest([Document(f"scheduled-{published}", ARTICLE, published=published)])
    return service


def run(index: Path, questions: list[dict]) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-asof-") as tmp:
        service = Service(Settings(index_dir=index))
        future = _copy_with_one_more(index, Path(tmp) / "future", "2030-01-01", service.embedder)
        # The same copy with the article dated inside the archive's span: the figure for the 2030
        # one, since a second index in the process shares the CPU caches with the first.
        control = _copy_with_one_more(index, Path(tmp) / "control", "2022-01-01", service.embedder)
        asks = {
            "undated": lambda q: service.ask(Query(question=q["question"], k=10, debug=True)),
            "as of the quiz date": lambda q: service.ask(Query(question=q["question"], k=10, as_of=q["date"], debug=True)),
            "as of now, one more article dated 2022 (a copy)": lambda q: control.ask(Query(question=q["question"], k=10, debug=True)),
            "as of now, one article dated 2030 (a copy)": lambda q: future.ask(Query(question=q["question"], k=10, debug=True)),
        }
        for q in questions[:WARMUP]:
            for ask in asks.values():
                ask(q)
        lat: dict[str, list[float]] = {name: [] for name in asks}
        plans: dict[str, dict[str, int]] = {name: {} for name in asks}
        names = list(asks)
        for i, q in enumerate(questions):
            for name in names[i % len(names):] + names[: i % len(names)]:  # each goes first in turn
                ask = asks[name]
                t0 = time.perf_counter()
                resp = ask(q)
                lat[name].append((time.perf_counter() - t0) * 1000)
                for how, n in resp.debug.segments.items():
                    plans[name][how] = plans[name].get(how, 0) + n
                key = f"lexical {resp.debug.lexical}"
                plans[name][key] = plans[name].get(key, 0) + 1
        chunks, segments = service.health().chunks, len(service.index.segment_stats())
        for s in (service, future, control):
            s.close()
    base = float(np.percentile(lat["undated"], 50))
    out = {
        name: {"p50_ms": round(float(np.percentile(v, 50)), 1), "p99_ms": round(float(np.percentile(v, 99)), 1),
               "p50_vs_undated": round(float(np.percentile(v, 50)) / base, 3), "plans": plans[name]}
        for name, v in lat.items()
    }
    in_span, future_dated = names[2], names[3]
    out[future_dated]["p50_vs_2022_copy"] = round(out[future_dated]["p50_ms"] / out[in_span]["p50_ms"], 3)
    return {"questions": len(questions), "chunks": chunks, "segments": segments, "limits": out,
            "time_window_us_per_question": _resolve_cost(questions)}


# The index cases of `--alone`: each in a process of its own, so no other index shares its caches.
ALONE = {"original": None, "one article dated 2030 (a copy)": "2030-01-01", "one article dated 2022 (a copy)": "2022-01-01"}


def alone_p50(index: Path, published: str | None, questions: list[dict], rounds: int = 2) -> float:
    """p50 ms of the questions asked undated on one index, the only one this process searches."""
    with tempfile.TemporaryDirectory(prefix="bench-asof-") as tmp:
        service = Service(Settings(index_dir=index))
        if published is not None:
            service = _copy_with_one_more(index, Path(tmp) / "copy", published, service.embedder)
        for q in questions[:WARMUP]:
            service.ask(Query(question=q["question"], k=10))
        lat = []
        for _ in range(rounds):
            for q in questions:
                t0 = time.perf_counter()
                service.ask(Query(question=q["question"], k=10))
                lat.append((time.perf_counter() - t0) * 1000)
        service.close()
    return round(float(np.percentile(lat, 50)), 1)


def run_alone(index: Path, processes: int) -> dict:
    """Each index case in `processes` processes of its own, taking turns; the median of their p50s."""
    runs: dict[str, list[float]] = {name: [] for name in ALONE}
    names = list(ALONE)
    for r in range(processes):
        for name in names[r % len(names):] + names[: r % len(names)]:
            cmd = [sys.executable, "-m", "eval.bench_asof", "--index", str(index), "--one", ALONE[name] or "original"]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
            runs[name].append(float(done.stdout.strip()))
    p50 = {name: float(np.median(v)) for name, v in runs.items()}
    base = p50["original"]
    return {name: {"p50_ms": round(p50[name], 1), "p50_vs_original": round(p50[name] / base, 3), "runs": runs[name]}
            for name in names}


def _resolve_cost(questions: list[dict], rounds: int = 50) -> float:
    now = datetime(2022, 6, 10, 23, 59, 59, tzinfo=timezone.utc)
    t0 = time.perf_counter()
    for _ in range(rounds):
        for q in questions:
            resolve(q["question"], now)
    return round((time.perf_counter() - t0) / (rounds * len(questions)) * 1e6, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, default=ROOT / "index" / "realtimeqa", help="an ingested RealTime QA index")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--alone", type=int, metavar="N", help="also ask undated on each index case alone, in N "
                    "processes each (a second index in the process shares its caches and costs by itself)")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # a process of --alone: `original` or the copy's date
    args = ap.parse_args()
    if not (args.index / "store.sqlite").exists():
        raise SystemExit(f"no index in {args.index}: run `rag eval --benchmark realtimeqa` first to ingest it")
    if args.one:
        print(alone_p50(args.index, None if args.one == "original" else args.one, load_questions(QUESTIONS)))
        return
    result = run(args.index, load_questions(QUESTIONS))
    if args.alone:
        result["each alone in its own process"] = run_alone(args.index, args.alone)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for name, f in result["limits"].items():
        print(f"{name}: p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms, {f['p50_vs_undated']}x undated; {f['plans']}")
    print(f"reading the time a question names: {result['time_window_us_per_question']} µs a question")
    for name, f in result.get("each alone in its own process", {}).items():
        print(f"alone, {name}: p50 {f['p50_ms']} ms, {f['p50_vs_original']}x the original")


if __name__ == "__main__":
    main()
