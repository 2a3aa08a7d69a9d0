"""Publication times as the index searches them: one int64 per vector, a time range per query.

Every vector carries its article's `published` instant in whole seconds since the epoch
(`rag.dates.seconds`), NO_DATE when the article is undated. A segment keeps these next to its ids
and summarises them as a `Span`; a query's date limit is a `TimeRange`, which says of a span
whether it admits none, all or some of it. Only spans it admits in part need a per-vector filter.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .. import dates

NO_DATE = np.iinfo(np.int64).min  # an undated article: never inside a range, kept by `undated`
TIMES = "times.npy"


def times_of(published: list[str | None]) -> np.ndarray:
    """Stored `published` values as the int64 seconds a time array holds."""
    out = np.empty(len(published), np.int64)
    for i, p in enumerate(published):
        t = dates.seconds(p)
        out[i] = NO_DATE if t is None else t
    return out


@dataclass(frozen=True)
class Span:
    """The times a set of vectors covers: earliest and latest dated (None when none is dated),
    and how many are undated."""

    start: int | None
    end: int | None
    undated: int

    @classmethod
    def of(cls, times: np.ndarray) -> "Span":
        undated = int(np.count_nonzero(times == NO_DATE))
        if undated == len(times):
            return cls(None, None, undated)
        dated = times[times != NO_DATE] if undated else times
        return cls(int(dated.min()), int(dated.max()), undated)


# Rows a zone of a time array summarises (its earliest and latest time, its undated count): a date
# limit reads the times of only the zones it cuts through, so a segment in time order costs a few
# zones, not a pass over all its rows (zone maps, as Parquet's row-group statistics).
ZONE = 4096
_LATEST = np.iinfo(np.int64).max


class TimeIndex:
    """A time array (one int64 per row) with its zone map: what a date limit admits, counted or
    listed without reading rows outside the zones it cuts through."""

    def __init__(self, times: np.ndarray) -> None:
        self.times = times
        t = np.asarray(times)
        n = len(t)
        self._starts = np.arange(0, n, ZONE)
        self._sizes = np.diff(np.append(self._starts, n))
        if n:
            undated = t == NO_DATE
            self._min = np.minimum.reduceat(np.where(undated, _LATEST, t), self._starts)
            self._max = np.maximum.reduceat(t, self._starts)  # NO_DATE is the least: ignored unless alone
            self._undated = np.add.reduceat(undated.astype(np.int64), self._starts)
        else:
            self._min = self._max = self._undated = np.zeros(0, np.int64)
        dated = self._max != NO_DATE
        self.span = Span(int(self._min[dated].min()) if dated.any() else None,
                         int(self._max[dated].max()) if dated.any() else None, int(self._undated.sum()))

    def _zones(self, within: "TimeRange") -> tuple[np.ndarray, np.ndarray]:
        """(zones wholly admitted, zones admitted in part), as bool arrays."""
        lo = NO_DATE + 1 if within.start is None else within.start
        hi = _LATEST if within.end is None else within.end
        dated = self._max != NO_DATE
        any_dated = dated & (self._min <= hi) & (self._max >= lo)
        all_dated = ~dated | ((self._min >= lo) & (self._max <= hi))
        any_undated = (self._undated > 0) & within.undated
        all_undated = (self._undated == 0) | within.undated
        whole = all_dated & all_undated
        return whole, (any_dated | any_undated) & ~whole

    def _partial(self, part: np.ndarray) -> np.ndarray:
        """The rows of the zones admitted in part."""
        if not part.any():
            return np.zeros(0, np.int64)
        return np.concatenate([np.arange(s, s + n) for s, n in zip(self._starts[part], self._sizes[part])])

    def count(self, within: "TimeRange") -> int:
        """How many rows the limit admits."""
        whole, part = self._zones(within)
        rows = self._partial(part)
        return int(self._sizes[whole].sum()) + int(np.count_nonzero(within.admits(self.times[rows])))

    def rows(self, within: "TimeRange") -> np.ndarray:
        """The rows the limit admits, ascending."""
        whole, part = self._zones(within)
        pieces = []
        for z in np.flatnonzero(whole | part):
            rows = np.arange(self._starts[z], self._starts[z] + self._sizes[z])
            pieces.append(rows[within.admits(self.times[rows])] if part[z] else rows)
        return np.concatenate(pieces) if pieces else np.zeros(0, np.int64)


@dataclass(frozen=True)
class TimeRange:
    """What a query admits: dated articles with start <= published <= end (seconds, inclusive;
    None is unbounded) and undated articles iff `undated`. The same rule for every limit."""

    start: int | None = None
    end: int | None = None
    undated: bool = True

    def admits(self, times: np.ndarray) -> np.ndarray:
        """A bool per time."""
        times = np.asarray(times, dtype=np.int64)
        undated = times == NO_DATE
        ok = ~undated
        if self.start is not None:
            ok &= times >= self.start
        if self.end is not None:
            ok &= times <= self.end
        return ok | undated if self.undated else ok

    def covers(self, span: Span) -> str:
        """'none', 'all' or 'some' of a span's vectors admitted."""
        lo = -np.inf if self.start is None else self.start
        hi = np.inf if self.end is None else self.end
        dated = span.start is not None
        any_dated = dated and span.end >= lo and span.start <= hi  # type: ignore[operator]
        all_dated = not dated or (span.start >= lo and span.end <= hi)  # type: ignore[operator]
        any_undated = span.undated > 0 and self.undated
        all_undated = span.undated == 0 or self.undated
        if not any_dated and not any_undated:
            return "none"
        return "all" if all_dated and all_undated else "some"


@dataclass
class Plan:
    """How one search met its date limit, for a debug field and the log: per segment the
    strategy taken ('skip', 'all', 'exact', 'pre', 'post', 'listed'), and the word index's."""

    vector: Counter = field(default_factory=Counter)
    lexical: str | None = None

    def as_dict(self) -> dict:
        return {"segments": dict(sorted(self.vector.items())), "lexical": self.lexical}
