"""The tiered merge policy: which segments to merge next, so their number stays bounded.

Like Lucene's TieredMergePolicy, reduced to its core: segments fall into tiers by their live size,
each tier `factor` times the one below; a tier holding `factor` segments merges them into one of
the next tier, and a segment that is mostly tombstones is rewritten to drop them. A tier then never
holds more than factor - 1 segments, so n vectors sit in at most (factor - 1) * log_factor(n /
FLOOR) segments, and each vector is rewritten once per tier it climbs.

Unlike Lucene, the segments a tier merges are neighbours in time: of its members ordered by the
publication times they span, the `factor` consecutive ones spanning the shortest time. Feeds arrive
roughly in order, so segments then stay narrow in time and a date limit cuts through few of them
(rag/storage/segments.py); a backfill of old articles merges with the segments of its own time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Segments below this many live vectors all count as the lowest tier (Lucene's floor segment
# size): merging tiny commits of one article each ten at a time would leave many tiers of tiny
# segments; below ~1,000 a flat search costs the same whatever the size.
FLOOR = 1_000
# A segment whose tombstones exceed this share is rewritten alone (Lucene's deletesPctAllowed is
# 20..50%): its dead vectors would otherwise cost search time and disk until a tier merge.
EXPUNGE_SHARE = 0.3


@dataclass(frozen=True)
class SegmentSize:
    name: str
    live: int
    stored: int  # tombstoned vectors included
    start: int | None = None  # earliest and latest publication time held (None: none dated)
    end: int | None = None


def tier(live: int, factor: int) -> int:
    return int(math.floor(math.log(max(live, FLOOR) / FLOOR, factor) + 1e-9))


def plan(sizes: list[SegmentSize], factor: int, max_vectors: int) -> list[str]:
    """The names of the segments to merge next (empty when none need it): the lowest tier holding
    `factor` or more segments (its smallest `factor`), else the segment with most tombstones."""
    tiers: dict[int, list[SegmentSize]] = {}
    for s in sizes:
        if s.live < max_vectors // 2 or s.live < s.stored:
            tiers.setdefault(tier(s.live, factor), []).append(s)
    for t in sorted(tiers):
        members = sorted(tiers[t], key=lambda s: (s.live, s.name))
        if len(members) >= factor:
            pick = _neighbours_in_time(members, factor)
            while len(pick) > 1 and sum(s.live for s in pick) > max_vectors:
                pick = pick[:-1]
            if len(pick) > 1:
                return [s.name for s in pick]
    worst = max(sizes, key=lambda s: (s.stored - s.live) / max(s.stored, 1), default=None)
    if worst is not None and worst.stored - worst.live > EXPUNGE_SHARE * worst.stored:
        return [worst.name]
    return []


def _neighbours_in_time(members: list[SegmentSize], factor: int) -> list[SegmentSize]:
    """The `factor` members consecutive in time spanning the shortest time (ties: the smallest),
    smallest first. Undated segments sort last, so they merge among themselves."""
    by_time = sorted(members, key=lambda s: (s.start is None, s.start or 0, s.end or 0))

    def cost(run: list[SegmentSize]) -> tuple[float, int]:
        dated = [s for s in run if s.start is not None]
        span = (max(s.end for s in dated) - min(s.start for s in dated)) if dated else 0  # type: ignore[type-var, operator]
        return span + (math.inf if dated and len(dated) < len(run) else 0), sum(s.live for s in run)

    runs = [by_time[i : i + factor] for i in range(len(by_time) - factor + 1)]
    return sorted(min(runs, key=cost), key=lambda s: (s.live, s.name))
