"""Sanity checks for the retrieval-QA gold set in eval/gold/seeds.jsonl.

Standard library + pytest only; no project imports.
"""

import json
from collections import Counter
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOLD = ROOT / "eval" / "gold" / "seeds.jsonl"
SEED_DIRS = [ROOT / "seeds", ROOT.parent / "shared" / "seeds"]

ALLOWED_TYPES = {"factoid", "list", "multi", "paraphrase", "quirk", "unanswerable"}
REQUIRED_KEYS = {"id", "question", "type", "evidence", "doc_ids", "nuggets"}
MIN_UNANSWERABLE = 8


def _norm(text):
    return " ".join(text.lower().split())


@lru_cache(maxsize=None)
def article_text(doc_id):
    for d in SEED_DIRS:
        p = d / f"{doc_id}.txt"
        if p.exists():
            return p.read_text(encoding="utf-8")
    raise FileNotFoundError(f"no seed article {doc_id!r} in {[str(d) for d in SEED_DIRS]}")


def _load():
    assert GOLD.exists(), f"gold file missing: {GOLD}"
    rows = []
    for lineno, line in enumerate(GOLD.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:  # pragma: no cover - reported as failure
            pytest.fail(f"line {lineno} does not parse: {e}")
        assert isinstance(obj, dict), f"line {lineno} is not a JSON object"
        rows.append(obj)
    return rows


ROWS = _load()


def _ids(rows):
    return [str(r.get("id", f"line{i}")) for i, r in enumerate(rows, 1)]


def test_file_not_empty_and_ids_unique():
    assert len(ROWS) >= 50
    ids = [r["id"] for r in ROWS]
    dupes = [k for k, v in Counter(ids).items() if v > 1]
    assert not dupes, f"duplicate ids: {dupes}"


def test_at_least_min_unanswerable():
    n = sum(1 for r in ROWS if r.get("type") == "unanswerable")
    assert n >= MIN_UNANSWERABLE, f"only {n} unanswerable questions"


@pytest.mark.parametrize("row", ROWS, ids=_ids(ROWS))
def test_row_schema(row):
    missing = REQUIRED_KEYS - row.keys()
    assert not missing, f"missing keys {missing}"
    assert isinstance(row["id"], str) and row["id"].strip()
    assert isinstance(row["question"], str) and row["question"].strip()
    assert row["type"] in ALLOWED_TYPES, f"bad type {row['type']!r}"
    assert isinstance(row["evidence"], list)
    assert isinstance(row["doc_ids"], list)
    assert isinstance(row["nuggets"], list)
    assert len(row["evidence"]) == len(row["doc_ids"]), "evidence and doc_ids differ in length"
    assert all(isinstance(e, str) and e for e in row["evidence"])
    assert all(isinstance(d, str) and d for d in row["doc_ids"])
    for n in row["nuggets"]:
        assert isinstance(n, list) and n, f"nugget must be a non-empty list: {n!r}"
        assert all(isinstance(a, str) and a.strip() for a in n), f"bad nugget alternative in {n!r}"


@pytest.mark.parametrize("row", ROWS, ids=_ids(ROWS))
def test_answerability(row):
    if row["type"] == "unanswerable":
        assert row["evidence"] == [], "unanswerable question has evidence"
        assert row["doc_ids"] == [], "unanswerable question has doc_ids"
        assert row["nuggets"] == [], "unanswerable question has nuggets"
    else:
        assert len(row["evidence"]) >= 1, "answerable question has no evidence"
        assert len(row["nuggets"]) >= 1, "answerable question has no nuggets"
    if row["type"] == "multi":
        assert len(set(row["doc_ids"])) >= 2, "multi question must span >= 2 articles"


@pytest.mark.parametrize("row", ROWS, ids=_ids(ROWS))
def test_evidence_is_verbatim(row):
    for quote, doc_id in zip(row["evidence"], row["doc_ids"]):
        text = article_text(doc_id)
        assert quote in text, f"quote not found verbatim in {doc_id}: {quote!r}"


@pytest.mark.parametrize("row", ROWS, ids=_ids(ROWS))
def test_nuggets_grounded(row):
    hay = _norm(" ".join(row["evidence"]) + " " + " ".join(article_text(d) for d in dict.fromkeys(row["doc_ids"])))
    for nugget in row["nuggets"]:
        assert any(_norm(alt) in hay for alt in nugget), f"nugget {nugget!r} not found in evidence or named articles"
