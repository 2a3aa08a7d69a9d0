"""eval/bench_extract.py: its scoring, and each site template's article coming back out."""

from __future__ import annotations

import random

import pytest

from eval.bench_extract import TEMPLATES, Article, prf, run
from rag.ingestion.html import extract

ARTICLE = Article(
    id="a1", title="Harbour bridge reopens after two years of repairs",
    text=("The harbour bridge reopened to traffic on Monday after two years of repairs that cost more than "
          "the original construction, the city said.\n\nCommuters queued from dawn to be among the first to "
          "cross, and the mayor cut a ribbon at the northern end shortly after six.\n\nEngineers replaced every "
          "cable and half of the deck, and say the bridge should now last another century with regular care.\n\n"
          "Ferry operators, who had carried twice their usual number of passengers during the closure, said "
          "they expected to return to their old timetables by the end of the month."),
    day="2022-09-05", url="https://example.org/bridge",
)


def test_token_scores():
    assert prf("a b c", "a b c") == (1.0, 1.0, 1.0)
    p, r, f = prf("a b c menu", "a b c d")
    assert (p, r) == (0.75, 0.75) and f == pytest.approx(0.75)
    assert prf("", "a") == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_each_template_gives_the_article_back_with_its_title_and_date(name):
    page = TEMPLATES[name](ARTICLE, random.Random(0))
    assert "comment" in page and len(page) > 2 * len(ARTICLE.text)  # boilerplate really is there
    got = extract(page, name, ARTICLE.url)
    assert prf(got.text, ARTICLE.text)[2] >= 0.9
    assert got.title == ARTICLE.title and got.published[:10] == ARTICLE.day


def test_run_reports_per_template_and_overall():
    result = run([ARTICLE] * len(TEMPLATES), seed=0)
    assert result["articles"] == len(TEMPLATES) and set(result["by_template"]) == set(TEMPLATES)
    assert result["overall"]["f1"] >= 0.9 and result["overall"]["title_recovered"] == 1.0
