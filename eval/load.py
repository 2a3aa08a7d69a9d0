"""Load test: N concurrent clients query a live server while a writer adds and deletes articles.

    python -m eval.load [--clients 32] [--seconds 30] [--rate PER_S] [--index DIR | --url http://127.0.0.1:PORT] [--json]

Without `--url` it starts `rag serve` on a free loopback port, over a temporary copy of `--index`
(or, without one, a fresh index built from seeds/), with a random API key the writer uses. It only
ever connects to 127.0.0.1. Reported: requests/s, p50/p99 latency, errors (non-2xx or exceptions),
and inconsistent results: a passage whose text differs from its document's text at its offsets, or
a passage of a document deleted before the query was sent ("stale"). Writer ids are never reused,
so a document's text never changes while it exists and one fetch per id is enough to check it.

`--rate` paces the writer (articles a second; it deletes its oldest beyond ten either way). Over a
local server the index's segments and tombstones are sampled every two seconds, and query latency
is reported per minute beside the most segments seen in that minute: whether p99 grows with them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np

from eval import metrics as m
from eval.serving import LOOPBACK, ServerDidNotStart, free_port, stop, wait_until_up

ROOT = Path(__file__).resolve().parents[1]
LIVE_WRITER_DOCS = 10  # the writer deletes its oldest article once it has more than this many

# --- synthetic articles (also used by the crash and concurrency tests) ------------------------------
_PLACES = ["Brackwater", "Eastholm", "Port Venn", "Kilmarsh", "Ardley", "Somerton", "Lowick", "Carrow", "Tessby",
           "Hollin Bay", "Dunmere", "Fairlight", "Oxhey", "Marrick", "Thornwick", "Wendle"]
_SUBJECTS = ["harbour tramline", "flood barrier", "school meals budget", "wind farm", "hospital wing", "bus depot",
             "library closure", "river bridge", "housing plan", "market hall", "ferry contract", "rail station",
             "water treatment works", "cycle network", "fire service review", "night curfew"]
_ACTORS = ["the council", "regional ministers", "a residents' group", "the port authority", "union leaders",
           "the transport board", "local traders", "the health trust", "an independent panel", "the mayor"]
_VERBS = ["approved", "rejected", "delayed", "questioned", "expanded", "cut funding for", "launched an inquiry into",
          "postponed a vote on", "backed", "revised plans for"]
_DETAILS = [
    "Officials said the cost had risen by {num} percent since the first estimate.",
    "About {num} people attended a public meeting on Thursday evening.",
    "The work is expected to take {num} months and to begin in the spring.",
    "Critics argued that {actor} had ignored {num} written objections.",
    "A spokesperson for {actor} declined to comment on the timetable.",
    "Supporters say the change will create {num} jobs in the area.",
    "The decision follows a {num}-page report published last week.",
    "Opposition members called for a referendum before any further spending.",
    "Engineers warned that older sections would need repairs within {num} years.",
    "Local newspapers reported that talks had stalled twice this year.",
]
_SYLLABLES = ["ka", "lo", "mi", "ru", "ve", "ta", "zo", "ni", "pe", "do"]


def unique_word(n: int) -> str:
    """A made-up word that occurs in article `n` only (letters, so the word index keeps it whole)."""
    digits = f"{n:05d}"
    return "qu" + "".join(_SYLLABLES[int(d)] for d in digits) + "x"


def synthetic_article(n: int, prefix: str = "syn") -> dict:
    """A short, varied, deterministic news-like article as a JSON record (id, title, url, published, text)."""
    rng = random.Random(n)
    place, subject, actor, verb = (rng.choice(xs) for xs in (_PLACES, _SUBJECTS, _ACTORS, _VERBS))
    title = f"{place}: {actor} {verb} {subject}"
    details = rng.sample(_DETAILS, k=rng.randint(2, 4))
    body = " ".join(d.format(num=rng.randint(2, 400), actor=rng.choice(_ACTORS)) for d in details)
    lede = (f"In {place}, {actor} {verb} the {subject} on {rng.choice(['Monday', 'Tuesday', 'Friday'])}, "
            f"a scheme residents know as {unique_word(n)}.")
    return {
        "id": f"{prefix}-{n:05d}",
        "title": title[0].upper() + title[1:],
        "url": f"https://news.example/{prefix}/{n}",
        "published": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "text": f"{lede}\n\n{body}",
    }


# --- the run -----------------------------------------------------------------------------------------
@dataclass
class Stats:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    at: list[float] = field(default_factory=list)  # monotonic end time of each success

    def row(self, seconds: float) -> dict:
        n = len(self.latencies_ms) + self.errors
        return {
            "requests": n, "req_per_s": round(n / seconds, 2) if seconds else 0.0, "errors": self.errors,
            "p50_ms": round(m.percentile(self.latencies_ms, 50), 1), "p99_ms": round(m.percentile(self.latencies_ms, 99), 1),
        }


@dataclass
class Shared:
    """What the writer thread tells the readers: live ids to ask about, and when ids were deleted."""

    live: list[str] = field(default_factory=list)
    deleted_at: dict[str, float] = field(default_factory=dict)
    added: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def loopback_url(url: str) -> str:
    """The URL with its host forced to 127.0.0.1; anything not on this machine is refused."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in (LOOPBACK, "localhost") or parts.port is None:
        raise SystemExit(f"error: --url must be http://127.0.0.1:PORT (this tool only talks to loopback), got {url!r}")
    return f"http://{LOOPBACK}:{parts.port}"


