"""`since` on a query (rag/retrieval/novelty.py): only what later articles add to the earlier
coverage, judged sentence by sentence on a real index, with the earlier article each updates."""

from __future__ import annotations

from datetime import date

from fastapi.testclient import TestClient

from api.app import create_app
from rag.ingestion import Document
from rag.retrieval.novelty import split
from rag.schema import Query
from rag.storage import Filters

QUESTION = "What does Russia demand on NATO?"
EARLIER = Document(
    "early", "The Kremlin said on Monday that Russia demands that Ukraine never join NATO. "
    "Moscow also wants NATO troops kept out of Eastern Europe.", "Russia's NATO demands", "test", "2025-03-01",
)
LATER = Document(
    "later", "The Kremlin said that Russia demands that Ukraine never join NATO. "
    "Russia now also demands that NATO close its bases in Poland and the Baltic states within a year.",
    "Russia widens its NATO demands", "test", "2025-03-10",
)
REPEAT = Document(
    "repeat", "Russia demands that Ukraine never join NATO, the Kremlin said on Monday. "
    "Moscow also wants NATO troops kept out of Eastern Europe, officials added.", "Kremlin repeats demands", "test",
    "2025-03-11",
)


def test_since_keeps_only_the_new_sentences_and_names_the_article_they_update(make_service):
    service = make_service()
    service.ingest([EARLIER, LATER, REPEAT])
    everything = service.ask(Query(question=QUESTION, k=5))
    assert {p.doc_id for p in everything.passages} == {"early", "later", "repeat"}
    assert all(p.updates is None for p in everything.passages)

    new = service.ask(Query(question=QUESTION, k=5, since="2025-03-05"))
    assert [p.doc_id for p in new.passages] == ["later"]  # the restatement adds nothing
    [p] = new.passages
    text = service.document("later").text
    assert text[p.start : p.end] == p.text and p.text.startswith("Russia now also demands")  # narrowed to the new
    assert p.updates == "early"
    assert new.answer is not None and "Poland" in new.answer.text

    assert service.ask(Query(question=QUESTION, k=5, since="2025-03-12")).passages == []


def test_since_after_as_of_is_a_422_sentence(make_service):
    with TestClient(create_app(make_service())) as c:
        r = c.post("/query", json={"question": QUESTION, "since": "2025-03-10", "as_of": "2025-03-01"})
        assert r.status_code == 422 and "since is later than as_of" in r.json()["error"]


def test_the_split_at_the_calendar_start_leaves_nothing_earlier():
    later, earlier = split(Filters(published_before="2025-01-01"), date(1, 1, 1))
    assert later.published_after == "0001-01-01" and not later.include_undated and earlier.doc_ids == ()
    later, earlier = split(Filters(published_after="2025-03-07"), date(2025, 3, 5))
    assert later.published_after == "2025-03-07" and earlier.published_before == "2025-03-04"


def test_rag_ask_since_after_as_of_is_a_usage_error(tmp_path):
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "rag.cli", "ask", QUESTION, "--since", "2025-03-10", "--as-of", "2025-03-01"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 2 and "since is later than as_of" in r.stderr
