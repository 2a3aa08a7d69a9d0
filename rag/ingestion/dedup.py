"""Near-duplicate articles (the same wire story republished, or re-ingested under another id).

MinHash over word 5-shingles (datasketch). Two articles whose estimated Jaccard similarity is at
least 0.8 are treated as one story: 5-word shingles make a re-headlined or lightly edited copy
score ~0.9, while two different stories on the same event share few 5-word runs (< 0.3).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # imported when first needed: datasketch pulls in scipy (~0.7 s), and a query never dedups
    from datasketch import MinHash

THRESHOLD = 0.8
NUM_PERM = 128
SHINGLE = 5
SEED = 1
SCHEME = "affine32"  # recorded so stored signatures stay comparable across datasketch versions


def signature(text: str) -> np.ndarray:
    words = text.lower().split()
    shingles = {" ".join(words[i : i + SHINGLE]).encode() for i in range(max(1, len(words) - SHINGLE + 1))}
    from datasketch import MinHash

    mh = MinHash(num_perm=NUM_PERM, seed=SEED, scheme=SCHEME)
    mh.update_batch(list(shingles))
    return mh.hashvalues.astype(np.uint64)


def _minhash(sig: np.ndarray) -> "MinHash":
    from datasketch import MinHash

    return MinHash(num_perm=NUM_PERM, seed=SEED, hashvalues=sig, scheme=SCHEME)


class DuplicateFinder:
    """An in-memory LSH over the stored signatures: finds the story a new article repeats."""

    def __init__(self, signatures: dict[str, np.ndarray]) -> None:
        from datasketch import MinHashLSH

        self.lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
        self.sigs: dict[str, np.ndarray] = {}
        for doc_id, sig in signatures.items():
            self.add(doc_id, sig)

    def add(self, doc_id: str, sig: np.ndarray) -> None:
        self.remove(doc_id)
        self.lsh.insert(doc_id, _minhash(sig))
        self.sigs[doc_id] = sig

    def remove(self, doc_id: str) -> None:
        if doc_id in self.sigs:
            self.lsh.remove(doc_id)
            del self.sigs[doc_id]

    def match(self, doc_id: str, sig: np.ndarray) -> str | None:
        """The most similar other article at or above the threshold, if any."""
        mh = _minhash(sig)
        best, best_j = None, THRESHOLD
        for other in self.lsh.query(mh):
            if other == doc_id:
                continue
            j = mh.jaccard(_minhash(self.sigs[other]))
            if j >= best_j:
                best, best_j = other, j
        return best
