"""Schemathesis, every phase (examples, coverage, fuzzing, stateful) with every check, against the app
in process, for three settings: no keys, keys, keys with RAG_PROTECT_READS.

The checks hold the server to its OpenAPI document both ways: no 5xx; status codes, content
types, headers and bodies as documented; schema-valid requests accepted and schema-violating
ones refused; declared authentication enforced, and none demanded where none is declared;
405 with an `Allow` header naming the methods served; resources readable after creation and
gone after deletion.

Two things the document can only say in words are supplied or exempted by eval/schemathesis_hooks.py,
which schemathesis's command line loads too (SCHEMATHESIS_HOOKS): an uploaded file's contents,
and rules that compare two fields.

Writes go to throwaway copies of the seeds index, so the shared one is never damaged.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from pydantic import SecretStr
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema

from api.app import create_app
from eval.schemathesis_hooks import register_formats, unregister_formats  # its filter_failure hook applies here too
from rag.service import Service
from support import LiveServer

ROOT = Path(__file__).resolve().parents[2]

KEY = "f" * 8 + "-fuzzing-test-key-001"
# Examples per operation and phase (RAG_FUZZ_EXAMPLES for a longer hunt). Random dates never
# reached the calendar's ends, where `as_of` 9999-12-31 once overflowed into a 500, at any count
# tried (3 to 20): test_date_fields_at_the_calendar_ends draws them on purpose.
MAX_EXAMPLES = int(os.environ.get("RAG_FUZZ_EXAMPLES", "3"))
SEED = 20240601
SETTINGS = {
    "no keys": {},
    "keys": {"api_keys": SecretStr(KEY)},
    "keys, protected reads": {"api_keys": SecretStr(KEY), "protect_reads": True},
}


@pytest.fixture()
def fuzz_service(request, seeds_service, embedder, tmp_path):
    """A Service over a copy of the seeds index (SQLite copied with its backup API, then the segments)."""
    src = seeds_service.settings.index_dir
    folder = tmp_path / "fuzz-index"
    folder.mkdir()
    with sqlite3.connect(src / "store.sqlite") as source, sqlite3.connect(folder / "store.sqlite") as target:
        source.backup(target)
    shutil.copy2(src / "manifest.json", folder / "manifest.json")
    shutil.copytree(src / "segments", folder / "segments", ignore=shutil.ignore_patterns("*.tmp", ".building"))
    # Webhooks to loopback admitted (the hooks draw them there; nothing listens, so deliveries just fail).
    settings = seeds_service.settings.model_copy(
        update={"index_dir": folder, "fetch_allow_hosts": "127.0.0.1", **SETTINGS[request.param]}
    )
    service = Service(settings, embedder=embedder)
    yield service
    service.close()


@pytest.fixture(scope="module")
def article_files():
    """Binary values are JSON-lines files of articles while this module runs."""
    unregister_formats()  # importing the hooks registered the command line's formats
    register_formats(calendar_edges=False)
    yield
    unregister_formats()


ALL_PHASES = ("examples", "coverage", "fuzzing", "stateful")


def run_all_checks(app, headers: dict[str, str], examples: int = MAX_EXAMPLES, phases: tuple[str, ...] = ALL_PHASES,
                   path_regex: str | None = None) -> tuple[list[str], Counter]:
    """Every failure schemathesis finds (one line each), and how many cases each operation got."""
    config = SchemathesisConfig.from_dict({
        "seed": SEED,
        "headers": headers,
        "generation": {"max-examples": examples},
        "phases": {phase: {"enabled": phase in phases} for phase in ALL_PHASES},
    })
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    if path_regex is not None:
        schema = schema.include(path_regex=path_regex)
    # A reference that does not resolve or a pattern schemathesis cannot use would skip checks quietly.
    failures: list[str] = [f"schema warning: {w!r}" for w in schema.iter_schema_warnings()]
    cases: Counter = Counter()
    for event in from_schema(schema).execute():
        if isinstance(event, (events.NonFatalError, events.FatalError)):
            if CPYTHON_AST_BUG in event.info.message:
                continue  # the engine's own code generation, not the server (see CPYTHON_AST_BUG)
            failures.append(f"{getattr(event, 'label', 'engine')}: error {event.info.message}")
        if not isinstance(event, events.ScenarioFinished):
            continue
        cases[event.recorder.label] += len(event.recorder.cases)
        for case_id, nodes in event.recorder.checks.items():
            response = event.recorder.find_response(case_id=case_id)
            for node in nodes:
                if node.status != Status.FAILURE or node.failure_info is None:
                    continue
                body = response.text if response is not None else ""
                status = response.status_code if response is not None else "-"
                failures.append(f"{event.recorder.label}: {node.name}: {node.failure_info.failure.title} "
                                f"[{status} {body[:200]}]\n{node.failure_info.code_sample[:600]}")
    return sorted(set(failures)), cases


# CPython 3.11 can raise this SystemError (cpython gh-106905) in the fuzzing engine's own
# compile() of a generated case, at random; no request reaches the server in that scenario.
CPYTHON_AST_BUG = "AST constructor recursion depth mismatch"


@pytest.mark.parametrize("fuzz_service", list(SETTINGS), indirect=True)
def test_every_check_passes(fuzz_service, article_files):
    started = time.perf_counter()
    headers = {"Authorization": f"Bearer {KEY}"} if fuzz_service.settings.api_keys else {}
    failures, cases = run_all_checks(create_app(fuzz_service), headers)
    print(f"schemathesis: {sum(cases.values())} cases in {time.perf_counter() - started:.1f} s", dict(cases))
    assert not failures, "\n\n".join(failures[:10])
    assert sum(cases.values()) >= 50 and len(cases) >= 7, cases


# Every date field is in the body of /query, /query/stream and /timeline; asking is cheap, so these
# get more examples, each date drawn at the calendar's ends as often as anywhere else.
DATE_EXAMPLES = 100


@pytest.fixture()
def calendar_edges(article_files):
    register_formats(calendar_edges=True)
    yield
    register_formats(calendar_edges=False)
    unregister_formats()
    register_formats(calendar_edges=False)


def test_date_fields_at_the_calendar_ends(seeds_service, calendar_edges):
    failures, cases = run_all_checks(create_app(seeds_service), {}, DATE_EXAMPLES, ("fuzzing",),
                                     "^/(query|timeline)")
    print(f"schemathesis, dates at the calendar's ends: {sum(cases.values())} cases", dict(cases))
    assert not failures, "\n\n".join(failures[:10])
    assert sum(cases.values()) >= DATE_EXAMPLES, cases


@pytest.mark.parametrize("fuzz_service", ["keys"], indirect=True)
def test_the_command_line_finds_nothing_against_a_live_server_with_a_key(fuzz_service, tmp_path):
    """`schemathesis run --checks all` as a user runs it, with the hooks, against uvicorn on loopback."""
    cli = Path(sys.executable).with_name("schemathesis")
    with LiveServer(create_app(fuzz_service)) as base:
        proc = subprocess.run(
            [str(cli), "run", f"{base}/openapi.json", "--checks", "all", "-H", f"Authorization: Bearer {KEY}",
             "--seed", str(SEED), "--max-examples", "10", "--no-color"],
            # run elsewhere: the command line keeps its own state in ./.schemathesis
            env={**os.environ, "SCHEMATHESIS_HOOKS": "eval.schemathesis_hooks", "PYTHONPATH": str(ROOT)}, cwd=tmp_path,
            capture_output=True, text=True, timeout=600,
        )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "No issues found" in proc.stdout and "Tested: 13" in proc.stdout, proc.stdout[-2000:]
