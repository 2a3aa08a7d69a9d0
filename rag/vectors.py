"""FAISS vector index: ids are the chunk store's row ids; files are written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import faiss
import numpy as np


def new_index(dim: int) -> faiss.Index:
    """Exact inner-product search: vectors are normalised, so scores are cosines."""
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def add(index: faiss.Index, ids: np.ndarray, vectors: np.ndarray) -> None:
    if len(ids):
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))


def remove(index: faiss.Index, ids: list[int]) -> None:
    if ids:
        index.remove_ids(np.asarray(ids, dtype=np.int64))


def search(index: faiss.Index, query: np.ndarray, k: int, allowed: list[int] | None = None) -> list[tuple[int, float]]:
    """(id, score) best first; fewer than k when the index is small or few ids are allowed."""
    if index.ntotal == 0 or (allowed is not None and not allowed):
        return []
    q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
    if allowed is None:
        scores, ids = index.search(q, k)
    else:
        params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64)))
        scores, ids = index.search(q, k, params=params)
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]


def write_atomic(index: faiss.Index, path: Path) -> None:
    """Write to a temporary file, fsync, rename: a crash leaves the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    faiss.write_index(index, str(tmp))
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def read(path: Path) -> faiss.Index:
    return faiss.read_index(str(path))


def clone(index: faiss.Index) -> faiss.Index:
    return faiss.clone_index(index)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
