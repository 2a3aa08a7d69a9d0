"""The articles to read when labelling a quiz week for eval/gold/watches-realtimeqa.jsonl:

    python -m eval.watch_candidates --week 2022/07/28 [--commit 2022/08/04] [--json]

For each quiz question of the week, among the articles of a commit (by default the question's own
week: published after the previous quiz date, or 7 days before the first, up to its own; or the
week of a later quiz date, `--commit`): its gold article, the articles that contain the correct
choice's words and share at least 30% of the question's rarer words (IDF-weighted), and the 3 that
share the most, each with the sentences that hold the answer or most of the question's words. A reader labels each `notify`
(it states the answer the question asks for) or `read_not`; the other articles of the week are
`no` and a sample of them is read to check that. Retrieval plays no part in which are proposed.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import math
import re
from datetime import date, timedelta

from rag.text import content_stems, sentences

from .eval_watches import DATA

MIN_SHARED = 0.3
TOP = 3


def _plain(text: str | None) -> str:
    return " ".join(re.sub(r"[“”\"‘’']", "", text or "").lower().split())


def candidates(week: str, commit: str | None = None) -> list[dict]:
    with gzip.open(DATA / "corpus.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in f]
    questions = [json.loads(line) for line in (DATA / "dev.jsonl").read_text().splitlines() if line.strip()]
    quiz = sorted({q["date"] for q in questions})
    commit = commit or week
    for day in (week, commit):
        if day not in quiz:
            raise SystemExit(f"{day} is not a quiz date; quiz dates: {', '.join(quiz)}")
    start = _days_before(quiz[0], 7)  # the first week begins a week before its quiz
    i = quiz.index(commit)
    after = quiz[i - 1] if i else start
    arts = [r for r in rows if after < r["published"] <= commit]
    # Word rarity over the whole labelled period, so every week's questions weigh words alike.
    period = [r for r in rows if start < r["published"] <= quiz[-1]]
    stems = {r["id"]: set(content_stems(f"{r['title'] or ''} {r['text']}")) for r in period}
    df = collections.Counter(s for v in stems.values() for s in v)
    by_url = {r["url"]: r["id"] for r in rows}
    out = []
    for q in (q for q in questions if q["date"] == week):
        asked = set(content_stems(q["question"]))
        weight = {s: math.log(1 + len(period) / (1 + df[s])) for s in asked}
        total = sum(weight.values()) or 1.0
        answer = _plain(q["answer"])
        scored = []
        for r in arts:
            shared = sum(weight[s] for s in asked & stems[r["id"]]) / total
            scored.append((shared, answer in _plain(r["text"]) or answer in _plain(r["title"]), r))
        scored.sort(key=lambda t: -t[0])
        top = {r["id"] for _, _, r in scored[:TOP]}
        gold = by_url.get(q["gold_url"])
        picked = [(s, has, r) for s, has, r in scored
                  if r["id"] == gold or r["id"] in top or (has and s >= MIN_SHARED)]
        out.append({"id": q["id"], "question": q["question"], "answer": q["answer"], "gold_doc": gold,
                    "after": after, "through": commit, "week_articles": len(arts), "read": [
                        {"doc": r["id"], "title": r["title"], "shared": round(s, 2), "has_answer": has,
                         "sentences": _evidence(r["text"], asked, answer)} for s, has, r in picked]})
    return out


def _days_before(day: str, n: int) -> str:
    return (date.fromisoformat(day.replace("/", "-")) - timedelta(days=n)).isoformat().replace("-", "/")


def _evidence(text: str, asked: set[str], answer: str) -> list[str]:
    """The two sentences holding the answer's words or most of the question's, in text order."""
    found = [s.text for s in sentences(text)]
    rank = sorted(range(len(found)), key=lambda i: -((answer in _plain(found[i])) * 3 + len(asked & set(content_stems(found[i])))))
    return [" ".join(found[i].split()) for i in sorted(rank[:2])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--week", required=True, help="the questions' quiz date as dev.jsonl writes it, e.g. 2022/06/16")
    ap.add_argument("--commit", help="the quiz date whose week's articles are the commit (default: --week)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    found = candidates(args.week, args.commit)
    if args.json:
        print(json.dumps(found, indent=2, ensure_ascii=False))
        return
    for q in found:
        print(f"=== [{q['id']}] {q['question']}  ANSWER: {q['answer']}  ({q['week_articles']} articles)")
        for c in q["read"]:
            tag = "GOLD" if c["doc"] == q["gold_doc"] else ("ans " if c["has_answer"] else "    ")
            print(f"  - {c['doc']} {tag} shared={c['shared']} | {(c['title'] or '')[:90]}")
            for s in c["sentences"]:
                print(f"      > {s[:300]}")


if __name__ == "__main__":
    main()
