"""Segments under date limits against the plain reference: random publication times (undated ones
and backfills among them), deletes, replacements, merges, redating and random kills; every search
within a random time range must equal one flat index rebuilt from the admitted live vectors, and
segments wholly outside or inside a range must be skipped or searched unfiltered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from rag.storage import segments, vectors
from rag.storage.index import Batch, Index, PendingDoc
from rag.storage.store import ChunkRow, DocRow
from rag.storage.timerange import NO_DATE, Plan, TimeRange
from segment_helpers import Model, make_index

ROOT = Path(__file__).resolve().parents[2]
DAY = 86_400
T0 = int(datetime(2022, 1, 1, tzinfo=timezone.utc).timestamp())


def iso(t: int | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class DatedModel(Model):
    """The reference model with each document's publication time (None: undated)."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.when: dict[str, int | None] = {}

    def admitted(self, within: TimeRange) -> set[int]:
        out = set()
        for doc, (vids, _) in self.docs.items():
            t = self.when[doc]
            if within.admits(np.array([NO_DATE if t is None else t]))[0]:
                out.update(vids)
        return out


def commit_dated(index: Index, model: DatedModel, new: dict[str, tuple[int, int | None]], deletes=()) -> None:
    with index.writer():
        batch = Batch(deletes=list(deletes))
        for doc, (n, t) in new.items():
            vids = index.reserve_vids(n)
            vecs = model.vectors(n)
            chunks = [ChunkRow(v, doc, i, 0, 4, "text") for i, v in enumerate(vids)]
            batch.upserts.append(PendingDoc(DocRow(doc, None, None, iso(t), doc, n), "text", chunks, vecs))
            model.docs[doc], model.when[doc] = (vids, vecs), t
        index.commit(batch)
    for doc in deletes:
        model.docs.pop(doc, None)


def random_range(rng: np.random.Generator, days: int) -> TimeRange:
    kind = rng.integers(4)
    a, b = sorted(int(x) for x in rng.integers(-5, days + 5, 2))
    start = None if kind == 0 else T0 + a * DAY
    end = None if kind == 1 else T0 + b * DAY + int(rng.integers(DAY))
    return TimeRange(start, end, bool(rng.integers(2)))


def assert_same_within(index: Index, model: DatedModel, queries: np.ndarray, ranges: list[TimeRange],
                       k: int = 10) -> Plan:
    plan = Plan()
    for within in ranges:
        admitted = model.admitted(within)
        for q in queries:
            got = [v for v, _ in index.search_vids(q, k, within=within, plan=plan)]
            assert got == (model.top(q, k, admitted) if admitted else []), within
        listed = sorted(admitted)[::3]
        if listed:  # a source or id limit on top of the dates
            got = [v for v, _ in index.search_vids(queries[0], k, listed, within)]
            assert got == model.top(queries[0], k, set(listed))
    return plan


@pytest.fixture()
def small_exact(monkeypatch):
    """Filters of more than 30 vectors go through the IVF cells, so every strategy is exercised."""
    monkeypatch.setattr(segments, "EXACT_FILTER_MAX", 30)


def test_random_dates_deletes_and_merges_match_one_rebuilt_flat_index(tmp_path, small_exact):
    index, model = make_index(tmp_path / "ix"), DatedModel(0)
    queries = model.vectors(6)
    rng = np.random.default_rng(11)
    seen = Plan()
    counter, days = 0, 400
    for step in range(36):
        new = {}
        for _ in range(int(rng.integers(1, 5))):
            day = step * 10 + int(rng.integers(0, 12))  # roughly in order ...
            if rng.random() < 0.15:
                day = int(rng.integers(0, days))  # ... with backfills
            t = None if rng.random() < 0.1 else T0 + day * DAY + int(rng.integers(DAY))
            new[f"d{counter}"] = (int(rng.integers(5, 40)), t)
            counter += 1
        live = list(model.docs)
        deletes = [live[i] for i in rng.choice(len(live), min(len(live), 2), replace=False)] if step % 3 == 2 else []
        if step % 4 == 3 and live:  # a replacement, moved in time
            new[live[-1]] = (int(rng.integers(5, 20)), T0 + int(rng.integers(0, days)) * DAY)
        commit_dated(index, model, new, deletes)
        if step % 3 == 0:
            index.maintain()
        plan = assert_same_within(index, model, queries, [random_range(rng, days) for _ in range(3)])
        seen.vector.update(plan.vector)
    assert {"ivf", "flat"} <= {s["structure"] for s in index.segment_stats()}
    assert {"skip", "all", "exact", "pre", "post"} <= set(seen.vector), seen.vector
    reopened = make_index(tmp_path / "ix")
    assert_same_within(reopened, model, queries, [random_range(rng, days) for _ in range(5)])


def test_merges_keep_segments_apart_in_time_so_a_cutoff_filters_few(tmp_path):
    index, model = make_index(tmp_path / "ix"), DatedModel(1)
    for day in range(40):  # a feed: one day's articles a commit, in order
        commit_dated(index, model, {f"day{day}-{i}": (100, T0 + day * DAY + i * 3600) for i in range(3)})
        index.maintain()
    stats = index.segment_stats()
    assert len(stats) >= 4
    spans = sorted((s["published_from"], s["published_to"]) for s in stats)
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))  # no two segments overlap in time
    plan = Plan()
    cut = TimeRange(None, T0 + 20 * DAY + 7200)  # the middle of the archive
    assert_same_within(index, model, model.vectors(3), [cut])
    index.search_vids(model.vectors(1)[0], 10, within=cut, plan=plan)
    assert plan.vector["skip"] >= 1 and plan.vector["all"] >= 1
    assert sum(n for how, n in plan.vector.items() if how not in ("skip", "all")) == 1  # only the straddler


