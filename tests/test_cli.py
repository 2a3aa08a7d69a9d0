"""The `rag` command as a user runs it: a subprocess in a fresh project folder."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rag.schema import QueryResponse

ROOT = Path(__file__).resolve().parents[1]
RAG = [sys.executable, "-m", "rag.cli"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("project")
    shutil.copytree(ROOT / "seeds", folder / "seeds")
    return folder


def run(project, *args):
    return subprocess.run(RAG + list(args), cwd=project, capture_output=True, text=True, timeout=300)


def test_ask_builds_index_then_answers_as_json(project):
    r = run(project, "ask", "What does Russia demand on NATO?", "--json")
    assert r.returncode == 0, r.stderr
    assert "building it from seeds/" in r.stderr
    resp = QueryResponse.model_validate_json(r.stdout)
    assert len({p.doc_id for p in resp.passages}) >= 3
    assert json.loads(r.stdout)["passages"][0]["source"].startswith("seeds/")


def test_ask_plain_prints_answer_and_numbered_passages(project):
    r = run(project, "ask", "Which newspaper interviewed Grushko?", "-k", "3")
    assert r.returncode == 0, r.stderr
    assert "[1] " in r.stdout and "[3] " in r.stdout and "chars " in r.stdout
    assert "No index" not in r.stderr  # built once, reused


def test_usage_errors_exit_2_with_a_sentence(project):
    r = run(project, "ask", "   ")
    assert r.returncode == 2 and "blank" in r.stderr and "Traceback" not in r.stderr
    r = run(project, "ask", "ok", "-k", "99")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_calendar_edges_in_ask(project):
    r = run(project, "ask", "What does Russia demand on NATO?", "--as-of", "9999-12-31", "--json")
    assert r.returncode == 0, r.stderr
    assert QueryResponse.model_validate_json(r.stdout).passages
    r = run(project, "ask", "NATO", "--as-of", "0001-01-01T00:00:00+05:00")
    assert r.returncode == 2 and "outside the years 1 to 9999" in r.stderr and "Traceback" not in r.stderr
    r = run(project, "ask", "NATO", "--before", "9999-12-31", "--after", "0001-01-01", "--json")
    assert r.returncode == 0, r.stderr


def test_ask_reaches_the_date_rule_the_named_time_and_the_plan(project):
    q = "What did Witkoff say this week?"
    r = run(project, "ask", q, "--as-of", "2025-05-20", "--json", "--debug")
    assert r.returncode == 0, r.stderr
    resp = QueryResponse.model_validate_json(r.stdout)
    assert resp.time_window.words == "this week" and resp.time_window.end.date().isoformat() == "2025-05-20"
    assert resp.debug is not None and sum(resp.debug.segments.values()) >= 1
    r = run(project, "ask", q, "--as-of", "2025-05-20", "--no-time-window", "--json")
    assert QueryResponse.model_validate_json(r.stdout).time_window is None
    r = run(project, "ask", q, "--as-of", "2025-05-20", "-k", "1")
    assert r.returncode == 0 and '"this week")' in r.stdout
    # The seeds carry no dates: --no-undated leaves every one of them out, whatever the limit.
    r = run(project, "ask", q, "--no-undated", "--json")
    assert r.returncode == 0, r.stderr
    resp = QueryResponse.model_validate_json(r.stdout)
    assert resp.passages == [] and not resp.answerable


def test_other_errors_exit_1(project, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe not utf8")
    r = run(project, "ingest", str(bad))
    assert r.returncode == 1 and "not UTF-8" in r.stderr and "Traceback" not in r.stderr
    r = run(project, "delete", "no-such-doc")
    assert r.returncode == 1 and "no-such-doc" in r.stderr


def test_ingest_stats_delete_round_trip(project, tmp_path):
    (tmp_path / "extra.md").write_text("# Extra\n\nA note about Kursk region strikes.\n")
    r = run(project, "ingest", str(tmp_path / "extra.md"))
    assert r.returncode == 0 and "1 added" in r.stdout, r.stderr
    r = run(project, "ingest", str(tmp_path / "extra.md"))
    assert "1 unchanged" in r.stdout
    out = run(project, "stats").stdout
    docs = int(re.search(r"documents: (\d+)", out).group(1))
    segs = int(re.search(r"live in (\d+) segment", out).group(1))
    assert "words: SQLite FTS5 BM25" in out and ": flat (exact), 1 vectors, 0 tombstoned" in out, out
    assert run(project, "delete", "extra").returncode == 0
    out = run(project, "stats").stdout
    # the deleted article's one-vector segment is all tombstones: the merge after the delete drops it
    assert f"documents: {docs - 1}" in out and f"live in {segs - 1} segment(s), 0 tombstone(s)" in out, out


def test_ask_choices_as_json_is_the_http_contract(project):
    r = run(project, "ask", "Which Russian media outlet interviewed Alexander Grushko?", "--choice", "Pravda",
            "--choice", "Izvestiya", "--as-of", "2022/06/16", "--json")
    assert r.returncode == 0, r.stderr
    resp = QueryResponse.model_validate_json(r.stdout)
    assert resp.choice is not None and resp.choice.picked == "Izvestiya" and not resp.choice.abstained
    assert [s.choice for s in resp.choice.scores] == ["Pravda", "Izvestiya"]
    assert set(resp.choice.citations) <= {p.rank for p in resp.passages}
    plain = run(project, "ask", "Which Russian media outlet interviewed Alexander Grushko?", "--choice", "Pravda",
                "--choice", "Izvestiya")
    assert plain.returncode == 0 and plain.stdout.startswith("Choice: Izvestiya [")


def test_ask_bad_choices_or_date_exit_2_with_a_sentence(project):
    r = run(project, "ask", "Who?", "--choice", "only one")
    assert r.returncode == 2 and "at least 2" in r.stderr and "Traceback" not in r.stderr
    r = run(project, "ask", "Who?", "--as-of", "next week")
    assert r.returncode == 2 and "unreadable date" in r.stderr and "Traceback" not in r.stderr
