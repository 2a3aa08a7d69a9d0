"""Immutable vector segments: what one commit or one merge wrote, never changed afterwards.

A segment is a folder `segments/<name>/` holding `ids.npy` (its chunk ids, ascending), `vectors.npy`
(their full float32 vectors, memory-mapped: exact re-scoring, filters and reconstruction read only
the rows they need), `times.npy` (each vector's publication time, rag/storage/timerange.py) and, for
the trained structures, `index.faiss`. A flat segment's FAISS index is
built from `vectors.npy` when opened, so a commit writes each new vector once. Deleted chunks are
tombstones kept by the store and applied here through FAISS ID selectors at search time.

A date limit is met per segment by its span of times: a segment wholly outside the limit is
skipped, one wholly inside is searched unfiltered, and only one that straddles it is filtered, by
the share of it the limit admits (`View.search`): exactly over the admitted rows when few, through
the IVF cells with a FAISS ID selector (a range, else a bitmap) when a minority, and by an
over-fetched unfiltered search whose results are then filtered when most of it is admitted.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from . import vectors
from .locks import flock
from .timerange import NO_DATE, TIMES, Plan, Span, TimeIndex, TimeRange
from .vectors import EXACT_FILTER_MAX, IndexPolicy

FOLDER = "segments"
IDS, VECTORS, FAISS = "ids.npy", "vectors.npy", "index.faiss"
TMP = ".tmp"
# Rows copied or added to FAISS at a time while writing a segment: bounded memory for any size.
WRITE_ROWS = 200_000
# A straddling IVF segment of which the date limit admits at least this share is searched
# unfiltered with over-fetch (k / share, x POST_FILTER_MARGIN) and then filtered: the cells probed
# hold about as many admitted vectors as an unfiltered search sees, at an unfiltered search's cost.
# Below it, a selector search widens nprobe by 1 / share instead, which grows as the share falls.
POST_FILTER_SHARE = 0.5
POST_FILTER_MARGIN = 1.5


def new_name() -> str:
    return uuid.uuid4().hex[:16]


@dataclass(frozen=True)
class Written:
    """A segment folder in place on disk, not yet recorded by the store."""

    name: str
    structure: str
    vectors: int
    bytes: int


def build(root: Path, ids: np.ndarray, vecs: np.ndarray, policy: IndexPolicy,
          prebuilt: faiss.Index | None = None, times: np.ndarray | None = None) -> Written:
    """Write a segment of `ids` (ascending) and their vectors into `root/segments/<name>.tmp`,
    fsynced; `publish` renames it into place. `vecs` may be a memory map larger than memory.
    `prebuilt`: an already trained FAISS structure over exactly these vectors (an older
    single-file index being migrated). `times`: each vector's publication time (undated if None)."""
    name = new_name()
    folder = root / FOLDER
    folder.mkdir(exist_ok=True)
    tmp = folder / (name + TMP)
    _hold(root, name)
    try:
        tmp.mkdir()
        np.save(tmp / TIMES, np.full(len(ids), NO_DATE, np.int64) if times is None else np.asarray(times, np.int64))
        structure = _write_files(tmp, np.asarray(ids, dtype=np.int64), vecs, policy, prebuilt)
        _fsync_tree(tmp)
    except BaseException:  # e.g. a full disk: leave no half-written segment taking up room
        shutil.rmtree(tmp, ignore_errors=True)
        _release(root, name)
        raise
    size = sum(f.stat().st_size for f in tmp.iterdir())
    return Written(name, structure, len(ids), size)


def publish(root: Path, name: str) -> None:
    """Move a built segment into place (before the store records it; a crash between the two
    leaves a folder no generation names, which the next writer removes)."""
    folder = root / FOLDER
    os.replace(folder / (name + TMP), folder / name)
    _fsync_dir(folder)
    _release(root, name)


