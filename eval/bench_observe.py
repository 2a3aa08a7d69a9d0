"""What watching the service costs, and what MCP costs: warm `POST /query` latency with metrics and
tracing on against both off, and MCP `ask` over streamable HTTP against `POST /query`.

Two `rag serve` processes over one index of the seeds, pinned to the same core (the client on
the others): one watched (RAG_METRICS=true and/or OTEL_EXPORTER_OTLP_ENDPOINT at an OTLP/HTTP sink
on loopback, so spans are really encoded and sent), one with RAG_METRICS=false and no endpoint.
Requests alternate between them one at a time, 5 ms apart, so other load on the machine falls on
both alike and neither server's after-response work lands on the other's request; each trial
starts fresh processes in alternating order, and the figure is the median over trials of the
ratio of the p50s (`--watching none` measures the method's own noise). Beside latency, each
server's CPU per measured request (from /proc, until the last spans were exported): a span made
after its response was sent costs CPU on the shared core but no latency, so both are reported.
The MCP comparison runs on the plain server: the SDK's client (one session) against an httpx
client (one connection), alternating.

    .venv/bin/python -m eval.bench_observe [--watching both|metrics|tracing|none] [--sample R] [--trials 4] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from .serving import free_port, wait_until_up

ROOT = Path(__file__).resolve().parents[1]
GOLD = ROOT / "eval" / "gold" / "seeds.jsonl"
WARMUP = 20
# The SDK's batch span processor exports every 5 s (OTEL_BSP_SCHEDULE_DELAY): wait that long after
# the last request so its spans' encoding and sending are in the CPU figure.
EXPORT_WAIT_S = 5.5
# Idle time after each request, so work a server does after sending its answer (ending spans,
# the access log line) is done before the other server, on the same core, gets its question.
GAP_S = 0.005


class _Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver that takes every export and keeps a count (a collector's front door)."""

    spans_posts = 0

    def log_message(self, *args) -> None:  # noqa: ANN002
        pass

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length", 0)))
        type(self).spans_posts += 1
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()


def questions() -> list[str]:
    return [json.loads(line)["question"] for line in GOLD.read_text().splitlines() if line.strip()]


