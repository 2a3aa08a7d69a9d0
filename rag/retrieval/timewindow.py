"""The time a question names ("this week", "in March", "two weeks ago"), resolved against its as-of
time into a window of whole UTC days, for ranking to prefer softly.

A small grammar rather than a date-parsing library: the phrases are few and fixed, must never fire
on words that only look like times ("March of Dimes", Theresa "May", "Fashion Week", "the 2021
law"), and cost microseconds (eval/bench_timewindow.py measures dateparser, ctparse and
timefhuman on the same table). Windows:
- today, tonight, this morning: the as-of day; yesterday, last night: the day before (last
  night: and the as-of day);
- this week, this past week, the past week, earlier this week: the seven days up to as of; last
  week: the calendar week (Monday to Sunday) before the as-of one; this/last weekend: the
  latest Saturday and Sunday;
- this month / this year: from its first day; last month / last year: the calendar one before;
- in/during/since/until/by/early/late March [2022] (a month without a year: its latest
  occurrence up to as of, none in a question about what will happen), in/during 2021, since 2021,
  since/on/last Monday (the latest such day);
- over the past/last N hours/days/weeks/months/years (N a number, a word up to twelve, "a",
  "few", "couple of"); N days/weeks/months/years ago: that day, calendar week, month or year.
The first phrase in the question wins; none, None.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

UTC = timezone.utc

_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "few": 3, "couple of": 2, "a couple of": 2,
    "a few": 3,
}
_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m} | {
    m.lower(): i for i, m in enumerate(calendar.month_abbr) if m and m.lower() != "may"} | {"sept": 9}
_WEEKDAYS = {d.lower(): i for i, d in enumerate(calendar.day_name)}
_NAMED = set(_MONTHS) | set(_WEEKDAYS)

_NUM = r"(?P<n>\d{1,3}|a couple of|couple of|a few|few|an|a|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
_UNIT = r"(?P<unit>hour|day|week|month|year)s?"
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\b\.?"
_WEEKDAY = r"(?P<weekday>" + "|".join(_WEEKDAYS) + r")"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
# A question about what is to come: a month or weekday without a year then names no past time.
_FUTURE = re.compile(r"\b(?:will|going to|upcoming|scheduled|plans? to|expected to|next)\b", re.IGNORECASE)

# Each pattern with the name of the rule that turns its match into a window; tried all, the earliest wins.
_RULES: list[tuple[str, re.Pattern[str]]] = [
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in [
        ("span", rf"\b(?:over|in|during|within|for)?\s*(?:the\s+)?(?:past|last|previous)\s+{_NUM}\s+{_UNIT}\b"),
        ("ago", rf"\b{_NUM}\s+{_UNIT}\s+ago\b"),
        ("today", r"\b(?:today|tonight|this (?:morning|afternoon|evening))\b"),
        ("last_night", r"\blast night\b"),
        ("yesterday", r"\byesterday\b"),
        ("past_unit", r"\b(?:this past|the past|the last|over the past|in the past|in the last)\s+(?P<unit>week|month|year)\b"),
        ("this", r"\b(?:earlier |so far |later )?this\s+(?P<unit>week|month|year)\b"),
        ("last", r"\b(?:last|previous)\s+(?P<unit>week|month|year)\b"),
        ("weekend", r"\b(?:this|last|over the|the)\s+weekend\b"),
        ("weekday", rf"\b(?P<prep>since|on|last|this past|this)\s+{_WEEKDAY}\b"),
        ("month", rf"\b(?P<prep>in|during|since|until|by|through|early|late|mid|mid-|earlier in|later in)\s*(?:the\s+month\s+of\s+)?{_MONTH}(?:\s+(?:of\s+)?{_YEAR}\b|(?!\s+of\b))(?!['’]s)"),
        ("month_year", rf"\b{_MONTH}\s+{_YEAR}\b"),
        ("year", rf"\b(?P<prep>in|during|since|through|throughout)\s+{_YEAR}\b(?!\s*[-–]|\s+(?:law|act|bill|election|season|census|budget|model|edition)\b)"),
    ]
]
# Words one of which a rule's match must contain: most questions name no time, and a substring
# test rules a pattern out far faster than the regular expression can.
_MONTH_WORDS = tuple(_MONTHS)
_NEEDLES: dict[str, tuple[str, ...]] = {
    "span": ("past", "last", "previous"), "ago": ("ago",), "today": ("today", "tonight", "this "),
    "last_night": ("last night",), "yesterday": ("yesterday",), "past_unit": ("past", "last"),
    "this": ("this",), "last": ("last", "previous"), "weekend": ("weekend",), "weekday": tuple(_WEEKDAYS),
    "month": _MONTH_WORDS, "month_year": _MONTH_WORDS, "year": ("19", "20"),
}


@dataclass(frozen=True)
class TimeWindow:
    """The days a question names: start 00:00:00 of its first day, end the last instant it
    covers (never after the as-of time), and the words that named it."""

    start: datetime
    end: datetime
    words: str


def resolve(question: str, as_of: datetime) -> TimeWindow | None:
    """The window the question names, resolved against `as_of` (aware); None when it names none."""
    found = []
    lowered = question.lower()
    for name, pattern in _RULES:
        if not any(n in lowered for n in _NEEDLES[name]):
            continue
        for m in pattern.finditer(question):
            if _is_a_name(question, m):
                continue
            span = _RESOLVE[name](m, as_of.astimezone(UTC))
            if span is not None:
                found.append((m.start(), -len(m.group(0)), span, m.group(0).strip()))
                break
    if not found:
        return None
    _, _, (first, last), words = min(found, key=lambda f: (f[0], f[1]))
    start = datetime.combine(first, time(), UTC)
    end = min(as_of.astimezone(UTC), datetime.combine(last, time(23, 59, 59), UTC))
    return TimeWindow(start, max(start, end), words)


def _is_a_name(text: str, m: re.Match[str]) -> bool:
    """Inside quotes, or title-cased away from the start of a sentence ("Shark Week", "Last
    Week Tonight", "This Morning" the show): a name, not a time."""
    before = text[: m.start()]
    if before.count('"') % 2 or (before.count("“") > before.count("”")):
        return True
    # month and weekday names are capitalised anyway; what else is, makes a title
    words = [w for w in re.findall(r"[A-Za-z]+", m.group(0)) if len(w) > 2 and w.lower() not in _NAMED]
    titled = bool(words) and all(w[:1].isupper() for w in words)
    at_start = not before.strip() or before.rstrip()[-1:] in ".?!:;"
    followed = re.match(r"\s+[A-Z][a-z]", text[m.end():]) is not None
    return titled and (not at_start or followed)


def _n(m: re.Match[str]) -> int:
    raw = m["n"].lower()
    return int(raw) if raw.isdigit() else _NUMBERS[raw]


def _span(m: re.Match[str], now: datetime) -> tuple[date, date] | None:
    n, unit = _n(m), m["unit"].lower()
    if n == 0:
        return None
    if unit == "hour":
        return (now - timedelta(hours=n)).date(), now.date()
    return _back(now.date(), n, unit) + timedelta(days=1), now.date()


def _back(day: date, n: int, unit: str) -> date:
    """The day n units before `day` (a month back from 31 March: the last of February)."""
    if unit == "day":
        return day - timedelta(days=n)
    if unit == "week":
        return day - timedelta(weeks=n)
    months = n * (12 if unit == "year" else 1)
    y, mo = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(y, mo + 1, min(day.day, calendar.monthrange(y, mo + 1)[1]))


def _ago(m: re.Match[str], now: datetime) -> tuple[date, date] | None:
    n, unit = _n(m), m["unit"].lower()
    if unit == "hour":
        t = (now - timedelta(hours=n)).date()
        return t, t
    return _calendar_unit(_back(now.date(), n, unit), unit)


def _calendar_unit(day: date, unit: str) -> tuple[date, date]:
    """The calendar day, week (Monday to Sunday), month or year holding `day`."""
    if unit == "week":
        monday = day - timedelta(days=day.weekday())
        return monday, monday + timedelta(days=6)
    if unit == "month":
        return day.replace(day=1), day.replace(day=calendar.monthrange(day.year, day.month)[1])
    if unit == "year":
        return date(day.year, 1, 1), date(day.year, 12, 31)
    return day, day


def _past_unit(m: re.Match[str], now: datetime) -> tuple[date, date]:
    return _back(now.date(), 1, m["unit"].lower()) + timedelta(days=1), now.date()


def _this(m: re.Match[str], now: datetime) -> tuple[date, date]:
    unit = m["unit"].lower()
    if unit == "week":  # loosely meant: the seven days up to now hold the calendar week so far
        return now.date() - timedelta(days=6), now.date()
    return _calendar_unit(now.date(), unit)[0], now.date()


def _last(m: re.Match[str], now: datetime) -> tuple[date, date]:
    unit = m["unit"].lower()
    return _calendar_unit(_back(now.date(), 1, unit), unit)


def _weekend(_m: re.Match[str], now: datetime) -> tuple[date, date]:
    day = now.date()
    saturday = day - timedelta(days=(day.weekday() - 5) % 7)
    return saturday, min(day, saturday + timedelta(days=1))


def _weekday(m: re.Match[str], now: datetime) -> tuple[date, date] | None:
    if m["prep"].lower() in ("on", "this") and _FUTURE.search(m.string):
        return None
    day, wanted = now.date(), _WEEKDAYS[m["weekday"].lower()]
    back = (day.weekday() - wanted) % 7
    if m["prep"].lower() == "last" and back == 0:
        back = 7
    that = day - timedelta(days=back)
    return (that, day) if m["prep"].lower() == "since" else (that, that)


def _month(m: re.Match[str], now: datetime) -> tuple[date, date] | None:
    month = _MONTHS[m["month"].lower()]
    if m["year"]:
        year = int(m["year"])
    elif _FUTURE.search(m.string):
        return None  # "who will win in November": a month ahead, not the last one
    else:
        year = now.year if month <= now.month else now.year - 1
    if date(year, month, 1) > now.date():
        return None  # a month still to come: a plan, not a time to search
    first, last = _calendar_unit(date(year, month, 1), "month")
    prep = (m.groupdict().get("prep") or "").lower()
    if prep == "since":
        return first, now.date()
    if prep in ("until", "by", "through"):
        return None  # open to the past: the as-of limit already says as much
    return first, last


def _year(m: re.Match[str], now: datetime) -> tuple[date, date] | None:
    year = int(m["year"])
    if year > now.year:
        return None
    if m["prep"].lower() == "since":
        return date(year, 1, 1), now.date()
    return date(year, 1, 1), date(year, 12, 31)


def _today(_m: re.Match[str], now: datetime) -> tuple[date, date]:
    return now.date(), now.date()


def _yesterday(_m: re.Match[str], now: datetime) -> tuple[date, date]:
    d = now.date() - timedelta(days=1)
    return d, d


def _last_night(_m: re.Match[str], now: datetime) -> tuple[date, date]:
    return now.date() - timedelta(days=1), now.date()


_RESOLVE = {
    "span": _span, "ago": _ago, "today": _today, "last_night": _last_night, "yesterday": _yesterday,
    "past_unit": _past_unit, "this": _this, "last": _last, "weekend": _weekend, "weekday": _weekday,
    "month": _month, "month_year": _month, "year": _year,
}
