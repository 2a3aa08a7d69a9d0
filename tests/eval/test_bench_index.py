"""The index benchmark's machinery on small sets (its figures come from the full runs)."""

import numpy as np

from eval.bench_index import commit_cost, compare, exact_top, scale, structures_table, synthetic
from rag.storage.vectors import IndexPolicy


def test_synthetic_vectors_are_unit_and_clustered():
    x = synthetic(2000)
    assert x.shape == (2000, 384) and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    sims = x[:200] @ x[200:].T
    assert np.sort(sims, axis=1)[:, -1].mean() > 0.5 > np.median(sims)  # near neighbours exist; most pairs far


def test_streamed_exact_search_matches_a_full_sort():
    x, q = synthetic(3000), synthetic(10, seed=5)
    assert np.array_equal(exact_top(x, q, 10), np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :10])


def test_compare_reports_every_structure():
    x = synthetic(3050)
    result = compare(x[:3000], x[3000:], IndexPolicy(nlist=32, nprobe=32), "tiny")
    flat, ivf, pq = result["rows"].values()
    assert flat["recall_at_10"] == 1.0 and ivf["recall_at_10"] == 1.0 and pq["recall_at_10"] >= 0.9
    assert pq["memory_bytes_per_vector"] < ivf["memory_bytes_per_vector"] / 10
    assert "| flat |" in structures_table(result)


def test_commit_cost_measures_both_formats():
    r = commit_cost(3000, adds=100, repeats=2)
    assert r["after"]["bytes_written"] > 100 * 384 * 4  # the new vectors, at least
    assert r["before"]["bytes_written"] > 3000 * 384 * 4  # the whole file


def test_scale_reports_memory_latency_and_recall(tmp_path):
    r = scale(5000, tmp_path / "work", n_queries=20)
    assert r["structure"] == "flat" and r["recall_at_10"] == 1.0 and r["rss_bytes"] > 0
