"""What standing questions cost a commit, and how long a notification takes to arrive:

    python -m eval.bench_watches [--base 300] [--commit 100] [--watches 0,100,1000] [--min-relevance X] [--json]

An index of `--base` RealTime QA articles (oldest first), then one commit of the next `--commit`
articles per watch count, each with that many standing questions (the dev quiz questions, cycled;
each with `min_relevance` X when given) whose webhook is a receiver on loopback. For each: the
commit's seconds (chunk, embed, write), the seconds evaluating the watches against the new
articles (`Watches.committed`), per watch, how many passed the pre-screen (the matrix product of
question and new-chunk vectors) to the full rule, the notifications queued, and the delay from
the end of the commit to each delivery's arrival. The screen costs watches × new chunks; the
full rule, a search restricted to the new articles, runs only for the watches that pass it.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from rag.config import Settings
from rag.ingestion.documents import document_from_record
from rag.service import Service
from rag.watches import WatchIn

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "realtimeqa-2022"


class _Receiver:
    """Counts deliveries and when each arrived (time.monotonic)."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("content-length", 0)))
                owner.arrivals.append(time.monotonic())
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def _articles(limit: int) -> list:
    with gzip.open(DATA / "corpus.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in f]
    rows.sort(key=lambda r: (r.get("published") or "", r["id"]))
    return [document_from_record(r, "realtimeqa") for r in rows[:limit]]


def run(base: int, commit: int, counts: list[int], min_relevance: float | None = None) -> dict:
    questions = [json.loads(line)["question"] for line in (DATA / "dev.jsonl").read_text().splitlines() if line.strip()]
    docs = _articles(base + commit * len(counts))
    receiver = _Receiver()
    out: dict = {"base_articles": base, "commit_articles": commit, "min_relevance": min_relevance, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        service = Service(Settings(index_dir=Path(tmp) / "index", fetch_allow_private=True))
        timing: dict[str, float] = {}
        committed = service.watches.committed

        def timed(ids):  # type: ignore[no-untyped-def]
            timing["start"] = time.monotonic()
            found = committed(ids)
            timing["end"] = time.monotonic()
            timing["queued"] = len(found)
            return found

        service.watches.committed = timed  # type: ignore[method-assign]
        screen = service.watches._screen

        def counted(*args):  # type: ignore[no-untyped-def]
            go = screen(*args)
            timing["passed"] = int(go.sum())
            return go

        service.watches._screen = counted  # type: ignore[method-assign]
        t0 = time.perf_counter()
        service.ingest(docs[:base])
        out["base_seconds"] = round(time.perf_counter() - t0, 2)
        made = 0
        if counts != sorted(counts):  # watches are added between commits, never removed
            raise SystemExit("--watches must be in increasing order")
        for i, n in enumerate(counts):
            for j in range(made, n):
                service.watches.add(WatchIn(question=questions[j % len(questions)], url=receiver.url,
                                            min_relevance=min_relevance))
            made = n
            batch = docs[base + i * commit : base + (i + 1) * commit]
            before = len(receiver.arrivals)
            timing["passed"] = 0
            t0 = time.perf_counter()
            report = service.ingest(batch)
            total = time.perf_counter() - t0
            evaluate = timing["end"] - timing["start"]
            queued = int(timing["queued"])
            deadline = time.monotonic() + 60 + queued * 0.1
            while len(receiver.arrivals) - before < queued and time.monotonic() < deadline:
                time.sleep(0.01)
            delays = [a - timing["start"] for a in receiver.arrivals[before:]]
            out["runs"].append({
                "watches": n, "chunks": report.chunks, "commit_s": round(total - evaluate, 3),
                "evaluate_s": round(evaluate, 3), "per_watch_ms": round(1000 * evaluate / n, 2) if n else None,
                "passed_screen": int(timing["passed"]), "notified": queued, "delivered": len(delays),
                "delay_first_s": round(min(delays), 3) if delays else None,
                "delay_p50_s": round(float(np.percentile(delays, 50)), 3) if delays else None,
                "delay_max_s": round(max(delays), 3) if delays else None,
            })
            print(json.dumps(out["runs"][-1]), file=sys.stderr, flush=True)
        service.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=int, default=300)
    ap.add_argument("--commit", type=int, default=100)
    ap.add_argument("--watches", default="0,100,1000")
    ap.add_argument("--min-relevance", type=float, help="every watch's own bar (default: none, the floor alone)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = run(args.base, args.commit, [int(x) for x in args.watches.split(",")], args.min_relevance)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['base_articles']} articles indexed in {result['base_seconds']} s; commits of {result['commit_articles']}:")
    print("watches  chunks  commit s  evaluate s  ms/watch  passed screen  notified  delivered  delay first/p50/max s")
    for r in result["runs"]:
        print(f"{r['watches']:>7}  {r['chunks']:>6}  {r['commit_s']:>8}  {r['evaluate_s']:>10}  {r['per_watch_ms'] or '-':>8}  "
              f"{r['passed_screen']:>13}  {r['notified']:>8}  {r['delivered']:>9}  "
              f"{r['delay_first_s']}/{r['delay_p50_s']}/{r['delay_max_s']}")


if __name__ == "__main__":
    main()
