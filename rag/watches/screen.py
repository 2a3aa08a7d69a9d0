"""The pre-screen of a commit's standing questions: one matrix product of the watches' question
vectors with the vectors of the new chunks, as the index stores them.

The full rule refuses a question whose best retrieved passage scores below the relevance floor,
and refuses a watch whose best cited passage is below its own bar; both are cosines of the
question vector with stored chunk vectors, and what the full rule retrieves is a subset of the new
chunks the watch's filters admit. So a watch whose best admitted new chunk is below its bar is
refused by the full rule too: the screen drops only those, and never one the full rule notifies.
"""

from __future__ import annotations

import numpy as np

# A matrix product may round a cosine differently in the last bits from the vector product the
# search computes; a watch this close under its bar goes on to the full rule, which decides.
MARGIN = 1e-4
# Watches scored per matrix product: bounds the scores held at once (here x the new chunks).
BLOCK = 512


def best_scores(questions: np.ndarray, chunks: np.ndarray) -> np.ndarray:
    """For each question (a row of `questions`), its best cosine over the `chunks` (rows);
    -inf when there are none."""
    n = len(questions)
    best = np.full(n, -np.inf, np.float32)
    if not n or not len(chunks):
        return best
    q = np.ascontiguousarray(questions, dtype=np.float32)
    c = np.ascontiguousarray(chunks, dtype=np.float32)
    for start in range(0, n, BLOCK):
        best[start : start + BLOCK] = (q[start : start + BLOCK] @ c.T).max(axis=1)
    return best


def passing(best: np.ndarray, bars: np.ndarray) -> np.ndarray:
    """Which watches go on to the full rule: their best admitted chunk reaches their bar."""
    return best >= np.asarray(bars, dtype=np.float32) - MARGIN
