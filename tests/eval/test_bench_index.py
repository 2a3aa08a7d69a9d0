"""The index benchmark's machinery on a small synthetic set (its figures come from the full run)."""

import numpy as np

from eval.bench_index import compare, synthetic, table
from rag.storage.vectors import IndexPolicy


def test_synthetic_vectors_are_unit_and_clustered():
    x = synthetic(2000)
    assert x.shape == (2000, 384) and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    sims = x[:200] @ x[200:].T
    assert np.sort(sims, axis=1)[:, -1].mean() > 0.5 > np.median(sims)  # near neighbours exist; most pairs far


def test_compare_reports_every_figure():
    x = synthetic(3050)
    result = compare(x[:3000], x[3000:], IndexPolicy(nprobe=64), "tiny")
    flat, ivf = result["rows"].values()
    assert flat["recall_at_10"] == 1.0 and ivf["recall_at_10"] >= 0.9
    assert ivf["readded_found_at_1"] == 1.0 and flat["bytes_per_vector"] >= 384 * 4
    assert "| flat |" in table(result)
