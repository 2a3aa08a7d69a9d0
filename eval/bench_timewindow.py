"""The time a question names: this project's grammar (rag/retrieval/timewindow.py) against the
date-parsing libraries one could use instead, on the same table of phrases and of words that only
look like times, with the cost of each per question:

    python -m eval.bench_timewindow [--json]

dateparser (`search.search_dates`, past preferred), ctparse and timefhuman (past direction) are
measured when installed (`pip install dateparser ctparse timefhuman`; not dependencies of the
project). A library returns points or intervals, not the window a phrase means, so it is scored
generously: a phrase is right when some date it finds falls inside the expected window; a
non-time is right when it finds none.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import date, datetime, timezone

from rag.retrieval.timewindow import resolve


def days(a: str, b: str) -> tuple[date, date]:
    return date.fromisoformat(a), date.fromisoformat(b)


AS_OF = datetime(2022, 6, 10, 23, 59, 59, tzinfo=timezone.utc)  # a Friday, as of its whole day


def days(a: str, b: str) -> tuple[date, date]:
    return date.fromisoformat(a), date.fromisoformat(b)


PHRASES = [
    ("What did the minister announce today?", days("2022-06-10", "2022-06-10")),
    ("Which team won yesterday?", days("2022-06-09", "2022-06-09")),
    ("Who resigned last night?", days("2022-06-09", "2022-06-10")),
    ("Which company said this week that it would cut jobs?", days("2022-06-04", "2022-06-10")),
    ("What was announced earlier this week?", days("2022-06-04", "2022-06-10")),
    ("What happened this past week in Ukraine?", days("2022-06-04", "2022-06-10")),
    ("Over the past week, which country raised rates?", days("2022-06-04", "2022-06-10")),
    ("Who won the election last week?", days("2022-05-30", "2022-06-05")),
    ("What did the court rule this weekend?", days("2022-06-04", "2022-06-05")),
    ("How many jobs were added this month?", days("2022-06-01", "2022-06-10")),
    ("Which film topped the box office last month?", days("2022-05-01", "2022-05-31")),
    ("What did the central bank decide in March?", days("2022-03-01", "2022-03-31")),
    ("What did the central bank decide in March 2022?", days("2022-03-01", "2022-03-31")),
    ("What happened in March of 2021?", days("2021-03-01", "2021-03-31")),
    ("Which storm hit in December?", days("2021-12-01", "2021-12-31")),  # its latest December
    ("Who was elected in May?", days("2022-05-01", "2022-05-31")),
    ("What changed in mid-April?", days("2022-04-01", "2022-04-30")),
    ("What did the law passed in 2021 change?", days("2021-01-01", "2021-12-31")),
    ("Who has led the party since 2021?", days("2021-01-01", "2022-06-10")),
    ("What has the index done since Monday?", days("2022-06-06", "2022-06-10")),
    ("What did the president sign on Tuesday?", days("2022-06-07", "2022-06-07")),
    ("Who scored last Friday?", days("2022-06-03", "2022-06-03")),
    ("What fell over the past 3 days?", days("2022-06-08", "2022-06-10")),
    ("What rose in the past three days?", days("2022-06-08", "2022-06-10")),
    ("Which shares jumped in the past few days?", days("2022-06-08", "2022-06-10")),
    ("What broke in the last 24 hours?", days("2022-06-09", "2022-06-10")),
    ("What did the agency report over the last two weeks?", days("2022-05-28", "2022-06-10")),
    ("Which bill passed two weeks ago?", days("2022-05-23", "2022-05-29")),
    ("Who was arrested 3 days ago?", days("2022-06-07", "2022-06-07")),
    ("What did the board decide a month ago?", days("2022-05-01", "2022-05-31")),
    ("How much did prices rise this year?", days("2022-01-01", "2022-06-10")),
    ("Who won the title last year?", days("2021-01-01", "2021-12-31")),
    ("THIS WEEK: which city banned cars?", days("2022-06-04", "2022-06-10")),
]

NOT_TIMES = [
    "How much did the March of Dimes raise?",
    "What did Theresa May say about the backstop?",
    "Which designer closed Paris Fashion Week?",
    "Who presents Last Week Tonight?",
    'Which guest was on the show "This Week" with the senator?',
    "What does the 2021 law require of landlords?",
    "What happened during the 2021 season?",
    "What may happen to interest rates?",
    "Who will win the election in November?",
    "Which troops march into the city?",
    "Who won the Marseille derby?",
    "What did the report say about the weekly figures?",
    "How many weeks does the trial last?",
]




def _ours(q: str, now: datetime) -> list[date]:
    found = resolve(q, now)
    return [] if found is None else [found.start.date(), found.end.date()]


def _dateparser() -> Callable[[str, datetime], list[date]] | None:
    try:
        from dateparser.search import search_dates
    except ImportError:
        return None

    def parse(q: str, now: datetime) -> list[date]:
        found = search_dates(q, languages=["en"], settings={
            "RELATIVE_BASE": now.replace(tzinfo=None), "PREFER_DATES_FROM": "past"})
        return [d.date() for _, d in found or []]
    return parse


def _ctparse() -> Callable[[str, datetime], list[date]] | None:
    try:
        import logging

        from ctparse import ctparse
        logging.getLogger("ctparse").setLevel(logging.ERROR)
    except ImportError:
        return None

    def point(t, now: datetime) -> date | None:  # type: ignore[no-untyped-def]
        try:  # a Time with some of year, month, day; a Duration or a time of day names no date
            return date(t.year or now.year, t.month or 1, t.day or 1) if (t.year or t.month or t.day) else None
        except (AttributeError, TypeError, ValueError):
            return None

    def parse(q: str, now: datetime) -> list[date]:
        r = ctparse(q, ts=now.replace(tzinfo=None), timeout=1)
        if r is None:
            return []
        res = r.resolution
        parts = [res.start, res.end] if hasattr(res, "start") and not hasattr(res, "year") else [res]
        return [d for d in (point(p, now) for p in parts if p is not None) if d is not None]
    return parse


def _timefhuman() -> Callable[[str, datetime], list[date]] | None:
    try:
        from timefhuman import timefhuman, tfhConfig
        from timefhuman.utils import Direction
    except ImportError:
        return None

    def flat(x) -> list[date]:  # type: ignore[no-untyped-def]
        if isinstance(x, (list, tuple)):
            return [d for y in x for d in flat(y)]
        return [x.date() if isinstance(x, datetime) else x] if isinstance(x, (date, datetime)) else []

    def parse(q: str, now: datetime) -> list[date]:
        try:
            return flat(timefhuman(q, config=tfhConfig(now=now.replace(tzinfo=None), direction=Direction.previous)))
        except Exception:  # noqa: BLE001 - a parser that fails on a question has found nothing
            return []
    return parse


def score(parse: Callable[[str, datetime], list[date]]) -> dict:
    right_times, right_names, cost = 0, 0, []
    for q, (first, last) in PHRASES:
        t0 = time.perf_counter()
        found = parse(q, AS_OF)
        cost.append(time.perf_counter() - t0)
        right_times += any(first <= d <= last for d in found)
    for q in NOT_TIMES:
        t0 = time.perf_counter()
        found = parse(q, AS_OF)
        cost.append(time.perf_counter() - t0)
        right_names += not found
    cost.sort()
    return {"phrases_right": f"{right_times}/{len(PHRASES)}", "non_times_right": f"{right_names}/{len(NOT_TIMES)}",
            "ms_per_question_mean": round(1000 * sum(cost) / len(cost), 3),
            "ms_per_question_p50": round(1000 * cost[len(cost) // 2], 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    parsers = {"rag.retrieval.timewindow (ours)": _ours, "dateparser": _dateparser(), "ctparse": _ctparse(),
               "timefhuman": _timefhuman()}
    results = {name: score(p) if p is not None else "not installed" for name, p in parsers.items()}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, r in results.items():
        print(f"{name}: {r}")


if __name__ == "__main__":
    main()
