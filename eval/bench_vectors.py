"""Vectors that depend on their text only: ways to run the model side by side, and ingest against a
bare encode, each in one run so the load of a shared machine hits all columns alike.

    python -m eval.bench_vectors variants [--docs 60] [--json]
    python -m eval.bench_vectors ingest [--docs 150] [--json]
    python -m eval.bench_vectors realtimeqa [--docs 200] [--json]

`variants` exports the packaged model afresh into a temporary folder in several forms (the shipped
dynamic int8; ONNX Runtime's transformer fusion before it; fp32 plain and fused; static int8 QDQ
calibrated on the seed pieces; 8-bit MatMulNBits when `onnx_ir` is installed) and runs each two
ways: in padded batches of 64, longest first, on a session with one intra-op thread per CPU (how
the backend ran before), and each text alone, unpadded, on one-thread sessions side by side
(how it runs now). For each it prints whether a text's vector is bitwise the same alone, in
batches of 64 and 3 and in reversed order; chunks/s on real RealTime QA chunks (interleaved
slices); and the cosine to the torch model.

`ingest` ingests the same RealTime QA articles three times into fresh indexes, interleaved by
slice: with the backend as shipped, with the former padded batches, and it times a bare encode of
the very texts the ingest embeds with the shipped backend, so `ingest ÷ encode` is what the rest
of the pipeline costs.

`realtimeqa` ingests every gold article of the RealTime QA questions and the first `--docs` others, once
each way, and scores the questions (as of their quiz dates) on both indexes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from eval.bench_embed import gold_questions, seed_pieces  # noqa: E402
from eval.realtimeqa import CORPUS  # noqa: E402
from rag.embedding.onnx_backend import OnnxEmbedder, _session  # noqa: E402

if TYPE_CHECKING:
    import onnxruntime as ort

    from rag.ingestion import Document

BATCH = 64
SLICES = 8
QUESTIONS_EXTRA = ["NATO", "ceasefire", "Who won the election?"]
# MiniLM-L6: 12 heads of 32 over a 384-wide hidden state (the fusion needs them named).
HEADS, HIDDEN = 12, 384


class PaddedBatchEmbedder(OnnxEmbedder):
    """The backend as it ran before: texts sorted longest first, padded per batch of
    `batch_size`, one session with an intra-op thread per CPU (one for ≤32 padded tokens).
    Dynamic int8 scales each batch's activations as one tensor, so a vector moves with its mates."""

    SINGLE_THREAD_MAX_TOKENS = 32

    def encode(self, texts: list[str], batch_size: int = BATCH) -> np.ndarray:
        ids = [np.asarray(e.ids, dtype=np.int64) for e in self._tokenizer.encode_batch(texts)]
        return padded_batches(lambda n: self._threads_session(n), ids, batch_size, self.identity.dim)

    def _threads_session(self, padded_tokens: int) -> ort.InferenceSession:
        threads = 1 if padded_tokens <= self.SINGLE_THREAD_MAX_TOKENS else self.workers
        if not hasattr(self, "_by_threads"):
            self._by_threads: dict[int, ort.InferenceSession] = {}
        if threads not in self._by_threads:
            self._by_threads[threads] = _session(self.onnx_path, threads)
        return self._by_threads[threads]


