"""The vector structures against numpy brute force: flat exactly, IVF by recall; conversion by size
keeps every (id, vector); removal and filters work for both."""

import numpy as np
import pytest

from rag.storage import vectors
from rag.ingestion.documents import Document
from rag.storage.vectors import IndexKind, IndexPolicy

DIM = 32


def clustered(n: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around 50 centres: like sentence embeddings, neighbours are not uniform noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, DIM))
    x = centres[rng.integers(0, 50, n)] + 0.5 * rng.normal(size=(n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def brute(data: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    return ids[np.argsort(-(data @ q), kind="stable")[:k]].tolist()


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    x = clustered(6000)
    return np.arange(6000, dtype=np.int64) * 7 + 3, x  # ids need not be dense


def test_auto_policy_picks_by_size_with_hysteresis():
    p = IndexPolicy(ivf_above=1000)
    assert p.wants(1000) == ("flat", 0)
    kind, nlist = p.wants(1001)
    assert kind == "ivf" and nlist == 128  # 4*sqrt(1001) = 126.6 -> 128
    ivf = vectors.build_ivf(np.arange(2000), clustered(2000), 16, 4)
    assert p.wants(600, ivf)[0] == "ivf" and p.wants(499, ivf) == ("flat", 0)
    assert IndexPolicy(kind=IndexKind.flat, ivf_above=1).wants(10**6) == ("flat", 0)
    assert IndexPolicy(kind=IndexKind.ivf, nlist=64).wants(10) == ("ivf", 64)


def test_conversion_keeps_every_vector(data):
    ids, x = data
    flat = vectors.new_index(DIM)
    vectors.add(flat, ids, x)
    ivf = vectors.conform(flat, IndexPolicy(ivf_above=1000, nprobe=8))
    assert vectors.describe(ivf) == {"type": "ivf", "nlist": 256, "nprobe": 8, "ntotal": 6000}
    got_ids, got = vectors.all_vectors(ivf)
    order = np.argsort(got_ids)
    assert np.array_equal(got_ids[order], ids) and np.array_equal(got[order], x)
    back = vectors.conform(ivf, IndexPolicy(kind=IndexKind.flat))
    assert vectors.describe(back)["type"] == "flat"
    assert np.array_equal(vectors.reconstruct(back, ids[:50].tolist()), x[:50])


def test_ivf_recall_against_brute_force(data):
    ids, x = data
    index = vectors.build_ivf(ids, x, nlist=64, nprobe=16)
    queries = clustered(100, seed=1)
    recall = np.mean([len({i for i, _ in vectors.search(index, q, 10)} & set(brute(x, ids, q, 10))) / 10 for q in queries])
    assert recall >= 0.95
    # scores are the true cosines of the vectors returned
    q = queries[0]
    for vid, score in vectors.search(index, q, 5):
        assert score == pytest.approx(float(x[(vid - 3) // 7] @ q), abs=1e-5)


def test_ivf_remove_and_filters_match_brute_force(data):
    ids, x = data
    index = vectors.build_ivf(ids, x, nlist=64, nprobe=64)  # every cell probed: exact
    gone = ids[:100].tolist()
    vectors.remove(index, gone)
    assert index.ntotal == 5900
    keep = np.ones(len(ids), bool)
    keep[:100] = False
    q = x[0]  # its own vector was removed: it must not come back
    assert [i for i, _ in vectors.search(index, q, 10)] == brute(x[keep], ids[keep], q, 10)
    with pytest.raises(RuntimeError):
        index.reconstruct(int(ids[0]))
    # a narrow filter is searched exactly; a wide one through the cells with a widened nprobe
    narrow = ids[50:400:3].tolist()
    want = [i for i in brute(x, ids, q, 400) if i in set(narrow) and i not in set(gone)][:5]
    assert [i for i, _ in vectors.search(index, q, 5, narrow)] == want
    wide = ids[200:].tolist()
    old = vectors.EXACT_FILTER_MAX
    try:
        vectors.EXACT_FILTER_MAX = 10
        assert [i for i, _ in vectors.search(index, q, 5, wide)] == brute(x[200:], ids[200:], q, 5)
    finally:
        vectors.EXACT_FILTER_MAX = old


def test_index_converts_to_ivf_and_keeps_deletes_and_replacements(make_service):
    """The whole path with a tiny threshold: a commit that crosses it trains IVF; the manifest says
    so; deleting and replacing documents then work as with the flat index."""
    s = make_service(ivf_above=20, ivf_nprobe=64)
    docs = [Document(f"d{i}", f"Article {i} about topic {i}. " + "Ukraine talks continue in Istanbul. " * (5 + i)) for i in range(30)]
    s.ingest(docs[:5])
    assert s.index.manifest.vector_index["type"] == "flat"
    s.ingest(docs[5:])
    ntotal = s.index.snapshot().faiss_index.ntotal
    assert ntotal > 20 and s.index.manifest.vector_index == {"type": "ivf", "nlist": 16, "nprobe": 64, "ntotal": ntotal}
    s.ingest([Document("d3", "Replaced text on grain exports through the Black Sea.")])
    s.delete(["d4"])
    hits = s.retriever.search("grain exports Black Sea", 3)
    assert hits[0].chunk.doc_id == "d3"
    assert all(h.chunk.doc_id != "d4" for h in s.retriever.search("Article 4 about topic 4", 10))
    store = s.index.store
    vids = sorted(v for d in store.documents() for v in store.chunk_vids(d.id))
    got_ids, _ = vectors.all_vectors(s.index.snapshot().faiss_index)
    assert sorted(got_ids.tolist()) == vids  # the vectors are exactly the committed chunks
    reopened = make_service(ivf_above=20, ivf_nprobe=64)
    assert vectors.describe(reopened.index.snapshot().faiss_index)["type"] == "ivf"
