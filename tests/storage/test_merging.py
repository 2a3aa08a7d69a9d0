"""The tiered merge policy against hand-worked cases, and the bound it keeps on segment counts."""

import numpy as np

from rag.storage.merging import FLOOR, SegmentSize, plan, tier


def sizes(*live: int) -> list[SegmentSize]:
    return [SegmentSize(f"s{i}", n, n) for i, n in enumerate(live)]


def test_tiers_are_powers_of_the_factor_above_the_floor():
    assert [tier(n, 10) for n in (1, FLOOR, 9_999, 10_000, 99_999, 100_000)] == [0, 0, 0, 1, 1, 2]


def test_a_full_tier_merges_its_smallest_members():
    assert plan(sizes(5, 8, 3, 900), factor=4, max_vectors=10**6) == ["s2", "s0", "s1", "s3"]
    assert plan(sizes(5, 8, 3), factor=4, max_vectors=10**6) == []
    # tier 1 (10k..100k) is full, tier 0 is not: tier 1 merges
    assert plan(sizes(20_000, 30_000, 40_000, 50_000, 7), factor=4, max_vectors=10**6) == ["s0", "s1", "s2", "s3"]


def test_merges_stay_under_the_size_cap():
    assert plan(sizes(3_000, 3_000, 3_000, 3_000), factor=4, max_vectors=7_000) == ["s0", "s1"]
    assert plan(sizes(4_000, 4_000, 4_000, 4_000), factor=4, max_vectors=7_000) == []  # each past half the cap


def test_a_segment_mostly_tombstones_is_rewritten():
    segs = [SegmentSize("a", 400, 1000), SegmentSize("b", 900, 1000)]
    assert plan(segs, factor=10, max_vectors=10**6) == ["a"]
    assert plan([SegmentSize("a", 800, 1000)], factor=10, max_vectors=10**6) == []


def test_simulated_growth_keeps_the_count_bounded():
    """Commits of 1..50 vectors, merging as the policy says after each: the segment count never
    exceeds (factor - 1) per tier, and every vector is kept."""
    rng = np.random.default_rng(0)
    live: dict[str, int] = {}
    total, most, factor = 0, 0, 10
    for n in range(3000):
        size = int(rng.integers(1, 50))
        live[f"c{n}"] = size
        total += size
        while names := plan([SegmentSize(k, v, v) for k, v in live.items()], factor, 10**9):
            live[f"m{n}-{len(live)}"] = sum(live.pop(k) for k in names)
        most = max(most, len(live))
    assert sum(live.values()) == total
    tiers = tier(total, factor) + 1
    assert most <= (factor - 1) * tiers, (most, tiers)


def test_a_tier_merges_neighbours_in_time_not_just_the_smallest():
    day = 86_400
    segs = [SegmentSize("jan", 500, 500, 0, 30 * day), SegmentSize("feb", 500, 500, 31 * day, 58 * day),
            SegmentSize("backfill", 10, 10, -365 * day, -364 * day),  # smallest, but a year older
            SegmentSize("mar", 600, 600, 59 * day, 89 * day), SegmentSize("apr", 700, 700, 90 * day, 119 * day)]
    assert set(plan(segs, factor=4, max_vectors=10**6)) == {"jan", "feb", "mar", "apr"}
    undated = [SegmentSize(f"u{i}", 5, 5) for i in range(3)]
    # dated and undated segments merge among their own kind
    assert set(plan(segs[:3] + undated + [SegmentSize("u3", 900, 900)], factor=4, max_vectors=10**6)) == {
        "u0", "u1", "u2", "u3"}
