"""Embedding backends side by side: throughput, query latency and agreement, in one run.

    python -m eval.bench_embed [--json] [--limit 1500] [--budget-s 170] [--cache-dir DIR]

Texts: the seed articles cut into ~5 pieces each, plus (when the shared RealTime QA corpus is on
disk) the first `--limit` pieces of ~1000 characters of its articles. Each backend encodes the same
texts; the work is interleaved slice by slice so that a neighbour's load on this small machine
hits all backends alike, and the CPU time other processes took during each measurement is reported
next to the figures (`others_cpu`, in cores) so a contended run can be recognised. Passages per
CPU-second of this process are printed too: they move far less with the neighbours' load (idle
threads spinning, torch's or ONNX Runtime's, count in them). On a loaded machine the throughput part
stops after `--budget-s` seconds, between slices, and says how many texts it measured.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from eval.realtimeqa import CORPUS  # noqa: E402 - after the offline defaults above

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"
QUERY = "Who did the president meet in Brussels?"
LATENCY_REPS = 200
LATENCY_BLOCKS = 4
LATENCY_BLOCK_MAX_S = 4.0  # torch on a loaded machine takes ~0.3 s a query: cap, report the count
SLICES = 16


class CpuWatch:
    """CPU time used by other processes (in cores) while a block of work ran, from /proc."""

    def __init__(self) -> None:
        self._tick = os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _busy() -> int:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields[:8]) - idle

    @staticmethod
    def _own() -> int:
        stat = Path("/proc/self/stat").read_text()
        after_name = stat.rsplit(")", 1)[1].split()
        return int(after_name[11]) + int(after_name[12])  # utime + stime, all threads

    def measure(self, work: Callable[[], object]) -> tuple[float, float, float]:
        """Run `work`; return (wall seconds, own CPU seconds, others' CPU in cores meanwhile)."""
        busy0, own0, t0 = self._busy(), self._own(), time.perf_counter()
        work()
        wall = time.perf_counter() - t0
        own = (self._own() - own0) / self._tick
        others = (self._busy() - busy0) / self._tick - own
        return wall, own, max(0.0, others / wall) if wall > 0 else 0.0


@dataclass
class Tally:
    """Seconds and texts of one backend over the slices, and the load beside it."""

    seconds: float = 0.0
    cpu_seconds: float = 0.0
    texts: int = 0
    others: list[float] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.texts / self.seconds if self.seconds else 0.0

    @property
    def per_cpu_second(self) -> float:
        """Texts per second of this process's CPU time: the cost, whatever the neighbours do."""
        return self.texts / self.cpu_seconds if self.cpu_seconds else 0.0


def seed_pieces(per_article: int = 5) -> list[str]:
    """Each seed article cut by lines into about `per_article` pieces."""
    pieces: list[str] = []
    for f in sorted(SEEDS.glob("*.txt")):
        lines = f.read_text(encoding="utf-8").splitlines()
        step = max(1, -(-len(lines) // per_article))
        pieces += ["\n".join(lines[i : i + step]) for i in range(0, len(lines), step)]
    return [p for p in pieces if p.strip()]


def corpus_pieces(limit: int, size: int = 1000) -> list[str]:
    """The first `limit` pieces of ~`size` characters, cut at spaces, of the corpus articles."""
    if limit <= 0 or not CORPUS.is_file():
        return []
    out: list[str] = []
    with gzip.open(CORPUS, "rt", encoding="utf-8") as fh:
        for line in fh:
            words = " ".join(str(json.loads(line).get("text") or "").split())
            while words and len(out) < limit:
                cut = words.rfind(" ", 0, size) if len(words) > size else len(words)
                cut = cut if cut > 0 else min(size, len(words))
                out.append(words[:cut])
                words = words[cut:].lstrip()
            if len(out) >= limit:
                break
    return out


def slices(n: int, parts: int) -> Iterator[slice]:
    """`parts` contiguous slices covering range(n)."""
    bounds = np.linspace(0, n, parts + 1).astype(int)
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        if b > a:
            yield slice(int(a), int(b))


def latencies(
    encoders: dict[str, Callable[[list[str]], object]], watch: CpuWatch
) -> dict[str, dict[str, float]]:
    """p50/p90 of encoding one short query, per encoder, in interleaved blocks after a warm-up."""
    times: dict[str, list[float]] = {name: [] for name in encoders}
    others: dict[str, list[float]] = {name: [] for name in encoders}
    for encode in encoders.values():
        for _ in range(10):
            encode([QUERY])
    for _ in range(LATENCY_BLOCKS):
        for name, encode in encoders.items():

            def block(encode: Callable[[list[str]], object] = encode, out: list[float] = times[name]) -> None:
                until = time.perf_counter() + LATENCY_BLOCK_MAX_S
                for _ in range(LATENCY_REPS // LATENCY_BLOCKS):
                    t = time.perf_counter()
                    encode([QUERY])
                    out.append(time.perf_counter() - t)
                    if t > until:
                        break

            others[name].append(watch.measure(block)[2])
    report: dict[str, dict[str, float]] = {}
    for name, ts in times.items():
        p50, p90 = np.percentile(np.asarray(ts) * 1000, [50, 90])
        report[name] = {"p50_ms": round(float(p50), 2), "p90_ms": round(float(p90), 2), "reps": len(ts),
                        "others_cpu": round(float(np.mean(others[name])), 2)}  # fmt: skip
    return report


def gold_questions() -> list[str]:
    """The seeds gold questions: real queries, for the agreement of query vectors."""
    from eval.harness import GOLD, load_gold

    return [g["question"] for g in load_gold()] if GOLD.is_file() else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--json", action="store_true", help="also print one JSON object")
    parser.add_argument("--limit", type=int, default=1500, help="corpus pieces to add (0: seeds only)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--budget-s", type=float, default=170.0,
        help="stop the throughput slices once this many seconds have passed (keeps a run ~5 min)",
    )  # fmt: skip
    parser.add_argument(
        "--cache-dir", type=Path, default=None,
        help="ONNX cache to use; default: a fresh temporary one, so the export is timed",
    )  # fmt: skip
    args = parser.parse_args()

    from sentence_transformers import SentenceTransformer

    from rag.embedding.onnx_backend import OnnxEmbedder
    from rag.embedding.torch_backend import TorchEmbedder

    run_started = time.perf_counter()
    watch = CpuWatch()
    texts = seed_pieces()
    n_seed = len(texts)
    texts += corpus_pieces(args.limit)

    with tempfile.TemporaryDirectory(prefix="bench-embed-") as tmp:
        cache = args.cache_dir or Path(tmp)
        t0 = time.perf_counter()
        onnx = OnnxEmbedder(cache_dir=cache)
        onnx_load_s = time.perf_counter() - t0
        export_s = onnx.export_seconds
        torch_emb = TorchEmbedder()
        raw: SentenceTransformer = torch_emb.model
        tokens = [len(onnx._tokenizer.encode(t).ids) for t in texts]

        bs = args.batch_size
        runners: dict[str, Callable[[list[str]], np.ndarray]] = {
            "sentence_transformers": lambda xs: raw.encode(
                xs, batch_size=bs, normalize_embeddings=True, convert_to_numpy=True
            ),
            "torch_embedder": lambda xs: torch_emb.encode(xs, batch_size=bs),
            "onnx_embedder": lambda xs: onnx.encode(xs, batch_size=bs),
        }
        for run in runners.values():  # warm-up: first-call allocations are not throughput
            run(texts[:bs])
        tallies = {name: Tally() for name in runners}
        vectors = {name: np.zeros((len(texts), onnx.identity.dim), np.float32) for name in runners}
        started, done = time.perf_counter(), 0
        for part in slices(len(texts), SLICES):
            if done and time.perf_counter() - started > args.budget_s:
                break  # a loaded machine: stop between slices, every backend did the same texts
            done = part.stop
            for name, run in runners.items():
                chunk, box = texts[part], dict[str, np.ndarray]()

                def work(run: Callable[[list[str]], np.ndarray] = run, chunk: list[str] = chunk,
                         box: dict[str, np.ndarray] = box) -> None:  # fmt: skip
                    box["v"] = run(chunk)

                wall, cpu, others = watch.measure(work)
                vectors[name][part] = box["v"]
                tally = tallies[name]
                tally.seconds += wall
                tally.cpu_seconds += cpu
                tally.texts += part.stop - part.start
                tally.others.append(others)

        texts, tokens = texts[:done], tokens[:done]
        cos = np.einsum("nd,nd->n", vectors["onnx_embedder"][:done], vectors["torch_embedder"][:done])
        questions = gold_questions()
        q_cos = np.einsum(
            "nd,nd->n",
            np.concatenate([onnx.encode([q]) for q in questions]) if questions else np.zeros((0, 1)),
            torch_emb.encode(questions) if questions else np.zeros((0, 1)),
        )

        # A text runs alone on one thread whatever the batch, so one ONNX row is the whole story.
        latency = latencies({"torch_embedder": torch_emb.encode, "onnx_embedder": onnx.encode}, watch)

    torch_ps = tallies["torch_embedder"].per_second
    report = {
        "cpus": os.cpu_count(),
        "texts": len(texts),
        "seed_texts": min(n_seed, len(texts)),
        "corpus_texts": max(0, len(texts) - n_seed),
        "tokens_mean": round(float(np.mean(tokens)), 1),
        "tokens_truncated": int(sum(t >= onnx.identity.max_tokens for t in tokens)),
        "batch_size": bs,
        "passages_per_s": {k: round(t.per_second, 1) for k, t in tallies.items()},
        "passages_per_cpu_s": {k: round(t.per_cpu_second, 1) for k, t in tallies.items()},
        "onnx_over_torch": round(tallies["onnx_embedder"].per_second / torch_ps, 2) if torch_ps else None,
        "others_cpu_mean": {k: round(float(np.mean(t.others)), 2) for k, t in tallies.items()},
        "cosine_onnx_torch": {
            "mean": round(float(cos.mean()), 4),
            "min": round(float(cos.min()), 4),
            "below_0.985": int((cos < 0.985).sum()),
            "questions_mean": round(float(q_cos.mean()), 4) if len(q_cos) else None,
            "questions_min": round(float(q_cos.min()), 4) if len(q_cos) else None,
        },
        "query": QUERY,
        "query_latency": latency,
        "onnx_export_s": round(export_s, 1) if export_s else None,
        "onnx_load_s": round(onnx_load_s, 1),
        "total_s": round(time.perf_counter() - run_started, 1),
    }

    print(f"texts: {report['texts']} ({report['seed_texts']} seed pieces + "
          f"{report['corpus_texts']} corpus pieces), {report['tokens_mean']} tokens on average, "
          f"{report['tokens_truncated']} truncated at {onnx.identity.max_tokens}; batch {bs}; "
          f"{report['cpus']} CPUs")  # fmt: skip
    for name, tally in tallies.items():
        print(f"  {name:<22} {tally.per_second:7.1f} passages/s   "
              f"{tally.per_cpu_second:6.1f} per CPU-second   "
              f"(others' load {np.mean(tally.others):.2f} cores)")  # fmt: skip
    print(f"  onnx / torch_embedder  {report['onnx_over_torch']}x")
    c = report["cosine_onnx_torch"]
    print(f"cosine onnx vs torch: mean {c['mean']}, min {c['min']}, {c['below_0.985']} below 0.985; "
          f"gold questions one by one: mean {c['questions_mean']}, min {c['questions_min']}")  # fmt: skip
    print(f"single query latency (up to {LATENCY_REPS} warm reps, {QUERY!r}):")
    for name, lat in latency.items():
        print(f"  {name:<22} p50 {lat['p50_ms']:6.2f} ms   p90 {lat['p90_ms']:6.2f} ms   "
              f"({lat['reps']} reps, others' load {lat['others_cpu']:.2f})")  # fmt: skip
    export = f"{export_s:.1f} s" if export_s else "not needed (cached)"
    print(f"onnx export + quantisation: {export}; OnnxEmbedder construction in all: {onnx_load_s:.1f} s; "
          f"this run: {report['total_s']:.0f} s")  # fmt: skip
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