@contextmanager
def local_server(index: Path | None, in_place: bool, key: str, startup_s: float) -> Iterator[tuple[str, Path]]:
    """`rag serve` on a free loopback port over a temporary copy of `index` (or a fresh seeds index);
    yields its URL and the index folder it serves."""
    tmp = Path(tempfile.mkdtemp(prefix="rag-load-"))
    folder = index if (index is not None and in_place) else tmp / "index"
    if index is not None and not in_place:
        shutil.copytree(index, folder, ignore=shutil.ignore_patterns("write.lock", "*.tmp"))
    port = free_port()
    env = dict(os.environ, RAG_INDEX_DIR=str(folder), RAG_SEEDS_DIR=str(ROOT / "seeds"), RAG_API_KEYS=key,
               RAG_PROTECT_READS="false", RAG_CACHE_DIR=os.environ.get("RAG_CACHE_DIR", str(ROOT / ".cache")))
    log = open(tmp / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "serve", "--host", LOOPBACK, "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{LOOPBACK}:{port}"
    try:
        try:
            wait_until_up(proc, f"{url}/health", startup_s, tmp / "server.log")
        except ServerDidNotStart as exc:
            raise SystemExit(f"error: the server {exc}") from None
        yield url, folder
    finally:
        stop(proc)
        log.close()
        kept = os.environ.get("RAG_LOAD_SERVER_LOG")  # where to keep the server's log, if anywhere
        if kept:
            shutil.copyfile(tmp / "server.log", kept)
        shutil.rmtree(tmp, ignore_errors=True)


def writer(url: str, key: str | None, stop: threading.Event, shared: Shared, stats: Stats, rate: float | None = None) -> None:
    """Adds articles (`rate` a second, else as fast as the server takes them) and deletes the
    oldest ones through the API until told to stop."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    n = random.randrange(10_000, 90_000)  # fresh ids per run, never reused within it
    next_at = time.monotonic()
    with httpx.Client(base_url=url, timeout=120, headers=headers, trust_env=False) as c:
        while not stop.is_set():
            if rate:
                next_at += 1 / rate
                if stop.wait(max(0.0, next_at - time.monotonic())):
                    break
            n += 1
            record = synthetic_article(n, prefix="load")
            t0 = time.perf_counter()
            try:
                r = c.post("/documents", json=record)
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            _record(stats, ok, t0)
            if ok:
                with shared.lock:
                    shared.live.append(record["id"])
                    shared.added += 1
            if len(shared.live) > LIVE_WRITER_DOCS and not stop.is_set():
                with shared.lock:
                    victim = shared.live.pop(0)
                t0 = time.perf_counter()
                try:
                    r = c.delete(f"/documents/{victim}")
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                _record(stats, ok, t0)
                if ok:
                    shared.deleted_at[victim] = time.monotonic()  # from now on, no query may show it


def _record(stats: Stats, ok: bool, t0: float) -> None:
    if ok:
        stats.latencies_ms.append((time.perf_counter() - t0) * 1000)
        stats.at.append(time.monotonic())
    else:
        stats.errors += 1


def sample_segments(folder: Path, stop: threading.Event, samples: list[tuple[float, int, int]], every_s: float = 2.0) -> None:
    """(time, segments, tombstones) of the served index every `every_s`, read-only."""
    store = folder / "store.sqlite"
    while not stop.wait(every_s):
        try:
            with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as conn:
                segs = conn.execute("SELECT count(*) FROM segments").fetchone()[0]
                dead = conn.execute("SELECT count(*) FROM tombstones").fetchone()[0]
            samples.append((time.monotonic(), int(segs), int(dead)))
        except sqlite3.Error:
            continue


def per_minute(queries: Stats, samples: list[tuple[float, int, int]], start: float) -> list[dict]:
    """Query latency of each minute beside the most segments sampled in it."""
    rows = []
    at = np.asarray(queries.at)
    lat = np.asarray(queries.latencies_ms)
    minutes = int((max(at) - start) // 60) + 1 if len(at) else 0
    for i in range(minutes):
        lo, hi = start + 60 * i, start + 60 * (i + 1)
        pick = lat[(at >= lo) & (at < hi)]
        segs = [s for t, s, _ in samples if lo <= t < hi]
        if len(pick):
            rows.append({"minute": i + 1, "queries": int(len(pick)), "p50_ms": round(float(np.percentile(pick, 50)), 1),
                         "p99_ms": round(float(np.percentile(pick, 99)), 1), "segments_max": max(segs, default=None)})
    return rows

@dataclass
class Checks:
    passages: int = 0
    inconsistent: int = 0
    stale: int = 0
    examples: list[str] = field(default_factory=list)


def questions() -> list[str]:
    """The seeds gold questions, and RealTime QA's when its data is beside the project (the load
    test then runs over both corpora's questions, as a mixed index would be asked)."""
    from eval.harness import load_gold
    from eval.realtimeqa import QUESTIONS, load_questions

    out = [g["question"] for g in load_gold()]
    if QUESTIONS.exists():
        out += [q["question"] for q in load_questions(QUESTIONS)]
    return out


async def readers(url: str, key: str | None, clients: int, seconds: float, shared: Shared,
                  queries: Stats, fetches: Stats, checks: Checks) -> None:
    """`clients` concurrent query loops; every passage is checked against its document's text."""
    gold = questions()
    texts: dict[str, str | None] = {}  # doc id -> text (None: gone); writer ids never change text
    pending: dict[str, asyncio.Future] = {}
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    deadline = time.monotonic() + seconds

    async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers, limits=limits, trust_env=False) as c:

        async def text_of(doc_id: str) -> str | None:
            if doc_id in texts:
                return texts[doc_id]
            if doc_id not in pending:  # one fetch per id, shared by every client that needs it
                pending[doc_id] = asyncio.ensure_future(fetch(doc_id))
            return await pending[doc_id]

        async def fetch(doc_id: str) -> str | None:
            t0 = time.perf_counter()
            try:
                r = await c.get(f"/documents/{doc_id}")
            except httpx.HTTPError:
                _record(fetches, False, t0)
                pending.pop(doc_id, None)
                return None
            _record(fetches, r.status_code in (200, 404), t0)
            if r.status_code not in (200, 404):
                pending.pop(doc_id, None)
                return None
            texts[doc_id] = r.json()["text"] if r.status_code == 200 else None  # 404: gone for good
            return texts[doc_id]

        async def client(i: int) -> None:
            rng = random.Random(i)
            while time.monotonic() < deadline:
                with shared.lock:
                    live = list(shared.live[-LIVE_WRITER_DOCS:])
                if live and rng.random() < 0.4:
                    n = int(rng.choice(live).rsplit("-", 1)[1])
                    question = f"What do residents call {unique_word(n)}?"
                else:
                    question = rng.choice(gold)
                sent = time.monotonic()
                t0 = time.perf_counter()
                try:
                    r = await c.post("/query", json={"question": question, "k": rng.randint(3, 10)})
                except httpx.HTTPError as exc:
                    _record(queries, False, t0)
                    _example(checks, f"error: {type(exc).__name__} {exc}"[:300])
                    continue
                _record(queries, r.status_code == 200, t0)
                if r.status_code != 200:
                    _example(checks, f"error: HTTP {r.status_code} {r.text[:240]}")
                    continue
                for p in r.json()["passages"]:
                    checks.passages += 1
                    gone = shared.deleted_at.get(p["doc_id"])
                    if gone is not None and gone < sent:
                        checks.stale += 1
                        _example(checks, f"stale: {p['chunk_id']} shown after its document was deleted")
                        continue
                    text = await text_of(p["doc_id"])
                    if text is not None and text[p["start"] : p["end"]] != p["text"]:
                        checks.inconsistent += 1
                        _example(checks, f"inconsistent: {p['chunk_id']} [{p['start']}:{p['end']}]")

        await asyncio.gather(*(client(i) for i in range(clients)))


