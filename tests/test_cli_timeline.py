"""`rag timeline` as a user runs it: a subprocess in a fresh project folder, the story ingested with
`rag ingest` first; the same contract as `POST /timeline` with --json; usage errors exit 2."""

from __future__ import annotations

import subprocess
import sys
from datetime import date

import pytest

from rag.schema import TimelineResponse
from stories import EVENTS, QUESTION, write_jsonl

RAG = [sys.executable, "-m", "rag.cli"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("timeline-project")
    write_jsonl(folder / "story.jsonl")
    r = run(folder, "ingest", "story.jsonl")
    assert r.returncode == 0, r.stderr
    return folder


def run(project, *args):
    return subprocess.run(RAG + list(args), cwd=project, capture_output=True, text=True, timeout=300)


def test_timeline_json_is_the_http_contract(project):
    r = run(project, "timeline", QUESTION, "--as-of", "2025-06-01", "--json")
    assert r.returncode == 0, r.stderr
    timeline = TimelineResponse.model_validate_json(r.stdout)
    assert [(e.date, {a.doc_id for a in e.articles}) for e in timeline.events] == EVENTS
    assert [a.doc_id for a in timeline.undated] == ["tram-explainer"]


def test_timeline_plain_prints_each_event_with_its_date_and_sentence(project):
    r = run(project, "timeline", QUESTION, "--as-of", "2025-03-12", "-k", "10")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    dates = [line[:10] for line in out.splitlines() if line[:4] == "2025"]
    assert dates == ["2025-03-03", "2025-03-04", "2025-03-12"]  # the appeal came later than as-of
    assert "halted construction of the Lakeview tram line" in out and "chars " in out
    assert "council-approves 2025-03-03 (also in council-approves-wire)" in out
    assert "Undated, so not on the timeline: tram-explainer" in out


def test_a_question_the_articles_do_not_cover(project):
    r = run(project, "timeline", "Who won the Paris marathon?", "--no-undated")
    assert r.returncode == 0 and r.stdout.strip() == "The articles do not cover this question."


@pytest.mark.parametrize("args,says", [
    (["   "], "blank"),
    (["tram", "-k", "99"], "k: Input should be less than or equal to 50"),
    (["tram", "--as-of", "next week"], "unreadable date 'next week'"),
    (["tram", "--after", "2025-03-02", "--before", "2025-03-01"], "published_after is later than published_before"),
    (["tram", "--mode", "psychic"], "mode: Input should be"),
])
def test_usage_errors_exit_2_with_a_sentence(project, args, says):
    r = run(project, "timeline", *args)
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_the_key_sentences_sit_at_their_offsets(project):
    import json

    texts = {row["id"]: row["text"] for row in map(json.loads, (project / "story.jsonl").read_text().splitlines())}
    r = run(project, "timeline", QUESTION, "--as-of", "2025-06-01", "--json")
    for e in TimelineResponse.model_validate_json(r.stdout).events:
        assert texts[e.sentence.doc_id][e.sentence.start : e.sentence.end] == e.sentence.text
        assert e.date <= date(2025, 6, 1)
