"""Publication dates in the forms newsrooms and feeds write them, and the as-of rule."""

from datetime import date, datetime, timedelta, timezone

import pytest

from rag import dates


@pytest.mark.parametrize(
    "written,normal",
    [
        ("2022-09-06", "2022-09-06"),
        ("2022-09-06T14:30:00Z", "2022-09-06T14:30:00Z"),
        ("2022-09-06T14:30Z", "2022-09-06T14:30:00Z"),
        ("2022-09-06T14:30:00+02:00", "2022-09-06T12:30:00Z"),
        ("2022-09-06T23:30:00-05:00", "2022-09-07T04:30:00Z"),  # the UTC day is the next one
        ("2022-09-06T14:30:00.123456+00:00", "2022-09-06T14:30:00Z"),
        ("2022-09-06 14:30", "2022-09-06T14:30:00Z"),  # no offset: read as UTC
        ("2022/09/06", "2022-09-06"),
        ("2022/9/6", "2022-09-06"),
        ("Tue, 06 Sep 2022 14:30:00 GMT", "2022-09-06T14:30:00Z"),
        ("Tue, 06 Sep 2022 14:30:00 -0400", "2022-09-06T18:30:00Z"),
        ("06 Sep 2022 14:30 +0000", "2022-09-06T14:30:00Z"),
        ("Tue, 6 Sep 22 22:00:00 EST", "2022-09-07T03:00:00Z"),  # two-digit year, named zone
        ("Sep 6, 2022", "2022-09-06"),
        ("Sept. 6, 2022", "2022-09-06"),
        ("September 6, 2022", "2022-09-06"),
        ("september 6 2022", "2022-09-06"),
        ("6 September 2022", "2022-09-06"),
        ("6 Sep 2022", "2022-09-06"),
        ("Tuesday, September 6, 2022", "2022-09-06"),
        ("  Sep  6,  2022 ", "2022-09-06"),
    ],
)
def test_every_listed_form_normalises_to_utc(written, normal):
    assert dates.normalise(written) == normal


@pytest.mark.parametrize(
    "garbage",
    ["", "yesterday", "2022-02-30", "2022/13/01", "2022-09-06T25:00", "Foo 6, 2022", "32 September 2022",
     "6/9/2022", "2022", "Tue, 06 Xyz 2022 14:30:00 GMT", "2022-09-06 and more"],
)
def test_garbage_is_a_date_error_quoting_it(garbage):
    with pytest.raises(dates.DateError, match="unreadable date") as err:
        dates.normalise(garbage)
    assert repr(" ".join(garbage.split())) in str(err.value) and "YYYY-MM-DD" in str(err.value)


def test_stored_values_are_read_tolerantly():
    assert dates.read("2022/06/12") == "2022-06-12"  # a raw value of an older index
    assert dates.read("Published 2022/06/12 by the desk") == "2022-06-12"
    assert dates.read(None) is None and dates.read("") is None and dates.read("soon") is None
    assert dates.day("2022-09-06T23:30:00-05:00") == "2022-09-07"
    assert dates.instant("2022-09-06") == datetime(2022, 9, 6, tzinfo=timezone.utc)
    assert dates.instant("2022-09-06T14:30:00Z") == datetime(2022, 9, 6, 14, 30, tzinfo=timezone.utc)


def test_as_of_rule_date_covers_its_day_datetime_ends_at_its_instant():
    day = dates.cutoff(date(2022, 9, 6))
    assert day == "2022-09-06"
    assert not dates.later_than("2022-09-06T23:59:00Z", day)
    assert dates.later_than("2022-09-07", day)
    noon = dates.cutoff(datetime(2022, 9, 6, 12, 0))  # naive: UTC
    assert noon == "2022-09-06T12:00:00Z"
    assert dates.cutoff(datetime(2022, 9, 6, 14, 0, tzinfo=timezone(timedelta(hours=2)))) == noon
    assert dates.later_than("2022-09-06T12:00:01Z", noon)
    assert not dates.later_than("2022-09-06T12:00:00Z", noon)
    assert not dates.later_than("2022-09-06", noon)  # a date-only article: 00:00 of its day
    assert dates.later_than("2022-09-07", noon)
    assert not dates.later_than(None, noon) and not dates.later_than("not a date", noon)
    assert dates.cutoff_instant(day) == datetime(2022, 9, 7, tzinfo=timezone.utc)
    assert dates.cutoff_instant(noon) == datetime(2022, 9, 6, 12, tzinfo=timezone.utc)


