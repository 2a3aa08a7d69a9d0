"""The seeds ingested with RAG_EMBED_BATCH_SIZE=1 and 64, in two orders, give the same vectors bit
for bit and the same `rag eval` figures; the former padded batches, run the same way, do not (so
the check can fail)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eval.bench_vectors import PaddedBatchEmbedder
from eval.harness import EvalConfig, evaluate
from rag.config import RetrievalMode, Settings
from rag.ingestion import load_path
from rag.service import Service

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "seeds"
# Figures that time the run rather than score it.
TIMINGS = {"latency_p50_ms", "latency_p95_ms", "seconds_per_answer"}


def ingest(folder: Path, embedder, batch_size: int, reverse: bool, monkeypatch) -> Service:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RAG_EMBED_BATCH_SIZE", str(batch_size))
    settings = Settings(index_dir=folder, seeds_dir=SEEDS)
    assert settings.embed_batch_size == batch_size
    docs = sorted(load_path(SEEDS), key=lambda d: d.id, reverse=reverse)
    service = Service(settings, embedder=embedder)
    service.ingest(docs)
    return service


def vectors_by_chunk(service: Service) -> dict[tuple[str, int], np.ndarray]:
    out: dict[tuple[str, int], np.ndarray] = {}
    store = service.index.store
    for doc in service.documents():
        vids = store.chunk_vids(doc.id)
        rows = store.chunks_by_vid(vids)
        for vid, vec in zip(vids, service.index.vectors_for(vids)):
            out[(rows[vid].doc_id, rows[vid].ordinal)] = vec
    return out


def test_batch_size_and_order_change_no_vector_and_no_figure(tmp_path, embedder, gold, monkeypatch) -> None:
    runs = {}
    for batch_size, reverse in ((1, False), (64, False), (1, True), (64, True)):
        service = ingest(tmp_path / f"b{batch_size}-{reverse}", embedder, batch_size, reverse, monkeypatch)
        runs[(batch_size, reverse)] = service
    reference = vectors_by_chunk(runs[(1, False)])
    assert len(reference) > 20
    for key, service in runs.items():
        found = vectors_by_chunk(service)
        assert found.keys() == reference.keys(), key
        differing = [c for c in reference if not np.array_equal(found[c], reference[c])]
        assert not differing, f"{key}: {len(differing)} chunks' vectors differ, e.g. {differing[:3]}"

    config = EvalConfig(RetrievalMode.hybrid, 5, 200)
    first = evaluate(runs[(1, False)], config, gold)
    last = evaluate(runs[(64, True)], config, gold)
    assert {k: v for k, v in first.metrics.items() if k not in TIMINGS} == {
        k: v for k, v in last.metrics.items() if k not in TIMINGS
    }
    assert [r["first_hit"] for r in first.per_question] == [r["first_hit"] for r in last.per_question]
    for service in runs.values():
        service.close()


def test_former_padded_batches_fail_the_same_check(tmp_path, embedder, monkeypatch) -> None:
    """The check above can fail: dynamic int8 over padded batches moved vectors with their mates."""
    former = PaddedBatchEmbedder(cache_dir=Path(embedder.onnx_path).parents[2])
    assert former.onnx_path == embedder.onnx_path
    one = vectors_by_chunk(ingest(tmp_path / "b1", former, 1, False, monkeypatch))
    many = vectors_by_chunk(ingest(tmp_path / "b64", former, 64, True, monkeypatch))
    cos = np.array([float(one[c] @ many[c]) for c in one])
    assert not all(np.array_equal(one[c], many[c]) for c in one)
    assert cos.min() < 0.9999 and cos.min() > 0.95
