"""SIGKILL at the dangerous moments of the segmented index, in a real subprocess: between writing a
segment and committing it, while a merge builds its segment, inside a merge's commit, and at a
random moment of a long merge. After each, the index opens as the last committed generation, its
vectors agree with its rows, and the next writer and merge tidy up and go on."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rag.storage import segments, vectors
from segment_helpers import Model, commit, make_index

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import os, signal, sys
import numpy as np
from pathlib import Path
from rag.storage import segments
from rag.storage.store import Store
from segment_helpers import Model, commit, make_index

folder, mode = Path(sys.argv[1]), sys.argv[2]
index = make_index(folder)
die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
if mode == "commit-after-publish":
    real = segments.publish
    segments.publish = lambda *a: (real(*a), die())
    commit(index, Model(99), {"late": 7}, deletes=["d0"])
elif mode == "merge-build":
    real_write = segments._write_files
    segments._write_files = lambda tmp, *a: (real_write(tmp, *a), die())
    index.maintain()
elif mode == "merge-commit":
    Store.drop_tombstones = staticmethod(die)  # inside the merge's transaction, before COMMIT
    index.maintain()
elif mode == "merge-any":
    print("merging", flush=True)
    index.maintain()
print("finished", flush=True)
"""


def populated(folder: Path, commits: int = 16, per: int = 40) -> tuple[int, int]:
    index, model = make_index(folder), Model(0)
    for i in range(commits):  # two articles a commit, one of them deleted later: no segment dies whole
        commit(index, model, {f"d{i}": per, f"e{i}": per}, deletes=[f"d{i - 3}"] if i >= 3 and i % 3 == 0 else [])
    gen, segs = index.store.generation(), len(index.segment_stats())
    index.close()
    return gen, segs


def run_child(folder: Path, mode: str, kill_after: float | None = None) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=f"{ROOT}:{Path(__file__).parent}")
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(folder), mode], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if kill_after is not None:
        assert proc.stdout.readline().strip() == b"merging"
        time.sleep(kill_after)
        proc.kill()
    proc.wait(timeout=120)
    return proc


def assert_whole(folder: Path) -> None:
    """Rows and vectors agree, and search equals a flat index rebuilt from the stored vectors."""
    index = make_index(folder)
    conn = index.store.connect()
    live = [r[0] for r in conn.execute("SELECT vid FROM chunks ORDER BY vid")]
    assert index.vector_count() == len(live)
    vecs = index.vectors_for(live)
    flat = vectors.new_index(vecs.shape[1])
    vectors.add(flat, np.array(live), vecs)
    for q in Model(7).vectors(10):
        assert [v for v, _ in index.search_vids(q, 10)] == [v for v, _ in vectors.search(flat, q, 10)]
    index.close()


@pytest.mark.parametrize("mode", ["commit-after-publish", "merge-build", "merge-commit"])
def test_kill_at_each_step_leaves_the_last_generation(tmp_path, mode):
    folder = tmp_path / "ix"
    gen, segs = populated(folder)
    proc = run_child(folder, mode)
    assert proc.returncode == -signal.SIGKILL, proc.stdout.read().decode()[-2000:]
    index = make_index(folder)
    assert index.store.generation() == gen and len(index.segment_stats()) == segs
    assert index.store.document("late") is None
    index.close()
    assert_whole(folder)
    # the next writer removes the unrecorded folder, the next merge its leftovers, and both go on
    index, model = make_index(folder), Model(5)
    commit(index, model, {"after": 3})
    steps = index.maintain()
    assert steps and index.store.generation() > gen + 1
    recorded = {s["name"] for s in index.segment_stats()}
    assert {p.name for p in segments.folders(folder)} == recorded
    index.close()
    assert_whole(folder)


def merge_under_way(folder: Path) -> bool:
    """Did a kill leave a segment build behind (its `.tmp` folder or its build lock)?"""
    root = folder / segments.FOLDER
    locks = root / segments.BUILDING
    return any(p.name.endswith(segments.TMP) for p in segments.folders(folder)) or (locks.exists() and any(locks.iterdir()))


def merge_seconds(pristine: Path, folder: Path) -> float:
    """Seconds from "merging" to the end of an unkilled child's maintain(), on a copy."""
    shutil.copytree(pristine, folder)
    env = dict(os.environ, PYTHONPATH=f"{ROOT}:{Path(__file__).parent}")
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(folder), "merge-any"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout.readline().strip() == b"merging"
    started = time.monotonic()
    assert proc.stdout.readline().strip() == b"finished"
    took = time.monotonic() - started
    assert proc.wait(timeout=120) == 0
    return took


# Kills are tried until one lands inside a merge's build, and at least this many are made; at
# most MAX_KILLS, each on a fresh copy of the same index (a finished merge leaves nothing to kill).
MIN_KILLS, MAX_KILLS = 4, 16


def test_kill_at_random_moments_of_merges(tmp_path):
    pristine = tmp_path / "pristine"
    populated(pristine, commits=40, per=300)  # merges that train IVF segments: long enough to hit
    took = merge_seconds(pristine, tmp_path / "timed")  # how long maintain() runs here: where a kill can land
    rng = np.random.default_rng(0)
    kills = mid_merge = 0
    while kills < MIN_KILLS or (mid_merge == 0 and kills < MAX_KILLS):
        folder = tmp_path / f"kill{kills}"
        shutil.copytree(pristine, folder)
        proc = run_child(folder, "merge-any", kill_after=float(rng.uniform(0.0, 0.9 * took)))
        kills += 1
        mid_merge += proc.returncode == -signal.SIGKILL and merge_under_way(folder)
        assert_whole(folder)
        index = make_index(folder)
        index.maintain()
        assert {p.name for p in segments.folders(folder)} == {s["name"] for s in index.segment_stats()}
        index.close()
        assert_whole(folder)
    print(f"{kills} kills, {mid_merge} inside a merge's build; an unkilled maintain() took {took:.2f} s")
    assert mid_merge >= 1, f"none of {kills} kills landed inside a merge's build (maintain took {took:.2f} s)"
