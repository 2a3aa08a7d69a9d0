"""What articles published since a date add to earlier coverage (`since` on a query).

The question is searched twice: among articles published on or after `since`, and among the
earlier ones. Each later passage is split into sentences; a sentence whose embedding is within
STATED of an earlier passage's sentence (or whose words are the same) is already stated, and a
passage is kept, narrowed to the span of its new sentences, only when some sentence is new. This
goes beyond the near-duplicate fold, which sees whole articles: a new article that repeats an
older one's facts in other words adds nothing. Each kept passage names the earlier article it
updates: the one holding the sentence closest to its new ones, when that is at least RELATED.
"""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import numpy as np

from ..embedding.base import Embedder
from ..storage import Filters
from ..text import sentences
from .search import Hit

# Cosine (all-MiniLM-L6-v2) at or above which a later sentence restates an earlier one: close
# paraphrases of one fact score ~0.85 and above, two facts on one story mostly 0.5..0.8.
STATED = 0.85
# A later passage updates the earlier article whose closest sentence is at least this similar:
# the same topic, short of the same statement.
RELATED = 0.5


def split(filters: Filters, since: date) -> tuple[Filters, Filters]:
    """(the later articles: on or after `since`, dated only; the earlier ones: before it)."""
    start = since.isoformat()
    after = max(start, filters.published_after) if filters.published_after else start
    later = dataclasses.replace(filters, published_after=after, include_undated=False)
    if since == date.min:  # nothing is earlier
        return later, dataclasses.replace(filters, doc_ids=())
    day_before = (since - timedelta(days=1)).isoformat()
    before = min(day_before, filters.published_before) if filters.published_before else day_before
    return later, dataclasses.replace(filters, published_before=before)


def whats_new(later: list[Hit], earlier: list[Hit], embedder: Embedder) -> tuple[list[Hit], dict[str, str]]:
    """The later hits narrowed to their new sentences (those with none dropped), and for each
    kept one (by chunk id) the earlier article it updates, where there is one."""
    new = [(i, s) for i, h in enumerate(later) for s in sentences(h.chunk.text)]
    if not new:
        return [], {}
    old = [(h.chunk.doc_id, s.text) for h in earlier for s in sentences(h.chunk.text)]
    vecs = np.asarray(embedder.encode([s.text for _, s in new] + [t for _, t in old]), dtype=np.float32)
    sim = vecs[: len(new)] @ vecs[len(new):].T if old else np.zeros((len(new), 0), np.float32)
    seen = {_plain(t) for _, t in old}
    kept: list[Hit] = []
    updates: dict[str, str] = {}
    for i, hit in enumerate(later):
        rows = [r for r, (j, s) in enumerate(new) if j == i and _plain(s.text) not in seen
                and (sim.shape[1] == 0 or float(sim[r].max()) < STATED)]
        if not rows:
            continue
        first, last = new[rows[0]][1], new[rows[-1]][1]
        c = hit.chunk
        narrowed = dataclasses.replace(
            hit, chunk=dataclasses.replace(c, start=c.start + first.start, end=c.start + last.end,
                                           text=c.text[first.start : last.end]),
        )
        kept.append(narrowed)
        if sim.shape[1]:
            best = sim[rows].max(axis=0)
            j = int(best.argmax())
            if float(best[j]) >= RELATED:
                updates[narrowed.chunk.chunk_id] = old[j][0]
    return kept, updates


def _plain(text: str) -> str:
    return " ".join(text.lower().split())
