"""FAISS structures for one vector segment, and the policy that picks them by size.

Three structures (`IndexPolicy.structure_for`): exact flat inner product while small; above
`ivf_above` vectors an inverted file (IVF-Flat) whose k-means cells cut a search to `nprobe` of its
`nlist` cells; above `pq_above` an IVF with product-quantised codes (IVF-PQ, 1/32 of the memory),
whose candidates the segment re-scores exactly from full vectors kept on disk. Ids are the chunk
store's row ids. The plain flat index here is also the reference the tests hold segments to.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from ..config import IVF_ABOVE, IVF_NPROBE, PQ_ABOVE, PQ_RESCORE, IndexKind, Settings

# A filtered search over at most this many allowed vectors of a segment is done exactly (gather +
# dot product, ~10 ms at the limit) rather than through the IVF cells, where a narrow filter would
# leave most probed cells empty and return fewer than k.
EXACT_FILTER_MAX = 20_000
# Fewer vectors than this cannot train even 16 cells at FAISS's 39 points a cell: such a segment
# stays flat whatever the policy says.
MIN_TRAIN = 16 * 39
# Training cost grows with cells x sample (k-means over 40 points a cell): 4,096 cells train in
# ~50 s here, 16,384 would take ~15 min. Past 4,096 the cells are simply larger.
MAX_NLIST = 4096
# Eight dimensions per product-quantiser sub-vector, 8 bits each: 48 bytes for 384 dimensions.
PQ_DIMS_PER_CODE = 8


@dataclass(frozen=True)
class IndexPolicy:
    """Which structure a segment of n vectors gets. Recorded per segment, so a change of policy
    applies to what is written next (new commits and merges)."""

    kind: IndexKind = IndexKind.auto
    ivf_above: int = IVF_ABOVE  # reasons for the defaults beside them in rag/config.py
    pq_above: int = PQ_ABOVE
    # None: 4·sqrt(n) rounded to a power of two (the FAISS guideline of 4..16·sqrt(n) cells,
    # at its cheap end because each cell is scanned exhaustively on 2 cores), at most MAX_NLIST.
    nlist: int | None = None
    nprobe: int = IVF_NPROBE
    rescore: int = PQ_RESCORE

    @classmethod
    def from_settings(cls, settings: Settings) -> "IndexPolicy":
        return cls(settings.index_type, settings.ivf_above, settings.pq_above, settings.ivf_nlist,
                   settings.ivf_nprobe, settings.pq_rescore)

    def structure_for(self, n: int) -> tuple[str, int]:
        """("flat", 0), ("ivf", nlist) or ("ivfpq", nlist) for a segment of n vectors."""
        kind = self.kind
        if kind is IndexKind.auto:
            kind = IndexKind.ivfpq if n > self.pq_above else IndexKind.ivf if n > self.ivf_above else IndexKind.flat
        if kind is IndexKind.flat or n < MIN_TRAIN:
            return "flat", 0
        nlist = min(self.nlist or default_nlist(n), n // 39)
        return kind.value, max(1, nlist)


def default_nlist(n: int) -> int:
    return min(MAX_NLIST, max(16, 2 ** round(math.log2(4 * math.sqrt(max(n, 1))))))


def set_nprobe(index: faiss.Index, nprobe: int) -> None:
    """A search-time setting: applies to an IVF index as loaded, no rebuild needed."""
    ivf = ivf_of(index)
    if ivf is not None:
        ivf.nprobe = nprobe


def new_index(dim: int) -> faiss.Index:
    """Exact inner-product search with ids: vectors are normalised, so scores are cosines."""
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def describe(index: faiss.Index) -> dict:
    """The structure and parameters of an index."""
    ivf = ivf_of(index)
    if ivf is None:
        return {"type": "flat", "ntotal": int(index.ntotal)}
    kind = "ivfpq" if isinstance(ivf, faiss.IndexIVFPQ) else "ivf"
    return {"type": kind, "nlist": int(ivf.nlist), "nprobe": int(ivf.nprobe), "ntotal": int(index.ntotal)}


def train_ivf(sample: np.ndarray, structure: str, nlist: int, nprobe: int, seed: int = 1234) -> faiss.IndexIVF:
    """An empty trained IVF-Flat or IVF-PQ over inner product (spherical k-means), trained on at
    most 40 points a cell (FAISS warns below 39; more only slows training without moving the
    centroids much). Its ids are whatever `add_with_ids` gives it."""
    d = sample.shape[1]
    quantizer = faiss.IndexFlatIP(d)
    if structure == "ivfpq":
        m = d // PQ_DIMS_PER_CODE if d % PQ_DIMS_PER_CODE == 0 else d
        index: faiss.IndexIVF = faiss.IndexIVFPQ(quantizer, d, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
    else:
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.spherical = True
    index.cp.seed = seed
    # 10 k-means rounds, not FAISS's 25: the centroids of clustered embeddings settle by then and
    # training a large segment costs half as much (measured in eval/bench_index.py).
    index.cp.niter = 10
    rng = np.random.default_rng(seed)
    limit = max(40 * nlist, 256 * 40 if structure == "ivfpq" else 0)
    if len(sample) > limit:
        sample = sample[np.sort(rng.choice(len(sample), limit, replace=False))]
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    index.own_fields = True
    quantizer.this.disown()
    index.nprobe = nprobe
    return index


def build_ivf(ids: np.ndarray, vecs: np.ndarray, nlist: int, nprobe: int, seed: int = 1234) -> faiss.Index:
    """IVF-Flat holding `vecs` under `ids`, with a hash map from id to list position so that
    reconstruct and remove by id need no scan of the lists."""
    index = train_ivf(vecs, "ivf", nlist, nprobe, seed)
    index.set_direct_map_type(faiss.DirectMap.Hashtable)
    add(index, ids, vecs)
    return index


def all_vectors(index: faiss.Index) -> tuple[np.ndarray, np.ndarray]:
    """Every (id, vector) of a flat (IDMap2) or IVF-Flat index, as a single-file index held them."""
    ivf = ivf_of(index)
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


def search(index: faiss.Index, query: np.ndarray, k: int, allowed: list[int] | None = None) -> list[tuple[int, float]]:
    """(id, score) best first over one whole index; fewer than k when it is small or few ids are
    allowed. The reference the segmented search is tested against, and the benchmarks' baseline."""
    if index.ntotal == 0 or (allowed is not None and not allowed):
        return []
    q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
    params = None
    if allowed is not None:
        params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64)))
    scores, ids = index.search(q, k, params=params)
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]


def ivf_of(index: faiss.Index) -> faiss.IndexIVF | None:
    """The IVF index itself, or None for a flat one."""
    return faiss.try_extract_index_ivf(index)


def write(index: faiss.Index, path: Path) -> None:
    """Write through a Python file and fsync, so a full disk is an OSError naming the file (FAISS's
    own writer would report it as a RuntimeError)."""
    try:
        with open(path, "wb") as fh:
            faiss.write_index(index, faiss.PyCallbackIOWriter(fh.write))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from exc


def read(path: Path) -> faiss.Index:
    return faiss.read_index(str(path))