def _example(checks: Checks, line: str) -> None:
    if len(checks.examples) < 5:
        checks.examples.append(line)


def run(url: str, key: str | None, clients: int, seconds: float, write: bool = True, rate: float | None = None,
        folder: Path | None = None) -> dict:
    shared, queries, fetches, writes, checks = Shared(), Stats(), Stats(), Stats(), Checks()
    stop = threading.Event()
    thread = threading.Thread(target=writer, args=(url, key, stop, shared, writes, rate), daemon=True)
    samples: list[tuple[float, int, int]] = []
    sampler = threading.Thread(target=sample_segments, args=(folder, stop, samples), daemon=True) if folder else None
    t0, start = time.perf_counter(), time.monotonic()
    if write:
        thread.start()
    if sampler is not None:
        sampler.start()
    asyncio.run(readers(url, key, clients, seconds, shared, queries, fetches, checks))
    elapsed = time.perf_counter() - t0
    stop.set()
    if write:
        thread.join(timeout=180)
    segments = {}
    if samples:
        counts = [s for _, s, _ in samples]
        segments = {"segments_max": max(counts), "segments_last": counts[-1], "tombstones_max": max(d for *_, d in samples),
                    "samples": len(samples), "per_minute": per_minute(queries, samples, start)}
    return {
        "url": url, "clients": clients, "seconds": round(elapsed, 2),
        "query": queries.row(elapsed), "fetch": fetches.row(elapsed), "write": writes.row(elapsed),
        "total": Stats(queries.latencies_ms + fetches.latencies_ms + writes.latencies_ms,
                       queries.errors + fetches.errors + writes.errors).row(elapsed),
        "errors": queries.errors + fetches.errors + writes.errors,
        "documents_added": shared.added, "documents_deleted": len(shared.deleted_at),
        "passages_checked": checks.passages, "inconsistent": checks.inconsistent, "stale": checks.stale,
        "examples": checks.examples, "writer_rate_per_s": rate, **segments,
    }


