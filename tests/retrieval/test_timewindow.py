"""The time a question names, against a table of phrases and the windows they mean (as of
Friday 2022-06-10), and words that only look like times."""

from datetime import datetime, timezone

import pytest

from eval.bench_timewindow import AS_OF, NOT_TIMES, PHRASES  # the table eval/bench_timewindow.py measures
from rag.retrieval.timewindow import resolve


@pytest.mark.parametrize("question,window", PHRASES)
def test_phrases_resolve_to_their_window(question, window):
    found = resolve(question, AS_OF)
    assert found is not None, question
    assert (found.start.date(), found.end.date()) == window
    assert found.words.lower() in question.lower()
    assert found.start.time().isoformat() == "00:00:00" and found.end <= AS_OF


@pytest.mark.parametrize("question", NOT_TIMES)
def test_words_that_are_not_times_name_no_window(question):
    assert resolve(question, AS_OF) is None


def test_the_window_ends_at_a_datetime_as_of_and_a_year_to_come_is_none():
    noon = datetime(2022, 6, 10, 12, 0, tzinfo=timezone.utc)
    assert resolve("What happened today?", noon).end == noon
    assert resolve("What happened in 2023?", noon) is None
    assert resolve("What does the 2021 law require?", datetime(2023, 3, 1, tzinfo=timezone.utc)) is None


def test_the_first_phrase_wins():
    found = resolve("What happened yesterday, after last week's vote?", AS_OF)
    assert found.words == "yesterday"