def discard(root: Path, name: str) -> None:
    shutil.rmtree(root / FOLDER / (name + TMP), ignore_errors=True)
    remove(root, name)
    _release(root, name)


# A segment being built is locked (flock on segments/.building/<name>) from before its folder
# exists until it is published or discarded, so that clean-up in another thread or process tells
# a build in progress from one a crash abandoned: the kernel drops a dead builder's lock.
BUILDING = ".building"
_held: dict[str, object] = {}
_held_lock = threading.Lock()


def _hold(root: Path, name: str) -> None:
    path = root / FOLDER / BUILDING / name
    path.parent.mkdir(exist_ok=True)
    while True:  # a clean-up may take and unlink the file between this open and this lock
        fh = open(path, "a")
        fcntl.flock(fh, fcntl.LOCK_EX)
        if path.exists() and path.stat().st_ino == os.fstat(fh.fileno()).st_ino:
            break
        fh.close()
    with _held_lock:
        _held[name] = fh


def _release(root: Path, name: str) -> None:
    with _held_lock:
        fh = _held.pop(name, None)
    if fh is not None:
        (root / FOLDER / BUILDING / name).unlink(missing_ok=True)
        fh.close()  # type: ignore[attr-defined]


def remove_abandoned(root: Path) -> None:
    """Remove `<name>.tmp` folders whose build is no longer running (a process killed mid-build),
    and the locks such builds left. One clean-up at a time (the caller holds the merge lock)."""
    locks = root / FOLDER / BUILDING
    tmps = {p.name[: -len(TMP)] for p in folders(root) if p.name.endswith(TMP)}
    if not tmps and not locks.exists():
        return
    locks.mkdir(exist_ok=True)  # a `.tmp` from before build locks has none: it is abandoned too
    for name in sorted(tmps | {p.name for p in locks.iterdir()}):
        try:
            with flock(locks / name, blocking=False) as free:
                if free:  # else being built right now
                    shutil.rmtree(root / FOLDER / (name + TMP), ignore_errors=True)
                    (locks / name).unlink(missing_ok=True)
        except OSError:  # its lock cannot be opened: left for the next clean-up
            continue


def _write_files(tmp: Path, ids: np.ndarray, vecs: np.ndarray, policy: IndexPolicy,
                 prebuilt: faiss.Index | None) -> str:
    if len(ids) > 1 and not np.all(ids[1:] > ids[:-1]):
        raise ValueError("segment ids must be unique and ascending")
    np.save(tmp / IDS, ids)
    out = np.lib.format.open_memmap(tmp / VECTORS, mode="w+", dtype=np.float32, shape=(len(ids), vecs.shape[1]))
    for i in range(0, len(ids), WRITE_ROWS):
        out[i : i + WRITE_ROWS] = vecs[i : i + WRITE_ROWS]
    out.flush()
    if prebuilt is not None and vectors.ivf_of(prebuilt) is not None:
        vectors.write(prebuilt, tmp / FAISS)
        return vectors.describe(prebuilt)["type"]
    structure, nlist = policy.structure_for(len(ids))
    if structure != "flat":
        index = vectors.train_ivf(out, structure, nlist, policy.nprobe)
        for i in range(0, len(ids), WRITE_ROWS):
            vectors.add(index, ids[i : i + WRITE_ROWS], out[i : i + WRITE_ROWS])
        vectors.write(index, tmp / FAISS)
    del out
    return structure


