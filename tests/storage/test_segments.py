"""The segmented index against a plain reference: one flat index rebuilt from scratch over the same
live vectors must return the same top-k, through commits, deletions and replacements across
segments, merges, filters and reopening; and an index in the single-file format migrates whole."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from rag.storage import segments, vectors
from rag.storage.index import Index
from rag.storage.space import StorageFull
from segment_helpers import Model, assert_same, commit, make_index

DATA = Path(__file__).parent / "data"


def test_commits_deletes_replacements_and_merges_match_one_rebuilt_flat_index(tmp_path):
    index, model = make_index(tmp_path / "ix"), Model(0)
    queries = model.vectors(20)
    rng = np.random.default_rng(1)
    counter = 0
    for step in range(40):
        new = {f"d{counter + i}": int(rng.integers(1, 30)) for i in range(int(rng.integers(1, 6)))}
        counter += len(new)
        live = list(model.docs)
        deletes = [live[i] for i in rng.choice(len(live), min(len(live), 2), replace=False)] if step % 3 == 2 else []
        if step % 4 == 3 and live:  # a replacement: an existing id with new vectors
            new[live[0]] = int(rng.integers(1, 10))
        commit(index, model, new, deletes)
        assert_same(index, model, queries)
        if step % 5 == 4:
            index.maintain()
            assert_same(index, model, queries)
    structures = {s["structure"] for s in index.segment_stats()}
    assert "ivf" in structures  # a merge crossed the flat/IVF threshold and trained IVF
    assert index.store.segment_state()[2] == sorted(
        v for s in index.snapshot().views for v in s.dead.tolist())  # every tombstone lies in a live segment
    reopened = make_index(tmp_path / "ix")  # a new reader opens the same segments from disk
    assert_same(reopened, model, queries)


def test_merging_drops_tombstones_and_keeps_the_count_bounded(tmp_path):
    index, model = make_index(tmp_path / "ix"), Model(2)
    queries = model.vectors(10)
    for i in range(60):
        commit(index, model, {f"d{i}": 3}, deletes=[f"d{i - 5}"] if i >= 5 and i % 2 else [])
        index.maintain()
        assert len(index.segment_stats()) <= 3 * 3  # (factor - 1) a tier, three tiers at most here
    assert_same(index, model, queries)
    dead = sum(s["tombstones"] for s in index.segment_stats())
    assert dead < 30  # merged away as segments merge; the store keeps only those still in a segment
    assert len(index.store.segment_state()[2]) == dead
    names = {s["name"] for s in index.segment_stats()}
    assert {p.name for p in segments.folders(tmp_path / "ix")} == names  # merged-away folders removed


def test_a_reader_picks_up_new_segments_without_reopening_old_ones(tmp_path):
    writer, model = make_index(tmp_path / "ix"), Model(3)
    commit(writer, model, {"a": 5})
    reader = make_index(tmp_path / "ix")
    first = reader.snapshot().views[0].segment
    commit(writer, model, {"b": 5}, deletes=["a"])
    views = reader.snapshot().views
    assert len(views) == 2 and views[0].segment is first  # the old segment object is reused
    assert len(views[0].dead) == 5
    assert_same(reader, model, model.vectors(5))


def test_a_failed_commit_leaves_no_segment_and_the_last_generation(tmp_path, monkeypatch):
    index, model = make_index(tmp_path / "ix"), Model(4)
    commit(index, model, {"a": 5})
    gen = index.store.generation()

    def full(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(index.store, "set_meta", full)  # fails after the segment was published
    with pytest.raises(StorageFull):
        commit(index, Model(5), {"b": 5})
    monkeypatch.undo()
    assert index.store.generation() == gen and index.vector_count() == 5
    assert [p.name for p in segments.folders(tmp_path / "ix")] == [index.segment_stats()[0]["name"]]


def test_single_file_index_is_read_then_migrated_by_the_next_commit(tmp_path):
    """The fixture was written by the single-file code (one vectors-<generation>.faiss): 38 live
    articles of 4 chunks after a delete and a replacement."""
    folder = tmp_path / "old"
    shutil.copytree(DATA / "single-file-index", folder)
    old_file = folder / "vectors-3.faiss"
    want_ids, want_vecs = vectors.all_vectors(vectors.read(old_file))
    manifest = Index.read_manifest(folder)
    index = Index.open(folder, manifest)
    assert index.snapshot().legacy is not None and index.vector_count() == len(want_ids) == 152
    q = want_vecs[7]
    before = index.search_vids(q, 10)
    assert before[0][0] == want_ids[7]
    model = Model(6)
    commit(index, model, {"new": 4})  # the commit that migrates
    assert not old_file.exists() and index.snapshot().legacy is None
    assert sorted(s["vectors"] for s in index.segment_stats()) == [4, 152]
    reopened = Index.open(folder, manifest)
    assert reopened.search_vids(q, 10) == index.search_vids(q, 10)
    assert [v for v, _ in reopened.search_vids(q, 10)] == [v for v, _ in before][:10]  # the new 4 are random, far away
    assert np.array_equal(reopened.vectors_for(want_ids.tolist()), want_vecs)
    assert reopened.store.counts() == (39, 156)


def test_clean_up_spares_a_build_in_progress_and_removes_an_abandoned_one(tmp_path):
    """A merge's clean-up runs while a commit in another thread or process may be writing its
    segment: only `.tmp` folders whose builder is gone (its lock released) are removed."""
    root = tmp_path
    (root / segments.FOLDER).mkdir()
    segments._hold(root, "busy")  # what build() does before creating its folder
    (root / segments.FOLDER / ("busy" + segments.TMP)).mkdir()
    (root / segments.FOLDER / ("crashed" + segments.TMP)).mkdir()  # a builder killed: no lock held
    segments.remove_abandoned(root)
    left = sorted(p.name for p in segments.folders(root))
    assert left == ["busy" + segments.TMP]
    segments.discard(root, "busy")
    assert list(segments.folders(root)) == []
    assert list((root / segments.FOLDER / segments.BUILDING).iterdir()) == []


def test_clean_up_removes_a_build_folder_older_than_build_locks(tmp_path):
    """An index whose `.tmp` folder was left before builds took locks has no lock folder at all."""
    (tmp_path / segments.FOLDER / ("old" + segments.TMP)).mkdir(parents=True)
    segments.remove_abandoned(tmp_path)
    assert list(segments.folders(tmp_path)) == []


def test_a_build_lock_taken_while_a_clean_up_unlinks_it_is_taken_again(tmp_path):
    """A clean-up may lock and unlink a build's lock file between the builder's open and its lock;
    the builder then holds a file no path names, so it must lock the file at the path afresh."""
    import fcntl
    import threading

    locks = tmp_path / segments.FOLDER / segments.BUILDING
    locks.mkdir(parents=True)
    cleaner = open(locks / "busy", "a")  # the clean-up's open and lock come first
    fcntl.flock(cleaner, fcntl.LOCK_EX)
    builder = threading.Thread(target=segments._hold, args=(tmp_path, "busy"))
    builder.start()
    builder.join(timeout=0.5)
    assert builder.is_alive()  # waiting on the clean-up's lock, on the file it opened
    (locks / "busy").unlink()
    cleaner.close()
    builder.join(timeout=10)
    (tmp_path / segments.FOLDER / ("busy" + segments.TMP)).mkdir()
    segments.remove_abandoned(tmp_path)
    assert [p.name for p in segments.folders(tmp_path)] == ["busy" + segments.TMP]
    segments.discard(tmp_path, "busy")