def run_padded(session: ort.InferenceSession, batch: list[np.ndarray]) -> np.ndarray:
    """One padded batch through `session`, mean-pooled over real tokens and normalised."""
    width = max(len(x) for x in batch)
    input_ids = np.zeros((len(batch), width), np.int64)
    mask = np.zeros_like(input_ids)
    for row, x in enumerate(batch):
        input_ids[row, : len(x)], mask[row, : len(x)] = x, 1
    feeds = {"input_ids": input_ids, "attention_mask": mask}
    if "token_type_ids" in {i.name for i in session.get_inputs()}:
        feeds["token_type_ids"] = np.zeros_like(input_ids)
    hidden = session.run(None, feeds)[0]
    weights = mask.astype(np.float32)
    pooled = np.einsum("bld,bl->bd", hidden, weights) / np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
    return (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def padded_batches(
    session_for: Callable[[int], ort.InferenceSession], ids: list[np.ndarray], batch_size: int, dim: int
) -> np.ndarray:
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    out = np.empty((len(ids), dim), np.float32)
    for start in range(0, len(order), max(1, batch_size)):
        rows = order[start : start + batch_size]
        batch = [ids[i] for i in rows]
        out[rows] = run_padded(session_for(len(batch) * max(len(x) for x in batch)), batch)
    return out


class Variant:
    """One ONNX file, run in padded batches or each text alone."""

    def __init__(self, path: Path, workers: int) -> None:
        self.path = path
        self.one = _session(path, 1)
        self.many = _session(path, workers)
        self.pool = ThreadPoolExecutor(workers)

    def padded(self, ids: list[np.ndarray], batch_size: int = BATCH) -> np.ndarray:
        return padded_batches(lambda _: self.many, ids, batch_size, HIDDEN)

    def alone(self, ids: list[np.ndarray], batch_size: int = BATCH) -> np.ndarray:
        return np.concatenate(list(self.pool.map(lambda x: run_padded(self.one, [x]), ids)))


def rtqa_chunks(n_docs: int, count_tokens: Callable[[str], int], skip: int = 1000) -> list[str]:
    """What an ingest embeds for `n_docs` RealTime QA articles (past the first `skip`): each
    chunk of the default chunker with its article's title."""
    from rag.ingestion.chunking import Chunker
    from rag.text import context_text

    chunker = Chunker(count_tokens, 200, 32, 254)
    out: list[str] = []
    for i, doc in enumerate(rtqa_documents(n_docs, skip)):
        out += [context_text(doc.title, c.text) for c in chunker.split(str(i), doc.text)]
    return out


def rtqa_documents(n_docs: int, skip: int = 1000) -> list[Document]:
    from rag.ingestion import Document

    if not CORPUS.is_file():
        sys.exit(f"the RealTime QA corpus is not at {CORPUS}")
    docs = []
    with gzip.open(CORPUS, "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i < skip:
                continue
            if len(docs) >= n_docs:
                break
            row = json.loads(line)
            text = str(row.get("text") or "")
            if text.strip():
                docs.append(Document(f"rtqa-{i}", text, title=row.get("title") or None, source=f"rtqa/{i}"))
    return docs


def build_variants(folder: Path, work: Path, calibration: list[np.ndarray]) -> dict[str, Path]:
    """The packaged model in each form measured; a form whose tools are missing is left out."""
    from onnxruntime.quantization import (
        CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static,
    )
    from onnxruntime.transformers.optimizer import optimize_model

    from rag.embedding.onnx_backend import _export_fp32, _quantize

    logging.getLogger().setLevel(logging.ERROR)  # the quantisers warn about pre-processing
    out = {"fp32": work / "fp32.onnx", "int8 dynamic (shipped)": work / "int8.onnx"}
    _export_fp32(folder, out["fp32"])
    _quantize(out["fp32"], out["int8 dynamic (shipped)"])
    fused = optimize_model(str(out["fp32"]), model_type="bert", num_heads=HEADS, hidden_size=HIDDEN, opt_level=0)
    out["fp32 fused"] = work / "fp32-fused.onnx"
    fused.save_model_to_file(str(out["fp32 fused"]))
    out["int8 dynamic, fused"] = work / "int8-fused.onnx"
    quantize_dynamic(str(out["fp32 fused"]), str(out["int8 dynamic, fused"]), weight_type=QuantType.QInt8,
                     per_channel=True, op_types_to_quantize=["MatMul", "Attention"],
                     extra_options={"DefaultTensorType": 1})  # fmt: skip

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter([{"input_ids": x[None, :], "attention_mask": np.ones_like(x)[None, :],
                                "token_type_ids": np.zeros_like(x)[None, :]} for x in calibration])  # fmt: skip

        def get_next(self) -> dict | None:
            return next(self.feeds, None)

    out["int8 static QDQ"] = work / "static.onnx"
    quantize_static(str(out["fp32"]), str(out["int8 static QDQ"]), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=["MatMul"], calibrate_method=CalibrationMethod.MinMax)  # fmt: skip
    try:
        import onnx
        from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer
    except ImportError as exc:
        print(f"8-bit MatMulNBits left out: {exc}", file=sys.stderr)
    else:
        cfg = DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=True, accuracy_level=4, bits=8)
        quantizer = MatMulNBitsQuantizer(onnx.load(str(out["fp32"])), algo_config=cfg)
        quantizer.process()
        out["MatMulNBits 8-bit"] = work / "nbits8.onnx"
        quantizer.model.save_model_to_file(str(out["MatMulNBits 8-bit"]), False)
    return out


def independent(run: Callable[..., np.ndarray], ids: list[np.ndarray]) -> dict[str, float | bool]:
    """Whether each text's vector is bitwise its lone one in batches of 64 and 3 and reversed."""
    alone = np.concatenate([run([x]) for x in ids])
    others = [run(ids, BATCH), run(ids, 3), run(ids[::-1], BATCH)[::-1]]
    worst = max(float(np.abs(o - alone).max()) for o in others)
    return {"bitwise": all(np.array_equal(o, alone) for o in others), "max_abs_diff": worst,
            "min_cosine": min(float(np.einsum("nd,nd->n", o, alone).min()) for o in others)}  # fmt: skip


def variants(args: argparse.Namespace) -> dict:
    from rag.embedding.torch_backend import TorchEmbedder

    probe = OnnxEmbedder(cache_dir=Path(tempfile.mkdtemp(prefix="bench-vectors-cache-")))
    tokenize = lambda texts: [np.asarray(e.ids, np.int64) for e in probe._tokenizer.encode_batch(texts)]  # noqa: E731
    chunks = rtqa_chunks(args.docs, probe.count_tokens)
    passages = seed_pieces() + chunks
    questions = gold_questions() + QUESTIONS_EXTRA
    check_ids = tokenize(seed_pieces() + QUESTIONS_EXTRA + chunks[:40])
    torch_model = TorchEmbedder()
    truth_p, truth_q = torch_model.encode(passages), torch_model.encode(questions)
    workers = os.cpu_count() or 1
    report: dict = {"chunks": len(chunks), "cpus": workers, "tokens_mean": float(np.mean([len(x) for x in tokenize(chunks)]))}
    with tempfile.TemporaryDirectory(prefix="bench-vectors-") as tmp:
        files = build_variants(Path(probe.identity.path), Path(tmp), tokenize(seed_pieces()))
        runs = {(name, way): getattr(Variant(path, workers), way) for name, path in files.items() for way in ("padded", "alone")}
        ids = tokenize(chunks)
        for run in runs.values():
            run(ids[:8])  # warm-up
        seconds = dict.fromkeys(runs, 0.0)
        bounds = np.linspace(0, len(ids), SLICES + 1).astype(int)
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            for key, run in runs.items():
                t0 = time.perf_counter()
                run(ids[a:b])
                seconds[key] += time.perf_counter() - t0
        base = len(ids) / seconds[("int8 dynamic (shipped)", "padded")]
        rows = []
        for (name, way), run in runs.items():
            cos_p = np.einsum("nd,nd->n", run(tokenize(passages)), truth_p)
            cos_q = np.einsum("nd,nd->n", run(tokenize(questions)), truth_q)
            speed = len(ids) / seconds[(name, way)]
            rows.append({"variant": name, "run": "padded batches of 64" if way == "padded" else "each text alone",
                         "chunks_per_s": round(speed, 1), "vs_former": round(speed / base, 2),
                         "cosine_passages_mean": round(float(cos_p.mean()), 4), "cosine_passages_min": round(float(cos_p.min()), 4),
                         "cosine_questions_mean": round(float(cos_q.mean()), 4), "cosine_questions_min": round(float(cos_q.min()), 4),
                         **independent(run, check_ids), "mib": round(files[name].stat().st_size / 2**20, 1)})  # fmt: skip
    report["rows"] = rows
    print(f"{len(chunks)} RealTime QA chunks ({report['tokens_mean']:.0f} tokens on average), {workers} CPUs; "
          f"cosine to torch over {len(passages)} passages and {len(questions)} questions")  # fmt: skip
    print("| variant | run | bitwise the same in any batch | chunks/s | × former | cosine passages mean / min | questions mean / min |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        same = "yes" if r["bitwise"] else f"no (max diff {r['max_abs_diff']:.1e}, cos ≥ {r['min_cosine']:.4f})"
        print(f"| {r['variant']} | {r['run']} | {same} | {r['chunks_per_s']} | {r['vs_former']} | "
              f"{r['cosine_passages_mean']} / {r['cosine_passages_min']} | {r['cosine_questions_mean']} / {r['cosine_questions_min']} |")
    return report


def ingest(args: argparse.Namespace) -> dict:
    from rag.config import Settings
    from rag.service import Service

    cache = Path(args.cache_dir) if args.cache_dir else Settings().cache_dir
    shipped = OnnxEmbedder(cache_dir=cache)
    former = PaddedBatchEmbedder(cache_dir=cache)
    docs = rtqa_documents(args.docs)
    warm = rtqa_documents(1, skip=0)
    texts = _embedded_texts(shipped, docs)
    work = Path(tempfile.mkdtemp(prefix="bench-vectors-ingest-"))
    try:
        services = {name: Service(Settings(index_dir=work / name, seeds_dir=work / "none"), embedder=emb)
                    for name, emb in (("shipped", shipped), ("former", former))}  # fmt: skip
        for service in services.values():
            service.ingest(warm)
        warm_chunks = services["shipped"].health().chunks
        inside = _time_parts(services["shipped"])  # where the shipped ingest's time goes
        shipped.encode(texts[:16])
        seconds = {"ingest shipped": 0.0, "ingest former": 0.0, "encode shipped": 0.0}
        bounds = np.linspace(0, len(docs), SLICES + 1).astype(int)
        per_doc = [len(t) for t in _embedded_texts(shipped, docs, per_doc=True)]
        starts = np.concatenate([[0], np.cumsum(per_doc)]).astype(int)
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            for name, service in services.items():
                t0 = time.perf_counter()
                service.ingest(docs[a:b])
                seconds[f"ingest {name}"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            shipped.encode(texts[starts[a] : starts[b]])
            seconds["encode shipped"] += time.perf_counter() - t0
        chunks = {name: s.health().chunks - warm_chunks for name, s in services.items()}
        same = _same_vectors(services["shipped"], services["former"])
        for service in services.values():
            service.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    n = len(texts)
    report = {
        "articles": len(docs), "chunks": n, "chunks_in_index": chunks,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "chunks_per_s": {k: round(n / v, 1) for k, v in seconds.items()},
        "ingest_shipped_over_former": round(seconds["ingest former"] / seconds["ingest shipped"], 2),
        "ingest_over_encode": round(seconds["encode shipped"] / seconds["ingest shipped"], 2),
        "shipped_ingest_seconds_in": {k: round(v, 1) for k, v in inside.items()}
        | {"the rest (SQLite, FTS5, segments, MinHash, merging)": round(seconds["ingest shipped"] - sum(inside.values()), 1)},
        "former_vs_shipped_vectors": same,
    }
    print(json.dumps(report, indent=2) if not args.json else "")
    return report


def _time_parts(service) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Seconds the service's ingests spend embedding and chunking, counted from now (its
    embedder's encode and its chunker's split, wrapped on these instances only)."""
    spent = {"embedding": 0.0, "chunking": 0.0}

    def timed(fn, key):  # type: ignore[no-untyped-def]
        def run(*a, **k):  # type: ignore[no-untyped-def]
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[key] += time.perf_counter() - t0
        return run

    ingestor = service.ingestor
    ingestor.embedder = _Timed(ingestor.embedder, timed(ingestor.embedder.encode, "embedding"))
    ingestor.chunker.split = timed(ingestor.chunker.split, "chunking")
    return spent


class _Timed:
    """An embedder whose encode is wrapped; everything else is the embedder's."""

    def __init__(self, inner, encode) -> None:  # type: ignore[no-untyped-def]
        self._inner, self.encode = inner, encode

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._inner, name)


def realtimeqa(args: argparse.Namespace) -> dict:
    """RealTime QA on a subset (every gold article and the first `--docs` others), ingested once
    with each text alone and once with the former padded batches: the same questions scored on both."""
    from eval import realtimeqa as rt
    from rag.config import Settings
    from rag.service import Service

    questions = rt.load_questions(rt.QUESTIONS)
    gold = {q["gold_url"] for q in questions}
    cache = Path(args.cache_dir) if args.cache_dir else Settings().cache_dir
    work = Path(tempfile.mkdtemp(prefix="bench-vectors-rtqa-"))
    subset = work / "subset.jsonl"
    with gzip.open(CORPUS, "rt", encoding="utf-8") as fh, subset.open("w", encoding="utf-8") as out:
        others = 0
        for line in fh:
            url = json.loads(line).get("url")
            if url in gold or others < args.docs:
                others += url not in gold
                out.write(line)
    report: dict = {"questions": len(questions)}
    try:
        for name, embedder in (("each text alone", OnnxEmbedder(cache_dir=cache)),
                               ("padded batches (former)", PaddedBatchEmbedder(cache_dir=cache))):  # fmt: skip
            service = Service(Settings(index_dir=work / name.split()[0], seeds_dir=work / "none"), embedder=embedder)
            ingest_s = rt.ensure_ingested(service, subset)
            row, _ = rt.run(service, questions, as_of=True)
            report[name] = {"ingest_s": ingest_s, "chunks": service.health().chunks} | {
                k: round(row[k], 3) for k in ("hit@1", "hit@5", "hit@10", "mrr@10", "mc_accuracy")}
            service.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return report


def _embedded_texts(embedder: OnnxEmbedder, docs: list[Document], per_doc: bool = False) -> list:
    """The texts an ingest embeds for `docs` (chunks with their titles), flat or one list each."""
    from rag.ingestion.chunking import chunker_for
    from rag.text import context_text

    chunker = chunker_for(embedder, 200, 32)
    each = [[context_text(d.title, c.text) for c in chunker.split(d.id, d.text)] for d in docs]
    return each if per_doc else [t for texts in each for t in texts]


def _same_vectors(a, b) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Cosine between the two indexes' vectors of the same chunks."""
    cos = []
    for doc in a.documents():
        va = a.index.vectors_for(a.index.store.chunk_vids(doc.id))
        vb = b.index.vectors_for(b.index.store.chunk_vids(doc.id))
        cos += np.einsum("nd,nd->n", va, vb).tolist()
    return {"cosine_mean": round(float(np.mean(cos)), 4), "cosine_min": round(float(np.min(cos)), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("what", choices=["variants", "ingest", "realtimeqa"])
    parser.add_argument("--docs", type=int, default=None,
                        help="RealTime QA articles (variants: 60, ingest: 150, realtimeqa: 200 besides the gold ones)")
    parser.add_argument("--cache-dir", default=None, help="ingest: the ONNX cache (default: the settings')")
    parser.add_argument("--json", action="store_true", help="also print one JSON object")
    args = parser.parse_args()
    if args.docs is None:
        args.docs = {"variants": 60, "ingest": 150, "realtimeqa": 200}[args.what]
    report = {"variants": variants, "ingest": ingest, "realtimeqa": realtimeqa}[args.what](args)
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
