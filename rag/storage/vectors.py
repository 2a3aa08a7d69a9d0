"""FAISS vector index: ids are the chunk store's row ids; files are written atomically.

Two structures, chosen by size (`IndexPolicy`): exact flat inner product while small, and above
`ivf_above` vectors an inverted file (IVF-Flat) whose k-means cells cut a search to `nprobe` of its
`nlist` cells. Both support adding, removing and reconstructing by id, so deletion, replacement and
filters work the same for either.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from ..config import IVF_ABOVE, IVF_NPROBE, IndexKind, Settings


# A filtered search over at most this many allowed vectors is done exactly (reconstruct + dot
# product, ~10 ms at the limit) rather than through the IVF cells, where a narrow filter would
# leave most probed cells empty and return fewer than k.
EXACT_FILTER_MAX = 20_000


@dataclass(frozen=True)
class IndexPolicy:
    """Which structure an index of n vectors gets. Recorded per index (`describe`), so a change of
    policy shows in the manifest; the next commit converts the index when its structure is wrong."""

    kind: IndexKind = IndexKind.auto
    ivf_above: int = IVF_ABOVE  # reasons for both defaults beside them in rag/config.py
    # None: 4·sqrt(n) rounded to a power of two (the FAISS guideline of 4..16·sqrt(n) cells,
    # at its cheap end because each cell is scanned exhaustively on 2 cores).
    nlist: int | None = None
    nprobe: int = IVF_NPROBE

    @classmethod
    def from_settings(cls, settings: Settings) -> "IndexPolicy":
        return cls(settings.index_type, settings.ivf_above, settings.ivf_nlist, settings.ivf_nprobe)

    def wants(self, n: int, current: faiss.Index | None = None) -> tuple[str, int]:
        """("flat", 0) or ("ivf", nlist) for an index of n vectors. In auto mode an IVF index stays
        IVF down to half the threshold, so an index near it does not flip at every commit."""
        kind = self.kind
        if kind is IndexKind.auto:
            is_ivf = current is not None and _ivf(current) is not None
            kind = IndexKind.ivf if n > (self.ivf_above // 2 if is_ivf else self.ivf_above) else IndexKind.flat
        if kind is IndexKind.flat:
            return "flat", 0
        return "ivf", self.nlist or _default_nlist(n)


def set_nprobe(index: faiss.Index, nprobe: int) -> None:
    """A search-time setting: applies to an IVF index as loaded, no rebuild needed."""
    ivf = _ivf(index)
    if ivf is not None:
        ivf.nprobe = nprobe


def _default_nlist(n: int) -> int:
    return max(16, 2 ** round(math.log2(4 * math.sqrt(max(n, 1)))))


def new_index(dim: int) -> faiss.Index:
    """Exact inner-product search: vectors are normalised, so scores are cosines."""
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def describe(index: faiss.Index) -> dict:
    """The structure and parameters of an index, for the manifest and `rag stats`."""
    ivf = _ivf(index)
    if ivf is None:
        return {"type": "flat", "ntotal": int(index.ntotal)}
    return {"type": "ivf", "nlist": int(ivf.nlist), "nprobe": int(ivf.nprobe), "ntotal": int(index.ntotal)}


def fits(index: faiss.Index, policy: IndexPolicy) -> bool:
    """Whether the index already has the structure the policy wants for its size."""
    kind, nlist = policy.wants(int(index.ntotal), index)
    ivf = _ivf(index)
    return ivf is None if kind == "flat" else ivf is not None and ivf.nlist == nlist


def conform(index: faiss.Index, policy: IndexPolicy) -> faiss.Index:
    """The same vectors in the structure the policy wants for their number (the same object when
    it already fits). An IVF index is retrained when the wanted nlist changed (4x growth)."""
    set_nprobe(index, policy.nprobe)
    if fits(index, policy):
        return index
    kind, nlist = policy.wants(int(index.ntotal), index)
    ids, vecs = all_vectors(index)
    if kind == "flat":
        out = new_index(index.d)
        add(out, ids, vecs)
        return out
    return build_ivf(ids, vecs, nlist, policy.nprobe)


def build_ivf(ids: np.ndarray, vecs: np.ndarray, nlist: int, nprobe: int, seed: int = 1234) -> faiss.Index:
    """IVF-Flat over inner product, spherical k-means on a sample of at most 40 points a cell
    (FAISS warns below 39; more only slows training without moving the centroids much)."""
    d = vecs.shape[1]
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.spherical = True
    index.cp.seed = seed
    rng = np.random.default_rng(seed)
    sample = vecs if len(vecs) <= 40 * nlist else vecs[rng.choice(len(vecs), 40 * nlist, replace=False)]
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    index.own_fields = True
    quantizer.this.disown()
    # A hash map from id to list position: reconstruct and remove by id without scanning the lists.
    index.set_direct_map_type(faiss.DirectMap.Hashtable)
    index.nprobe = nprobe
    add(index, ids, vecs)
    return index


def all_vectors(index: faiss.Index) -> tuple[np.ndarray, np.ndarray]:
    """Every (id, vector) of a flat or IVF index."""
    ivf = _ivf(index)
    if ivf is None:
        ids = faiss.vector_to_array(index.id_map).astype(np.int64)
        return ids, index.index.reconstruct_n(0, index.ntotal) if len(ids) else np.zeros((0, index.d), np.float32)
    lists = ivf.invlists
    id_parts, vec_parts = [], []
    for cell in range(ivf.nlist):
        size = lists.list_size(cell)
        if size:
            id_parts.append(faiss.rev_swig_ptr(lists.get_ids(cell), size).copy())
            codes = faiss.rev_swig_ptr(lists.get_codes(cell), size * lists.code_size).copy()
            vec_parts.append(codes.view(np.float32).reshape(size, ivf.d))
    if not id_parts:
        return np.zeros(0, np.int64), np.zeros((0, ivf.d), np.float32)
    return np.concatenate(id_parts).astype(np.int64), np.vstack(vec_parts)


def add(index: faiss.Index, ids: np.ndarray, vectors: np.ndarray) -> None:
    if len(ids):
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))


def remove(index: faiss.Index, ids: list[int]) -> None:
    if ids:
        index.remove_ids(np.asarray(ids, dtype=np.int64))


def reconstruct(index: faiss.Index, ids: list[int]) -> np.ndarray:
    """The stored vectors of `ids`, in order; every id must be in the index."""
    if not ids:
        return np.zeros((0, index.d), np.float32)
    return np.vstack([index.reconstruct(int(i)) for i in ids])


def reconstruct_present(index: faiss.Index, ids: list[int]) -> dict[int, np.ndarray]:
    """The stored vectors of those `ids` the index holds. A reader's snapshot may predate a
    commit whose chunks the word index already returns; those are simply not here yet."""
    out = {}
    for i in ids:
        try:
            out[int(i)] = index.reconstruct(int(i))
        except RuntimeError:
            continue
    return out


def search(index: faiss.Index, query: np.ndarray, k: int, allowed: list[int] | None = None) -> list[tuple[int, float]]:
    """(id, score) best first; fewer than k when the index is small or few ids are allowed."""
    if index.ntotal == 0 or (allowed is not None and not allowed):
        return []
    q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
    ivf = _ivf(index)
    if allowed is None:
        scores, ids = index.search(q, k)
    elif ivf is not None and len(allowed) <= EXACT_FILTER_MAX:
        return _exact(index, q[0], k, allowed)
    else:
        sel = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
        if ivf is None:
            params = faiss.SearchParameters(sel=sel)
        else:  # probe more cells as the filter narrows, so about as many allowed vectors are seen
            widen = max(1.0, index.ntotal / len(allowed))
            params = faiss.SearchParametersIVF(sel=sel, nprobe=min(ivf.nlist, math.ceil(ivf.nprobe * widen)))
        scores, ids = index.search(q, k, params=params)
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]


def _exact(index: faiss.Index, q: np.ndarray, k: int, allowed: list[int]) -> list[tuple[int, float]]:
    found = reconstruct_present(index, allowed)
    if not found:
        return []
    present = list(found)
    scores = np.vstack([found[i] for i in present]) @ q
    top = np.argsort(-scores, kind="stable")[:k]
    return [(int(present[i]), float(scores[i])) for i in top]


def _ivf(index: faiss.Index) -> faiss.IndexIVF | None:
    """The IVF index itself, or None for the flat one."""
    return faiss.try_extract_index_ivf(index)


def write_atomic(index: faiss.Index, path: Path) -> None:
    """Write to a temporary file, fsync, rename: a crash leaves the old file or the new one.

    Written through a Python file, so a full disk is an OSError naming the file (FAISS's own
    writer would report it as a RuntimeError), and a half-written file is removed."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            faiss.write_index(index, faiss.PyCallbackIOWriter(fh.write))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(tmp)) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
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
