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
