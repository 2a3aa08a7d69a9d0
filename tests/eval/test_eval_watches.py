"""The standing-question evaluation: its scoring by hand, and the labelled set's consistency with
the RealTime QA corpus it labels (each labelled article in its commit's week)."""

from __future__ import annotations

import gzip
import json
import math

import pytest

from eval import eval_watches as ev


def _gold(qid: str, through: str, notify: list[str], read_not: list[str] = (), gold_doc: str = "g") -> dict:
    return {"id": qid, "through": through, "notify": list(notify), "read_not": list(read_not), "gold_doc": gold_doc}


def test_pairs_and_judgements_are_scored_by_hand():
    gold = {
        "q1 w1": _gold("q1", "w1", ["g", "x"], gold_doc="g"),
        "q1 w2": _gold("q1", "w2", []),
        "q2 w1": _gold("q2", "w1", ["h"], gold_doc="h"),
    }
    watches = [
        {"id": "q1", "through": "w1", "commit": "own", "articles": ["g", "x", "y", "z"], "documents": ["g", "y"],
         "relevance": 0.7},
        {"id": "q1", "through": "w2", "commit": "next", "articles": ["a", "b"], "documents": ["a"], "relevance": 0.3},
        {"id": "q2", "through": "w1", "commit": "own", "articles": ["g", "x", "y", "z"], "documents": [],
         "relevance": 0.0},
    ]
    s = ev.score(watches, gold)
    assert (s["pairs"], s["labelled"], s["notified_pairs"]) == (10, 3, 3)
    assert s["precision"] == pytest.approx(1 / 3) and s["recall"] == pytest.approx(1 / 3)
    assert s["watches_notified"] == 2 and s["watch_precision"] == 0.5 and s["watch_recall"] == 0.5
    assert s["gold_doc_notified"] == 1
    stricter = ev.score(watches, gold, bar=0.5)  # the next week's delivery (0.3) is held back
    assert stricter["notified_pairs"] == 2 and stricter["precision"] == 0.5 and stricter["watch_precision"] == 1.0
    nothing = ev.score(watches, gold, bar=0.9)
    assert nothing["notified_pairs"] == 0 and math.isnan(nothing["precision"]) and nothing["f1"] == 0.0


def test_halves_keep_a_questions_commits_together_and_unread_pairs_are_listed():
    gold = {f"q{i} w{c}": _gold(f"q{i}", f"w{c}", [f"d{i}"]) for i in range(4) for c in (1, 2)}
    watches = [{"id": f"q{i}", "through": f"w{c}", "commit": "own" if c == 1 else "next", "articles": [f"d{i}", "n"],
                "documents": [f"d{i}"] if c == 1 else ["n"], "relevance": 0.6} for i in range(4) for c in (1, 2)]
    s = ev.summarise({"gold": gold, "watches": watches}, [0.2, 0.5])
    assert s["as_configured"]["A"]["watches"] == s["as_configured"]["B"]["watches"] == 4
    assert s["by_commit"]["own"]["precision"] == 1.0 and s["by_commit"]["next"]["precision"] == 0.0
    assert s["notified_but_not_read"] == [f"q{i} w2 n" for i in range(4)]
    assert s["chosen_on_A"]["bar"] == 0.2


@pytest.mark.skipif(not (ev.DATA / "corpus.jsonl.gz").exists(), reason="RealTime QA data not present")
def test_the_labelled_set_names_articles_of_each_commits_week():
    rows = [json.loads(line) for line in ev.GOLD.read_text().splitlines() if line.strip()]
    with gzip.open(ev.DATA / "corpus.jsonl.gz", "rt") as f:
        published = {r["id"]: r["published"] for r in map(json.loads, f)}
    questions = {json.loads(line)["id"] for line in (ev.DATA / "dev.jsonl").read_text().splitlines() if line.strip()}
    assert len({(r["id"], r["commit"]) for r in rows}) == len(rows)
    for r in rows:
        assert r["id"] in questions and r["commit"] in ("own", "next")
        assert not set(r["notify"]) & set(r["read_not"])
        for d in r["notify"] + r["read_not"]:
            assert r["after"] < published[d] <= r["through"], (r["id"], d)
        if r["commit"] == "own":
            assert r["through"] == r["quiz_date"]
            assert r["gold_doc"] in r["notify"] or "gold page" in r.get("note", ""), r["id"]
        else:
            assert r["through"] > r["quiz_date"]
    own = [r for r in rows if r["commit"] == "own"]
    assert len(own) >= 50 and sum(len(r["notify"]) for r in own) > len(own)