def test_a_future_dated_article_filters_only_its_own_segment(tmp_path):
    index, model = make_index(tmp_path / "ix"), DatedModel(2)
    for day in range(20):
        commit_dated(index, model, {f"a{day}": (30, T0 + day * DAY)})
        index.maintain()
    commit_dated(index, model, {"scheduled": (3, T0 + 3000 * DAY)})
    now = TimeRange(None, T0 + 25 * DAY)
    plan = Plan()
    q = model.vectors(1)[0]
    assert [v for v, _ in index.search_vids(q, 10, within=now, plan=plan)] == model.top(q, 10, model.admitted(now))
    assert plan.vector["skip"] == 1 and plan.vector["all"] == len(index.segment_stats()) - 1


def test_undated_articles_follow_include_undated_alone(tmp_path):
    index, model = make_index(tmp_path / "ix"), DatedModel(3)
    commit_dated(index, model, {"undated": (5, None), "dated": (5, T0 + 160 * DAY)})
    q = model.vectors(1)[0]
    for end in (T0 + 159 * DAY, T0 + 161 * DAY, None):  # before, after, no cutoff
        for undated in (True, False):
            within = TimeRange(None, end, undated)
            got = {index.store.chunks_by_vid([v])[v].doc_id for v, _ in index.search_vids(q, 10, within=within)}
            want = ({"undated"} if undated else set()) | ({"dated"} if end is None or end > T0 + 160 * DAY else set())
            assert got == want, (end, undated)


def test_a_redated_article_moves_in_time_for_every_reader(tmp_path, small_exact):
    index, model = make_index(tmp_path / "ix"), DatedModel(4)
    for i in range(8):
        commit_dated(index, model, {f"a{i}": (40, T0 + i * DAY)})
    reader = make_index(tmp_path / "ix")
    gen = index.store.generation()
    with index.writer():
        index.commit(Batch(metadata=[DocRow("a2", None, None, iso(T0 + 900 * DAY), "a2", 40)]))
    model.when["a2"] = T0 + 900 * DAY
    assert index.store.generation() == gen + 1  # readers reload their times
    ranges = [TimeRange(None, T0 + 10 * DAY), TimeRange(T0 + 800 * DAY, None), TimeRange(T0 + DAY, T0 + 3 * DAY)]
    queries = model.vectors(4)
    assert_same_within(reader, model, queries, ranges)
    index.maintain()  # the merged segment bakes the new time in
    assert_same_within(index, model, queries, ranges)
    assert_same_within(make_index(tmp_path / "ix"), model, queries, ranges)


def test_segments_written_before_times_read_them_from_the_store(tmp_path):
    index, model = make_index(tmp_path / "ix"), DatedModel(5)
    commit_dated(index, model, {"old": (6, T0), "new": (6, T0 + 50 * DAY), "none": (6, None)})
    for folder in segments.folders(tmp_path / "ix"):
        (folder / "times.npy").unlink()
    reopened = make_index(tmp_path / "ix")
    span = reopened.snapshot().views[0].span
    assert (span.start, span.end, span.undated) == (T0, T0 + 50 * DAY, 6)
    assert_same_within(reopened, model, model.vectors(3), [TimeRange(None, T0 + DAY, False), TimeRange(T0 + DAY, None)])


CHILD = r"""
import sys
from pathlib import Path
from segment_helpers import make_index
index = make_index(Path(sys.argv[1]))
print("merging", flush=True)
index.maintain()
print("finished", flush=True)
"""


def stored_reference(folder: Path) -> tuple[Index, list[int], np.ndarray, np.ndarray]:
    """The index reopened, and its live chunks' ids, vectors and times as its store records them."""
    index = make_index(folder)
    rows = index.store.connect().execute(
        "SELECT c.vid, d.published FROM chunks c JOIN documents d ON d.id = c.doc_id ORDER BY c.vid").fetchall()
    live = [r[0] for r in rows]
    times = np.array([NO_DATE if r[1] is None else int(datetime.fromisoformat(r[1].replace("Z", "+00:00")).timestamp())
                      for r in rows], np.int64)
    return index, live, index.vectors_for(live), times


def test_random_kills_during_dated_merges_leave_dates_whole(tmp_path):
    folder = tmp_path / "ix"
    index, model = make_index(folder), DatedModel(6)
    rng = np.random.default_rng(6)
    for i in range(40):  # merges that train IVF segments: long enough to be hit
        t = None if i % 9 == 4 else T0 + int(rng.integers(0, 200)) * DAY
        commit_dated(index, model, {f"d{i}": (150, t)}, deletes=[f"d{i - 4}"] if i >= 4 and i % 4 == 0 else [])
    index.close()
    env = dict(os.environ, PYTHONPATH=f"{ROOT}:{Path(__file__).parent}")
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(folder)], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout.readline().strip() == b"merging"
        time.sleep(float(rng.uniform(0.0, 0.8)))
        proc.kill()
        proc.wait(timeout=120)
        index, live, vecs, times = stored_reference(folder)
        for within in [random_range(rng, 200) for _ in range(4)]:
            keep = within.admits(times)
            flat = vectors.new_index(vecs.shape[1])
            vectors.add(flat, np.array(live)[keep], vecs[keep])
            for q in Model(7).vectors(4):
                want = [v for v, _ in vectors.search(flat, q, 10)] if keep.any() else []
                assert [v for v, _ in index.search_vids(q, 10, within=within)] == want
        index.close()
