"""A reference model and small helpers for the segmented-index tests (imported by the crash test's
child process too, so they live outside any test module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rag.storage import vectors
from rag.storage.index import Batch, Index, Manifest, PendingDoc
from rag.storage.store import ChunkRow, DocRow
from rag.storage.vectors import IndexPolicy

DIM = 32


class Model:
    """The reference: every live document's (vids, vectors), searched by brute force."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.docs: dict[str, tuple[list[int], np.ndarray]] = {}

    def vectors(self, n: int) -> np.ndarray:
        v = self.rng.normal(size=(n, DIM)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def top(self, q: np.ndarray, k: int, allowed: set[int] | None = None) -> list[int]:
        flat = vectors.new_index(DIM)  # rebuilt from scratch: the plain reference
        for vids, vecs in self.docs.values():
            vectors.add(flat, np.array(vids), vecs)
        return [v for v, _ in vectors.search(flat, q, k, None if allowed is None else sorted(allowed))]


def make_index(folder: Path, **kw) -> Index:
    manifest = Manifest(model_name="t", model_sha256="0" * 64, backend="none", dim=DIM, chunker={})
    # every cell probed: IVF segments are then exact, so top-k must match the reference exactly
    return Index.open(folder, manifest, policy=IndexPolicy(ivf_above=300, nprobe=10_000), merge_factor=4, **kw)


def commit(index: Index, model: Model, new: dict[str, int], deletes: list[str] = ()) -> None:
    with index.writer():
        batch = Batch(deletes=list(deletes))
        for doc, n in new.items():
            vids = index.reserve_vids(n)
            vecs = model.vectors(n)
            chunks = [ChunkRow(v, doc, i, 0, 4, "text") for i, v in enumerate(vids)]
            batch.upserts.append(PendingDoc(DocRow(doc, None, None, None, doc, n), "text", chunks, vecs))
            model.docs[doc] = (vids, vecs)
        index.commit(batch)
    for doc in deletes:
        model.docs.pop(doc, None)


def assert_same(index: Index, model: Model, queries: np.ndarray, k: int = 10) -> None:
    for q in queries:
        assert [v for v, _ in index.search_vids(q, k)] == model.top(q, k)
    live = [v for vids, _ in model.docs.values() for v in vids]
    allowed = set(live[::7])
    for q in queries[:5]:
        assert [v for v, _ in index.search_vids(q, k, sorted(allowed))] == model.top(q, k, allowed)
    assert index.vector_count() == len(live)
    got = index.vectors_for(live[:50])
    want = np.vstack([model.docs[d][1][model.docs[d][0].index(v)] for v in live[:50] for d in model.docs if v in model.docs[d][0]])
    assert np.array_equal(got, want)