@dataclass
class Segment:
    """An opened segment: ids and full vectors memory-mapped, its FAISS structure in memory."""

    name: str
    structure: str
    ids: np.ndarray  # ascending chunk ids; a flat index's row i holds ids[i]
    vecs: np.ndarray
    index: faiss.Index  # IndexFlatIP over rows, or an IndexIVF whose ids are chunk ids
    rescore: int = 1
    # A flat segment's vectors as FAISS holds them in memory (a view, no copy): filtered search and
    # lookups read these rather than the mapped file.
    memory: np.ndarray | None = None
    times: np.ndarray | None = None  # each row's publication time (timerange.NO_DATE: undated)
    when: TimeIndex = field(init=False)  # the times with their zone map

    def __post_init__(self) -> None:
        if self.structure == "flat" and self.memory is None and self.index.ntotal:
            n, d = int(self.index.ntotal), self.index.d
            self.memory = faiss.rev_swig_ptr(self.index.get_xb(), n * d).reshape(n, d)
        if self.times is None:
            self.times = np.full(len(self.ids), NO_DATE, np.int64)
        self.when = TimeIndex(self.times)

    @property
    def span(self) -> Span:
        return self.when.span

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def memory_bytes(self) -> int:
        """What its FAISS structure holds in memory (codes, ids, centroids); mapped files aside."""
        ivf = vectors.ivf_of(self.index)
        if ivf is None:
            return int(self.index.ntotal) * self.index.d * 4
        lists = ivf.invlists
        entries = sum(lists.list_size(c) for c in range(ivf.nlist))
        return entries * (lists.code_size + 8) + ivf.nlist * ivf.d * 4

    def rows_of(self, vids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the vids this segment holds, their rows), for ascending or unordered vids."""
        vids = np.asarray(vids, dtype=np.int64)
        if not len(vids) or not len(self.ids):
            return vids[:0], vids[:0]
        rows = np.searchsorted(self.ids, vids)
        rows[rows >= len(self.ids)] = 0
        held = self.ids[rows] == vids
        return vids[held], rows[held]

    def vectors_of(self, rows: np.ndarray) -> np.ndarray:
        """Full vectors of these rows, read in row order from the mapped file."""
        if self.memory is not None:
            return self.memory[rows]
        order = np.argsort(rows, kind="stable")
        out = np.empty((len(rows), self.vecs.shape[1]), np.float32)
        out[order] = self.vecs[rows[order]]
        return out


def open_segment(root: Path, name: str, structure: str, policy: IndexPolicy,
                 times_of: Callable[[np.ndarray], np.ndarray] | None = None) -> Segment:
    """Open a recorded segment; OSError when its folder is gone (a merge removed it meanwhile).
    A segment written before segments kept their times gets them from `times_of(ids)`."""
    folder = root / FOLDER / name
    try:
        ids = np.load(folder / IDS, mmap_mode="r")
        if (folder / TIMES).exists():
            times = np.load(folder / TIMES, mmap_mode="r")  # mapped: a limit reads the zones it cuts only
        else:
            times = times_of(np.asarray(ids)) if times_of is not None else None
        vecs = np.load(folder / VECTORS, mmap_mode="r")
        _random_access(vecs)
        if structure == "flat":
            index = faiss.IndexFlatIP(vecs.shape[1])
            for i in range(0, len(ids), WRITE_ROWS):
                index.add(np.ascontiguousarray(vecs[i : i + WRITE_ROWS]))
        else:
            index = vectors.read(folder / FAISS)
            vectors.set_nprobe(index, policy.nprobe)
    except (RuntimeError, ValueError) as exc:  # FAISS and numpy on a damaged file
        raise OSError(f"segment {name} is damaged: {exc}") from exc
    return Segment(name, structure, ids, vecs, index, policy.rescore if structure == "ivfpq" else 1, times=times)


def _random_access(mapped: np.ndarray) -> None:
    """Re-scoring reads scattered rows: without this hint each page fault reads ahead ~128 KiB
    around a 1.5 KiB row, filling memory (and the disk queue) with rows nobody asked for."""
    raw = getattr(mapped, "_mmap", None)
    if raw is not None and hasattr(mmap, "MADV_RANDOM"):
        raw.madvise(mmap.MADV_RANDOM)


def in_memory(ids: np.ndarray, vecs: np.ndarray, index: faiss.Index, policy: IndexPolicy,
              times_of: Callable[[np.ndarray], np.ndarray] | None = None) -> Segment:
    """A segment that lives only in memory: an older single-file index, until a commit migrates it."""
    order = np.argsort(ids, kind="stable")
    ids, vecs = ids[order], np.ascontiguousarray(vecs[order])
    times = times_of(ids) if times_of is not None else None
    if vectors.ivf_of(index) is None:
        index = faiss.IndexFlatIP(vecs.shape[1])
        index.add(vecs)
        return Segment("(single file)", "flat", ids, vecs, index, times=times)
    vectors.set_nprobe(index, policy.nprobe)
    return Segment("(single file)", "ivf", ids, vecs, index, times=times)


@dataclass
class View:
    """A segment as one snapshot sees it: with the tombstones that fall in it, applied through a
    FAISS selector made once per snapshot, and its times as of that snapshot (a redated article's
    chunks carry their new time)."""

    segment: Segment
    dead: np.ndarray  # tombstoned vids this segment holds, ascending
    times: np.ndarray | None = None  # None: the segment's own (nothing in it redated)
    when: TimeIndex = field(init=False)
    _params: faiss.SearchParameters | None = field(default=None, repr=False)
    _keep: list = field(default_factory=list, repr=False)  # objects FAISS's selectors point into
    _alive: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        seg = self.segment
        if self.times is None:
            self.times, self.when = seg.times, seg.when
        else:
            self.when = TimeIndex(self.times)
        if not len(self.dead):
            return
        if seg.structure == "flat":
            bits = np.packbits(self.alive, bitorder="little")
            sel = faiss.IDSelectorBitmap(len(seg), faiss.swig_ptr(bits))
            self._keep = [bits, sel]
            self._params = faiss.SearchParameters(sel=sel)
        else:
            batch = faiss.IDSelectorBatch(self.dead)
            sel = faiss.IDSelectorNot(batch)
            self._keep = [batch, sel]
            self._params = faiss.SearchParametersIVF(sel=sel, nprobe=vectors.ivf_of(seg.index).nprobe)

    @property
    def live(self) -> int:
        return len(self.segment) - len(self.dead)

    @property
    def span(self) -> Span:
        return self.when.span

    @property
    def alive(self) -> np.ndarray:
        """A bool per row: not tombstoned."""
        if self._alive is None:
            alive = np.ones(len(self.segment), bool)
            if len(self.dead):
                alive[self.segment.rows_of(self.dead)[1]] = False
            self._alive = alive
        return self._alive

    def search(
        self, q: np.ndarray, k: int, allowed: np.ndarray | None = None, within: TimeRange | None = None,
        plan: Plan | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(vids, scores) of this segment's best k live vectors, optionally among `allowed` ids
        only and within a date limit; `plan` is told which strategy the limit led to."""
        seg = self.segment
        if self.live <= 0 or k <= 0:
            return _none()
        cover = "all" if within is None else within.covers(self.span)
        if cover == "none":
            return _noted(plan, "skip", _none())
        if allowed is not None:
            vids, rows = seg.rows_of(allowed)
            if cover == "some":
                keep = within.admits(self.times[rows])  # type: ignore[union-attr, index]
                vids, rows = vids[keep], rows[keep]
            return _noted(plan, "listed", self._filtered(q, k, vids, rows))
        if cover == "all":
            return _noted(plan, "all" if within is not None else None, self._unfiltered(q, k))
        return self._straddling(q, k, within, plan)  # type: ignore[arg-type]

    def _probe(self, q: np.ndarray, n: int, params: faiss.SearchParameters | None) -> tuple[np.ndarray, np.ndarray]:
        """The FAISS structure's best n (vids, approximate scores)."""
        seg = self.segment
        scores, found = seg.index.search(q.reshape(1, -1), n, params=params)
        found, scores = found[0], scores[0]
        keep = found >= 0
        found, scores = found[keep], scores[keep]
        if seg.structure == "flat":
            found = seg.ids[found]
        return found.astype(np.int64), scores

    def _unfiltered(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        seg = self.segment
        found, scores = self._probe(q, min(k * seg.rescore, len(seg)), self._params)
        if seg.rescore > 1:
            return self._exact(q, found, seg.rows_of(found)[1], k)
        return found[:k], scores[:k]

    def _straddling(self, q: np.ndarray, k: int, within: TimeRange, plan: Plan | None) -> tuple[np.ndarray, np.ndarray]:
        """A segment the date limit admits in part, searched by the share of it admitted."""
        seg = self.segment
        admitted = self.when.count(within)  # tombstones included: a share to plan by
        if not admitted:
            return _noted(plan, "skip", _none())
        if seg.structure == "flat" or admitted <= EXACT_FILTER_MAX:
            rows = self._live_rows(self.when.rows(within))
            if seg.memory is not None and len(rows) > len(seg) // 8:  # scoring all in memory beats gathering
                scores = (seg.memory @ q)[rows]
                top = np.argsort(-scores, kind="stable")[:k]
                return _noted(plan, "exact", (seg.ids[rows[top]].astype(np.int64), scores[top]))
            return _noted(plan, "exact", self._exact(q, seg.ids[rows], rows, k))
        share = admitted / len(seg)
        if share >= POST_FILTER_SHARE:
            found = self._post_filtered(q, k, within, share)
            if found is not None:
                return _noted(plan, "post", found)
        rows = self._live_rows(self.when.rows(within))
        if not len(rows):
            return _noted(plan, "skip", _none())
        return _noted(plan, "pre", self._pre_filtered(q, k, rows, len(rows) / max(self.live, 1)))

    def _live_rows(self, rows: np.ndarray) -> np.ndarray:
        return rows[self.alive[rows]] if len(self.dead) else rows

    def _post_filtered(self, q: np.ndarray, k: int, within: TimeRange, share: float) -> tuple[np.ndarray, np.ndarray] | None:
        """Unfiltered with over-fetch, then filtered by the candidates' own times; None when
        fewer than k survive."""
        seg = self.segment
        want = k * seg.rescore
        found, scores = self._probe(q, min(len(seg), int(np.ceil(want / share * POST_FILTER_MARGIN))), self._params)
        rows = seg.rows_of(found)[1]
        keep = within.admits(self.times[rows])  # type: ignore[index]
        if np.count_nonzero(keep) < k:
            return None
        found, scores, rows = found[keep][:want], scores[keep][:want], rows[keep][:want]
        if seg.rescore > 1:
            return self._exact(q, found, rows, k)
        return found[:k], scores[:k]

    def _pre_filtered(self, q: np.ndarray, k: int, rows: np.ndarray, share: float) -> tuple[np.ndarray, np.ndarray]:
        """Through the IVF cells with an ID selector of the admitted rows: a range of ids when
        they are contiguous (a segment in time order), else a bitmap over ids; nprobe widened by
        1 / share so about as many admitted vectors are seen as an unfiltered search sees."""
        seg = self.segment
        vids = seg.ids[rows]
        if rows[-1] - rows[0] + 1 == len(rows):
            sel = faiss.IDSelectorRange(int(vids[0]), int(vids[-1]) + 1)
            keep: list = [sel]  # FAISS points into these until the search returns
        else:
            members = np.zeros(int(vids[-1]) + 1, bool)
            members[vids] = True
            bits = np.packbits(members, bitorder="little")
            sel = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))  # its size is in bytes
            keep = [bits, sel]
        ivf = vectors.ivf_of(seg.index)
        params = faiss.SearchParametersIVF(sel=sel, nprobe=min(ivf.nlist, int(np.ceil(ivf.nprobe / share))))
        found, scores = self._probe(q, min(k * seg.rescore, len(rows)), params)
        if seg.rescore > 1:
            return self._exact(q, found, seg.rows_of(found)[1], k)
        return found[:k], scores[:k]

    def _filtered(self, q: np.ndarray, k: int, vids: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Among listed vids (with their rows) only."""
        seg = self.segment
        if len(self.dead):
            live = ~np.isin(vids, self.dead, assume_unique=True)
            vids, rows = vids[live], rows[live]
        if not len(vids):
            return _none()
        if seg.memory is not None and len(rows) > len(seg) // 8:  # scoring all in memory beats gathering
            scores = (seg.memory @ q)[rows]
            top = np.argsort(-scores, kind="stable")[:k]
            return vids[top], scores[top]
        if seg.structure == "flat" or len(vids) <= EXACT_FILTER_MAX:
            return self._exact(q, vids, rows, k)
        ivf = vectors.ivf_of(seg.index)
        batch = faiss.IDSelectorBatch(vids)  # referenced until the search below returns
        # probe more cells as the filter narrows, so about as many allowed vectors are seen
        widen = max(1.0, len(seg) / len(vids))
        params = faiss.SearchParametersIVF(sel=batch, nprobe=min(ivf.nlist, int(np.ceil(ivf.nprobe * widen))))
        found, scores = self._probe(q, min(k * seg.rescore, len(vids)), params)
        if seg.rescore > 1:
            return self._exact(q, found, seg.rows_of(found)[1], k)
        return found[:k], scores[:k]

    def _exact(self, q: np.ndarray, vids: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact cosines of these rows from the full vectors, best k."""
        if not len(rows):
            return _none()
        scores = self.segment.vectors_of(rows) @ q
        top = np.argsort(-scores, kind="stable")[:k]
        return np.asarray(vids, dtype=np.int64)[top], scores[top]


def _noted(plan: Plan | None, how: str | None, found: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    if plan is not None and how is not None:
        plan.vector[how] += 1
    return found


def _none() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(0, np.int64), np.zeros(0, np.float32)


def merged_parts(views: list[View]) -> tuple[np.ndarray, "_Gather", np.ndarray]:
    """The live vectors of several segments in ascending id order, without loading them all:
    (ids, a lazily gathered array of their vectors, their times) to hand to `build`."""
    parts = [(v.segment, np.flatnonzero(v.alive)) for v in views]
    times = np.concatenate([np.asarray(v.times)[r] for v, (_, r) in zip(views, parts)]) if parts else np.zeros(0, np.int64)
    ids = np.concatenate([s.ids[r] for s, r in parts]) if parts else np.zeros(0, np.int64)
    source = np.concatenate([np.full(len(r), i, np.int32) for i, (_, r) in enumerate(parts)]) if parts else np.zeros(0, np.int32)
    rows = np.concatenate([r for _, r in parts]) if parts else np.zeros(0, np.int64)
    order = np.argsort(ids, kind="stable")
    return ids[order], _Gather([s for s, _ in parts], source[order], rows[order]), times[order]


@dataclass
class _Gather:
    """Rows of several segments' mapped vectors, read slice by slice (what `write` asks for)."""

    segments: list[Segment]
    source: np.ndarray
    rows: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), self.segments[0].vecs.shape[1]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, sl: slice) -> np.ndarray:
        src, rows = self.source[sl], self.rows[sl]
        out = np.empty((len(rows), self.shape[1]), np.float32)
        for i, seg in enumerate(self.segments):
            pick = np.flatnonzero(src == i)
            if len(pick):
                out[pick] = seg.vectors_of(rows[pick])
        return out


def folders(root: Path) -> Iterator[Path]:
    """Segment folders, published or `.tmp` (not the `.building` locks)."""
    folder = root / FOLDER
    if not folder.exists():
        return iter(())
    return (p for p in folder.iterdir() if not p.name.startswith(".") and p.is_dir())


def remove(root: Path, name: str) -> None:
    # Readers map the old files; on POSIX a removed mapped file stays readable to them.
    shutil.rmtree(root / FOLDER / name, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    for f in folder.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
