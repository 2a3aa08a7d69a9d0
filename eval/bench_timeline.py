"""Story timelines on RealTime QA: quiz questions' timelines over a small ingested subset, their
event dates read against their articles' dates, and the time a timeline takes.

    python -m eval.bench_timeline [--questions 40] [--neighbours 5] [--index DIR] [--json]
    python -m eval.bench_timeline --held-out [--story-share 0.6] [--index DIR] [--json]

The subset: the gold articles of `--questions` quiz questions spread evenly over the 112, and for
each the `--neighbours` articles of its quiz week (the 7 days up to the quiz date) that share the
most content words with the question: the same story told elsewhere, or another story of that
week. It is ingested once into `--index` (again only when the subset changes); without
`--index`, into a temporary folder. Each question's timeline is built as of its quiz date, with
the default k.

Event dates are the earliest article's date by construction, so what is reported is what that
leaves open: whether events come oldest first and each event's articles lie within
EVENT_DAYS of its date (both checks, expected 1.0); how many days and articles an event spans; how
often the quiz's gold article is on the timeline, how many days after its event's date it was
published and whether it gives the event's key sentence; whether every key sentence sits at its
offsets; how often the quiz's answer is in the key sentence of the gold article's event (or of
any event); and the time per timeline (p50, p90).

`--held-out` runs the same report on the other questions (72 of 112 by default) and their
neighbours instead: the set the timeline's constants were read on (rag/retrieval/timeline.py),
kept apart from the figures; `--story-share` sets STORY_SHARE for a sweep.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from eval import metrics as m  # noqa: E402
from eval import realtimeqa as rt  # noqa: E402
from rag.retrieval.timeline import EVENT_DAYS  # noqa: E402
from rag.schema import TimelineQuery, TimelineResponse  # noqa: E402
from rag.text import content_stems  # noqa: E402

WEEK_DAYS = 7


def _day(published: str) -> date:
    return date.fromisoformat(published[:10].replace("/", "-"))


def sample(questions: list[dict], n: int) -> list[dict]:
    """`n` questions spread evenly over the list (its order is the quiz weeks')."""
    n = min(n, len(questions))
    return [questions[round(i * (len(questions) - 1) / max(1, n - 1))] for i in range(n)] if n > 1 else questions[:n]


def subset(corpus: Path, picked: list[dict], neighbours: int) -> list[str]:
    """The corpus lines to ingest: each picked question's gold article and its `neighbours` quiz-week
    articles sharing most content words with the question (ties by id), in corpus order."""
    with gzip.open(corpus, "rt", encoding="utf-8") as fh:
        lines = [line for line in fh if line.strip()]
    rows = [json.loads(line) for line in lines]
    stems: dict[int, set[str]] = {}

    def words_of(i: int) -> set[str]:
        if i not in stems:
            stems[i] = set(content_stems(f"{rows[i].get('title') or ''} {rows[i]['text']}"))
        return stems[i]

    keep: set[int] = set()
    for q in picked:
        end = _day(q["date"])
        keep |= {i for i, r in enumerate(rows) if r.get("url") == q["gold_url"]}
        week = [i for i, r in enumerate(rows)
                if end - timedelta(days=WEEK_DAYS - 1) <= _day(r["published"]) <= end and r.get("url") != q["gold_url"]]
        asked = set(content_stems(q["question"]))
        week.sort(key=lambda i: (-len(asked & words_of(i)), rows[i]["id"]))
        keep |= set(week[:neighbours])
    return [lines[i] for i in sorted(keep)]


def score(q: dict, r: TimelineResponse, texts: dict[str, str], sources: dict[str, str | None]) -> dict:
    """One timeline's row."""
    events = r.events
    days = [e.date for e in events]
    spans, sizes, within = [], [], True
    gold_event = gold_after = gold_key = None
    for e in events:
        article_days = [_day(a.published) for a in e.articles if a.published]
        within &= all(0 <= (d - e.date).days <= EVENT_DAYS for d in article_days) and min(article_days) == e.date
        spans.append((max(article_days) - e.date).days)
        sizes.append(len(e.articles))
        for a in e.articles:
            if q["gold_url"] in (a.source, *(sources.get(c) for c in a.also_in)):
                gold_event, gold_after = e, (_day(a.published or "") - e.date).days
                gold_key = e.sentence.doc_id in (a.doc_id, *a.also_in)
    return {
        "id": q["id"], "answerable": r.answerable, "events": len(events),
        "articles": sum(sizes), "in_order": days == sorted(days), "within_event_days": within,
        "offsets_exact": all(texts[e.sentence.doc_id][e.sentence.start : e.sentence.end] == e.sentence.text for e in events),
        "event_spans_days": spans, "event_sizes": sizes,
        "gold_on_timeline": gold_event is not None, "gold_days_after_event": gold_after, "gold_gives_key": gold_key,
        "answer_in_gold_event_key": gold_event is not None and m.contains(gold_event.sentence.text, q["answer"]),
        "answer_in_a_key": any(m.contains(e.sentence.text, q["answer"]) for e in events),
    }


def summarise(rows: list[dict], ms: list[float], articles: int, chunks: int, ingest_s: float | None) -> dict:
    spans = [s for r in rows for s in r["event_spans_days"]]
    sizes = [s for r in rows for s in r["event_sizes"]]
    on = [r for r in rows if r["gold_on_timeline"]]
    after = [r["gold_days_after_event"] for r in on]
    share = lambda xs: round(sum(map(bool, xs)) / len(xs), 3) if xs else None  # noqa: E731
    return {
        "questions": len(rows), "subset_articles": articles, "subset_chunks": chunks, "ingest_s": ingest_s,
        "event_days": EVENT_DAYS,
        "checks": {
            "events_oldest_first": share([r["in_order"] for r in rows]),
            "articles_within_event_days": share([r["within_event_days"] for r in rows]),
            "key_sentence_offsets_exact": share([r["offsets_exact"] for r in rows]),
        },
        "answerable": share([r["answerable"] for r in rows]),
        "events_per_timeline_mean": round(statistics.mean(r["events"] for r in rows), 2),
        "articles_per_timeline_mean": round(statistics.mean(r["articles"] for r in rows), 2),
        "articles_per_event_mean": round(statistics.mean(sizes), 2) if sizes else None,
        "events_with_several_articles": share([s > 1 for s in sizes]),
        "event_span_days": {str(d): spans.count(d) for d in range(EVENT_DAYS + 1)},
        "gold_on_timeline": share([r["gold_on_timeline"] for r in rows]),
        "gold_published_on_its_event_date": share([a == 0 for a in after]),
        "gold_days_after_its_event_date_mean": round(statistics.mean(after), 3) if after else None,
        "gold_gives_its_event_key_sentence": share([r["gold_gives_key"] for r in on]),
        "answer_in_gold_event_key_sentence": share([r["answer_in_gold_event_key"] for r in rows]),
        "answer_in_a_key_sentence": share([r["answer_in_a_key"] for r in rows]),
        "timeline_ms_p50": round(statistics.median(ms), 1),
        "timeline_ms_p90": round(sorted(ms)[int(0.9 * (len(ms) - 1))], 1),
    }


def run(args: argparse.Namespace) -> dict:
    from rag.config import Settings
    from rag.service import Service

    from rag.retrieval import timeline

    every = rt.load_questions(rt.QUESTIONS)
    questions = sample(every, args.questions)
    if args.held_out:
        picked = {q["id"] for q in questions}
        questions = [q for q in every if q["id"] not in picked]
    if args.story_share is not None:
        timeline.STORY_SHARE = args.story_share
    folder = Path(args.index) if args.index else Path(tempfile.mkdtemp(prefix="bench-timeline-"))
    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "subset.jsonl"
    lines = subset(rt.CORPUS, questions, args.neighbours)
    if not corpus.exists() or corpus.read_text(encoding="utf-8") != "".join(lines):
        corpus.write_text("".join(lines), encoding="utf-8")
    service = Service(Settings(index_dir=folder / "index", seeds_dir=folder / "no-seeds"))
    try:
        ingest_s = rt.ensure_ingested(service, corpus)
        docs = {d.id: d for d in service.documents()}
        texts = {d: service.document(d).text for d in docs}  # type: ignore[union-attr]
        sources = {d: s.source for d, s in docs.items()}
        service.timeline(TimelineQuery(question="warm-up", as_of=questions[0]["date"]))
        rows, ms = [], []
        for q in questions:
            t0 = time.perf_counter()
            r = service.timeline(TimelineQuery(question=q["question"], as_of=q["date"]))
            ms.append((time.perf_counter() - t0) * 1000)
            rows.append(score(q, r, texts, sources))
        report = summarise(rows, ms, len(docs), service.health().chunks, ingest_s)
        report["questions_set"] = "held out" if args.held_out else "sampled"
        report["story_share"] = timeline.STORY_SHARE
        if args.rows:
            report["rows"] = rows
        return report
    finally:
        service.close()
        if not args.index:
            shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--questions", type=int, default=40, help="quiz questions, spread over the 112 (default 40)")
    parser.add_argument("--neighbours", type=int, default=5, help="quiz-week articles added per question (default 5)")
    parser.add_argument("--index", default=None, help="keep the subset's index here (reused when the subset is the same)")
    parser.add_argument("--held-out", action="store_true", help="the questions not sampled (where the constants were read)")
    parser.add_argument("--story-share", type=float, default=None, help="override STORY_SHARE (default: the module's)")
    parser.add_argument("--rows", action="store_true", help="add every question's row")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of the indented report")
    args = parser.parse_args()
    report = run(args)
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