def start(folder: Path, name: str, cpu: int | None, **env: str) -> tuple[subprocess.Popen, str]:
    """`rag serve` over the index in `folder`, pinned to `cpu` when given."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OTEL_"))}
    environ |= {"RAG_INDEX_DIR": str(folder / "index"), "RAG_SEEDS_DIR": str(ROOT / "seeds"), "HF_HUB_OFFLINE": "1", **env}
    log = folder / f"{name}.log"
    pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "serve", "--port", str(port)], cwd=ROOT, env=environ,
                            stdout=subprocess.DEVNULL, stderr=log.open("w"), preexec_fn=pin)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(proc, f"{url}/health", 300, log)
    return proc, url


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def summary(ms: list[float]) -> dict:
    ms = sorted(ms)
    return {"p50_ms": round(statistics.median(ms), 2), "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 2), "n": len(ms)}


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process and its threads so far (Linux /proc; 10 ms ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def observed_against_plain(on: str, off: str, qs: list[str], rounds: int, pids: dict[str, int]) -> dict:
    """Alternating warm queries: the same question to each server in turn, which goes first
    alternating too. Also each server's CPU per measured request, counted until the spans of the
    last requests were exported (work done after a response is sent is in it, not in latency)."""
    times: dict[str, list[float]] = {"on": [], "off": []}
    cpu0: dict[str, float] = {}
    with httpx.Client(timeout=60) as c:
        for i in range(WARMUP + rounds):
            if i == WARMUP:
                cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
            q = {"question": qs[i % len(qs)]}
            order = [("on", on), ("off", off)] if i % 2 == 0 else [("off", off), ("on", on)]
            for name, url in order:
                ms = timed(lambda: c.post(f"{url}/query", json=q).raise_for_status())
                if i >= WARMUP:
                    times[name].append(ms)
                time.sleep(GAP_S)
    time.sleep(EXPORT_WAIT_S)
    cpu_ms = {name: round((cpu_seconds(pid) - cpu0[name]) / rounds * 1000, 2) for name, pid in pids.items()}
    on_s, off_s = summary(times["on"]), summary(times["off"])
    on_s["cpu_ms_per_request"], off_s["cpu_ms_per_request"] = cpu_ms["on"], cpu_ms["off"]
    return {"on": on_s, "off": off_s, "p50_ratio": round(on_s["p50_ms"] / off_s["p50_ms"], 4),
            "cpu_ratio": round(cpu_ms["on"] / cpu_ms["off"], 4)}


async def mcp_against_query(url: str, qs: list[str], rounds: int) -> dict:
    from mcp import Client

    times: dict[str, list[float]] = {"mcp_ask": [], "post_query": []}
    async with Client(f"{url}/mcp", cache=None) as mcp, httpx.AsyncClient(timeout=60) as http:
        for i in range(WARMUP + rounds):
            q = qs[i % len(qs)]
            t0 = time.perf_counter()
            result = await mcp.call_tool("ask", {"question": q})
            mcp_ms = (time.perf_counter() - t0) * 1000
            assert not result.is_error, result
            t0 = time.perf_counter()
            (await http.post(f"{url}/query", json={"question": q})).raise_for_status()
            http_ms = (time.perf_counter() - t0) * 1000
            if i >= WARMUP:
                times["mcp_ask"].append(mcp_ms)
                times["post_query"].append(http_ms)
    m, h = summary(times["mcp_ask"]), summary(times["post_query"])
    return {"mcp_ask": m, "post_query": h, "p50_ratio": round(m["p50_ms"] / h["p50_ms"], 4),
            "p50_extra_ms": round(m["p50_ms"] - h["p50_ms"], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=300, help="measured requests per side (after %d warm-up)" % WARMUP)
    ap.add_argument("--json", action="store_true", help="print only the JSON")
    ap.add_argument("--trials", type=int, default=4, help="fresh server pairs, started in alternating order")
    ap.add_argument("--watching", choices=["both", "metrics", "tracing", "none"], default="both",
                    help="what the observed server turns on (default both; none: the noise of the comparison)")
    ap.add_argument("--sample", type=float, default=None,
                    help="trace this share of requests (OTEL_TRACES_SAMPLER=parentbased_traceidratio); default all")
    args = ap.parse_args()
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    watched = {"RAG_METRICS": "true" if args.watching in ("both", "metrics") else "false"}
    if args.watching in ("both", "tracing"):
        watched["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{sink.server_address[1]}"
        if args.sample is not None:
            watched |= {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": str(args.sample)}
    plain = {"RAG_METRICS": "false"}
    # Both servers on one core: neither gains from where the scheduler puts it or its neighbours.
    cpu = max(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    if cpu is not None and len(os.sched_getaffinity(0)) > 1:
        # The client (and the OTLP sink) on the other cores: woken on the servers' core, it would
        # wait for whatever a server does after answering, and count that as the server's latency.
        os.sched_setaffinity(0, os.sched_getaffinity(0) - {cpu})
    qs = questions()
    trials: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-observe-") as tmp:
        folder = Path(tmp)
        for trial in range(args.trials):
            # fresh processes each trial, started in alternating order
            order = [("on", watched), ("off", plain)] if trial % 2 else [("off", plain), ("on", watched)]
            procs, urls = {}, {}
            try:
                for name, env in order:
                    procs[name], urls[name] = start(folder, name, cpu, **env)
                pids = {name: p.pid for name, p in procs.items()}
                trials.append(observed_against_plain(urls["on"], urls["off"], qs, args.rounds, pids))
                if trial == 0:
                    with httpx.Client() as c:
                        traced = "x-trace-id" in c.post(f"{urls['on']}/query", json={"question": qs[0]}).headers
                        scraped = "rag_stage_duration_seconds" in c.get(f"{urls['on']}/metrics").text
                    mcp = asyncio.run(mcp_against_query(urls["off"], qs, args.rounds))
            finally:
                for p in procs.values():
                    p.terminate()
                    p.wait(60)
    ratios = [t["p50_ratio"] for t in trials]
    cpu_ratios = [t["cpu_ratio"] for t in trials]
    observed = {"p50_ratio_median": round(statistics.median(ratios), 4), "p50_ratios": ratios,
                "cpu_ratio_median": round(statistics.median(cpu_ratios), 4), "cpu_ratios": cpu_ratios, "trials": trials}
    result = {
        "corpus": "seeds (5 articles)", "questions": len(qs), "rounds": args.rounds, "watching": args.watching,
        "sampled": args.sample if args.sample is not None else 1.0, "pinned_cpu": cpu,
        "observed_vs_plain": {**observed, "traced": traced, "metrics_served": scraped,
                              "otlp_exports_received": _Sink.spans_posts},
        "mcp_http_vs_query": mcp,
    }
    if not args.json:
        m = mcp
        print(f"warm /query p50 with {args.watching} on against none: "
              + ", ".join(f"{(r - 1) * 100:+.1f}%" for r in ratios)
              + f" (median {(observed['p50_ratio_median'] - 1) * 100:+.1f}%); CPU per request "
              + f"{(observed['cpu_ratio_median'] - 1) * 100:+.1f}%", file=sys.stderr)
        print(f"p50: MCP ask over HTTP {m['mcp_ask']['p50_ms']} ms, POST /query {m['post_query']['p50_ms']} ms "
              f"({m['p50_extra_ms']:+.2f} ms)", file=sys.stderr)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
