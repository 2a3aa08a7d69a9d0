"""Embedding throughput on a GPU against the CPU, and how close their vectors are.

    python -m eval.bench_gpu [--articles 2000] [--cpu-chunks 2000] [--json]

Chunks RealTime QA articles as an ingest does, then embeds them with the torch backend on CUDA
(`RAG_DEVICE=cuda`: fp16, batches sized for the card) and a sample of them with the CPU ONNX
backend (the default) and torch on the CPU. Prints chunks/s for each, and the cosine of the CUDA
vectors to the CPU ones (mean and lowest): the index treats CUDA vectors as the torch backend's
only when the lowest cosine over its probe texts is >= 0.999 (rag/embedding/torch_backend.py).
Needs a CUDA device, the project installed (`pip install -e .`) and ../shared/data beside it.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from eval.realtimeqa import CORPUS
from rag.config import DEFAULT_EMBED_MODEL, Settings
from rag.embedding.onnx_backend import OnnxEmbedder
from rag.embedding.torch_backend import TorchEmbedder
from rag.ingestion import Chunker, load_path
from rag.text import context_text


def chunk_texts(n_articles: int, embedder) -> list[str]:  # type: ignore[no-untyped-def]
    s = Settings()
    chunker = Chunker(embedder.count_tokens, s.chunk_tokens, s.chunk_overlap, embedder.identity.max_tokens - 2)
    texts = []
    for i, doc in enumerate(load_path(CORPUS)):
        if i >= n_articles:
            break
        texts += [context_text(doc.title, c.text) for c in chunker.split(doc.id, doc.text)]
    return texts


def rate(embedder, texts: list[str]) -> tuple[np.ndarray, float]:  # type: ignore[no-untyped-def]
    embedder.encode(texts[:64])  # warm-up: kernels, allocator
    t0 = time.perf_counter()
    vecs = embedder.encode(texts)
    return vecs, len(texts) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--articles", type=int, default=2000)
    ap.add_argument("--cpu-chunks", type=int, default=2000, help="chunks the CPU backends embed (they are slow)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device: this benchmark measures the GPU (torch.cuda.is_available() is false)")
    gpu = TorchEmbedder(DEFAULT_EMBED_MODEL, "cuda")
    texts = chunk_texts(args.articles, gpu)
    gpu_vecs, gpu_rate = rate(gpu, texts)
    sample = texts[: args.cpu_chunks]
    onnx_vecs, onnx_rate = rate(OnnxEmbedder(DEFAULT_EMBED_MODEL, cache_dir=Settings().cache_dir), sample)
    cpu_vecs, cpu_rate = rate(TorchEmbedder(DEFAULT_EMBED_MODEL, "cpu"), sample)
    to_torch = np.sum(gpu_vecs[: len(sample)] * cpu_vecs, axis=1)
    to_onnx = np.sum(gpu_vecs[: len(sample)] * onnx_vecs, axis=1)
    result = {
        "gpu": torch.cuda.get_device_name(0), "chunks": len(texts), "gpu_batch_size": gpu.batch_size,
        "cuda_fp16_chunks_per_s": round(gpu_rate, 1), "onnx_cpu_chunks_per_s": round(onnx_rate, 1),
        "torch_cpu_chunks_per_s": round(cpu_rate, 1), "speedup_vs_onnx_cpu": round(gpu_rate / onnx_rate, 1),
        "cosine_to_torch_cpu_mean": round(float(to_torch.mean()), 5), "cosine_to_torch_cpu_min": round(float(to_torch.min()), 5),
        "cosine_to_onnx_cpu_mean": round(float(to_onnx.mean()), 5), "cosine_to_onnx_cpu_min": round(float(to_onnx.min()), 5),
        "probe_cosine": round(gpu.probe_cosine, 5), "identity_backend": gpu.identity.backend,
    }
    print(json.dumps(result, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
