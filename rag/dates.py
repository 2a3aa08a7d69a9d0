"""Publication dates as newsrooms and feeds write them, read into one normalised form.

Accepted: ISO dates and datetimes (`2022-09-06`, `2022-09-06T14:30:00+02:00`, `...Z`), `2022/09/06`,
RFC 822 / RFC 2822 as feeds write them (`Tue, 06 Sep 2022 14:30:00 GMT`), and `Sep 6, 2022`,
`Sept. 6, 2022`, `September 6, 2022`, `6 September 2022`. The normalised form is UTC: `YYYY-MM-DD`
for a date, `YYYY-MM-DDTHH:MM:SSZ` when a time is given (a time without an offset is read as UTC).

As-of rule (the one rule every date limit follows; docs/design.md "Dates"): a date-only article
counts as published at the start of its day (00:00 UTC); an as-of date covers its whole day, an
as-of datetime ends at that instant. A question is always asked as of a time (now by default):
articles published later are left out, and undated articles are kept or left out by
`include_undated` alone, whatever else the archive holds. `published_after`/`published_before`
are whole UTC days, inclusive. Searches compare whole seconds since the epoch (`seconds`).
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from email.utils import parsedate_to_datetime
from functools import lru_cache

UTC = timezone.utc
FORMATS = "YYYY-MM-DD, an ISO datetime, YYYY/MM/DD, an RFC 822 date or 'Sep 6, 2022'"

_MONTHS = {
    name: i
    for i, names in enumerate(
        [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",), ("jun", "june"),
         ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"), ("oct", "october"),
         ("nov", "november"), ("dec", "december")],
        start=1,
    )
    for name in names
}
_MONTH = r"(?P<month>[A-Za-z]{3,9})\.?"
_WEEKDAY = r"(?:[A-Za-z]{3,9},\s*)?"  # "Tuesday, " before either form
_SLASHED = re.compile(r"(?P<y>\d{4})/(?P<m>\d{1,2})/(?P<d>\d{1,2})")
_MONTH_FIRST = re.compile(rf"{_WEEKDAY}{_MONTH}\s+(?P<d>\d{{1,2}}),?\s+(?P<y>\d{{4}})")  # Sep 6, 2022
_DAY_FIRST = re.compile(rf"{_WEEKDAY}(?P<d>\d{{1,2}})\s+{_MONTH},?\s+(?P<y>\d{{4}})")  # 6 September 2022
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
_ANY_DAY = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")
_RFC822 = re.compile(r"(?:[A-Za-z]{3},\s*)?\d{1,2}\s+[A-Za-z]{3}\s+\d{2,4}\s+\d{1,2}:\d{2}")


class DateError(ValueError):
    """A date that none of the accepted forms reads; the message quotes it and lists the forms."""


def normalise(value: str) -> str:
    """`value` in the normalised form (module docstring); DateError when it cannot be read."""
    text = " ".join(str(value).split())
    parsed = _parse(text)
    shown = text if len(text) <= 60 else text[:57] + "..."
    if parsed is None:
        raise DateError(f"unreadable date {shown!r} (use {FORMATS})")
    try:
        return _format(parsed)
    except OverflowError:  # e.g. 0001-01-01T00:00+05:00: its UTC instant falls before year 1
        raise DateError(f"out-of-range date {shown!r}: in UTC it falls outside the years 1 to 9999") from None


@lru_cache(maxsize=65536)  # a search reads the same stored dates query after query
def read(value: str | None) -> str | None:
    """Tolerant `normalise`, for values already stored (older indexes keep dates as their sources
    wrote them): else the first year-month-day written anywhere in it, else None."""
    if not value:
        return None
    try:
        return normalise(value)
    except DateError:
        pass
    m = _ANY_DAY.search(value)
    try:
        return date(int(m[1]), int(m[2]), int(m[3])).isoformat() if m else None
    except ValueError:
        return None


def day(value: str | None) -> str | None:
    """The UTC day (`YYYY-MM-DD`) of a stored date, None when there is none to read."""
    found = read(value)
    return found[:10] if found else None


@lru_cache(maxsize=65536)
def instant(value: str | None) -> datetime | None:
    """A stored date as an aware UTC datetime (a date-only value: 00:00 of its day)."""
    found = read(value)
    if found is None:
        return None
    if len(found) == 10:
        return datetime.combine(date.fromisoformat(found), time(), UTC)
    return datetime.strptime(found, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def cutoff(as_of: date | datetime) -> str:
    """An as-of value in the normalised form: a date stays a date (its whole day counts)."""
    if isinstance(as_of, datetime):
        return _format(as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC))
    return as_of.isoformat()


def cutoff_instant(cut: str) -> datetime:
    """The last instant a cutoff admits: the end of a date's day, or the datetime itself."""
    found = instant(cut)
    assert found is not None, cut
    if len(cut) != 10:
        return found
    if found.date() == date.max:  # 9999-12-31: its day ends where the calendar does
        return datetime.max.replace(tzinfo=UTC)
    return found + timedelta(days=1)


def seconds(value: str | None) -> int | None:
    """A stored date as whole seconds since 1970-01-01 UTC (what the index's time arrays hold)."""
    found = instant(value)
    return None if found is None else int(found.timestamp())


def last_second(cut: str) -> int:
    """The last whole second a cutoff admits (a date: 23:59:59 of its day)."""
    found = instant(cut)
    assert found is not None, cut
    return int(found.timestamp()) + (86_399 if len(cut) == 10 else 0)


def day_start(day: date) -> int:
    """00:00:00 UTC of a day, in seconds (a `published_after` day is admitted whole)."""
    return int(datetime.combine(day, time(), UTC).timestamp())


def day_end(day: date) -> int:
    """23:59:59 UTC of a day, in seconds (a `published_before` day is admitted whole)."""
    return day_start(day) + 86_399


def later_than(published: str | None, cut: str) -> bool:
    """Was a stored date published after the cutoff? (An undated article never is.)"""
    found = read(published)
    if found is None:
        return False
    if len(cut) == 10:
        return found[:10] > cut
    return instant(found) > instant(cut)  # type: ignore[operator]


def _parse(text: str) -> date | datetime | None:
    try:
        if _ISO_TIME.match(text):
            return datetime.fromisoformat(text)
        if _ISO_DATE.fullmatch(text):
            return date.fromisoformat(text)
        if m := _SLASHED.fullmatch(text):
            return date(int(m["y"]), int(m["m"]), int(m["d"]))
        if m := (_MONTH_FIRST.fullmatch(text) or _DAY_FIRST.fullmatch(text)):
            month = _MONTHS.get(m["month"].lower())
            return date(int(m["y"]), month, int(m["d"])) if month else None
        if _RFC822.match(text):
            return parsedate_to_datetime(text)
    except (ValueError, TypeError, OverflowError):
        return None
    return None


def _format(value: date | datetime) -> str:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        t = aware.astimezone(UTC)
        return f"{t.date().isoformat()}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}Z"
    return value.isoformat()