def table(r: dict) -> str:
    lines = [f"{r['clients']} clients for {r['seconds']} s against {r['url']}", "",
             f"{'':8}{'requests':>10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"]
    for kind in ("query", "fetch", "write", "total"):
        x = r[kind]
        lines.append(f"{kind:8}{x['requests']:>10}{x['req_per_s']:>9}{x['p50_ms']:>9}{x['p99_ms']:>9}{x['errors']:>8}")
    lines += ["", f"writer: {r['documents_added']} documents added, {r['documents_deleted']} deleted",
              f"errors (non-2xx or exceptions): {r['errors']}",
              f"passages checked: {r['passages_checked']}; inconsistent: {r['inconsistent']}; "
              f"stale (deleted document shown): {r['stale']}"]
    lines += [f"  {e}" for e in r["examples"]]
    if r.get("per_minute"):
        lines += ["", f"segments: at most {r['segments_max']}, {r['segments_last']} at the end; tombstones at most "
                  f"{r['tombstones_max']}", f"{'minute':>8}{'queries':>9}{'p50 ms':>9}{'p99 ms':>9}{'segments':>10}"]
        lines += [f"{w['minute']:>8}{w['queries']:>9}{w['p50_ms']:>9}{w['p99_ms']:>9}{w['segments_max'] or '':>10}"
                  for w in r["per_minute"]]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=32, help="concurrent query clients")
    ap.add_argument("--seconds", type=float, default=30.0, help="how long to run")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--url", help="a running server on http://127.0.0.1:PORT (loopback only)")
    where.add_argument("--index", type=Path, help="index folder to serve (a temporary copy unless --in-place)")
    ap.add_argument("--in-place", action="store_true", help="serve --index itself (the writer changes it)")
    ap.add_argument("--key", default=os.environ.get("RAG_LOAD_KEY"), help="API key for --url (or RAG_LOAD_KEY)")
    ap.add_argument("--no-writer", action="store_true", help="queries only")
    ap.add_argument("--rate", type=float, default=None, help="articles the writer adds a second (default: as fast as it can)")
    ap.add_argument("--startup-timeout", type=float, default=600.0, help="seconds to wait for the server")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    if args.clients < 1 or args.seconds <= 0 or (args.rate is not None and args.rate <= 0):
        raise SystemExit("error: --clients must be >= 1, --seconds and --rate > 0")
    if args.url:
        result = run(loopback_url(args.url), args.key, args.clients, args.seconds, not args.no_writer, args.rate)
    else:
        if args.index is not None and not (args.index / "store.sqlite").exists():
            raise SystemExit(f"error: {args.index} holds no index (store.sqlite)")
        key = secrets.token_urlsafe(32)
        with local_server(args.index, args.in_place, key, args.startup_timeout) as (url, folder):
            result = run(url, key, args.clients, args.seconds, not args.no_writer, args.rate, folder)
    print(json.dumps(result) if args.json else table(result))
    sys.exit(1 if result["inconsistent"] or result["stale"] or result["errors"] else 0)


if __name__ == "__main__":
    main()