# --- the one date rule, table-wise -----------------------------------------------------------
# Three articles, one undated and two published on 2022-06-10 (a date, and 14:00 that day), asked as
# of a date or a datetime, with and without include_undated; the archive holding a future-dated
# article or not must change nothing.
DAY_AND_TIME = {"dated-day", "dated-time"}
RULE = [
    # as_of, include_undated, the articles admitted
    ("2022-06-09", True, {"undated"}),
    ("2022-06-09", False, set()),
    ("2022-06-10", True, {"undated"} | DAY_AND_TIME),
    ("2022-06-10", False, DAY_AND_TIME),
    ("2022-06-11", True, {"undated"} | DAY_AND_TIME),
    ("2022-06-11", False, DAY_AND_TIME),
    ("2022-06-10T13:59:59Z", True, {"undated", "dated-day"}),  # a date-only article: 00:00 of its day
    ("2022-06-10T13:59:59Z", False, {"dated-day"}),
    ("2022-06-10T14:00:00Z", False, DAY_AND_TIME),
]


@pytest.mark.parametrize("future", [False, True], ids=["no future article", "a future-dated article"])
def test_as_of_and_include_undated_follow_one_rule_whatever_the_archive_holds(make_service, future):
    from rag.ingestion.documents import Document
    from rag.schema import Query

    s = make_service()
    docs = [
        Document("undated", "The harbour tramline vote was held by the city council after a long debate."),
        Document("dated-day", "Union leaders said the harbour tramline vote ignored the drivers' pay claims.",
                 published="2022-06-10"),
        Document("dated-time", "Shopkeepers near the quay welcomed the harbour tramline vote with a street party.",
                 published="2022-06-10T14:00:00Z"),
    ]
    if future:
        docs.append(Document("scheduled", "A second harbour tramline vote on the route extension is set for spring.",
                             published="2030-01-01"))
    s.ingest(docs)
    for as_of, undated, want in RULE:
        got = {p.doc_id for p in s.ask(Query(question="harbour tramline vote", k=10, as_of=as_of,
                                             include_undated=undated, answer=False)).passages}
        assert got == want, (as_of, undated)
    # without as_of the question is asked as of now: the future article alone is left out
    now = {p.doc_id for p in s.ask(Query(question="harbour tramline vote", k=10, include_undated=False, answer=False)).passages}
    assert now == DAY_AND_TIME


@pytest.mark.parametrize(
    "limits,admitted",
    [
        # (as_of, published_after, published_before, include_undated) -> which of
        # [undated, 06-09 23:59:59, 06-10 00:00, 06-10 12:00, 06-11 00:00] pass
        (("2022-06-10", None, None, True), [1, 1, 1, 1, 0]),
        (("2022-06-10", None, None, False), [0, 1, 1, 1, 0]),
        (("2022-06-10T11:00:00Z", None, None, True), [1, 1, 1, 0, 0]),
        ((None, "2022-06-10", None, True), [1, 0, 1, 1, 1]),
        ((None, None, "2022-06-09", False), [0, 1, 0, 0, 0]),
        (("2022-06-11", "2022-06-10", "2022-06-10", True), [1, 0, 1, 1, 0]),
        ((None, None, None, False), [0, 1, 1, 1, 1]),
        ((None, None, None, True), None),  # no limit at all
    ],
)
def test_filters_turn_every_date_limit_into_one_time_range(limits, admitted):
    import numpy as np

    from rag.storage.store import Filters
    from rag.storage.timerange import NO_DATE, times_of

    as_of, after, before, undated = limits
    within = Filters(as_of=as_of, published_after=after, published_before=before, include_undated=undated).within()
    if admitted is None:
        assert within is None
        return
    times = times_of([None, "2022-06-09T23:59:59Z", "2022-06-10", "2022-06-10T12:00:00Z", "2022-06-11"])
    assert times[0] == NO_DATE
    assert within.admits(times).astype(int).tolist() == admitted
    assert dates.last_second("9999-12-31") > dates.last_second("2022-06-10")  # the calendar's end admits all
    assert np.all(within.admits(times) == [within.admits(np.array([t]))[0] for t in times])


def test_a_time_range_says_of_a_span_none_all_or_some():
    from rag.storage.timerange import Span, TimeRange

    r = TimeRange(10, 20, undated=False)
    assert r.covers(Span(21, 30, 0)) == "none" and r.covers(Span(1, 9, 0)) == "none"
    assert r.covers(Span(10, 20, 0)) == "all" and r.covers(Span(12, 12, 0)) == "all"
    assert r.covers(Span(5, 15, 0)) == "some" and r.covers(Span(15, 25, 0)) == "some"
    assert r.covers(Span(12, 15, 3)) == "some"  # its undated vectors are left out
    assert r.covers(Span(None, None, 3)) == "none"
    keep = TimeRange(10, 20, undated=True)
    assert keep.covers(Span(12, 15, 3)) == "all" and keep.covers(Span(None, None, 3)) == "all"
    assert keep.covers(Span(30, 40, 3)) == "some"
    assert TimeRange(None, 20).covers(Span(-5, 20, 0)) == "all"
