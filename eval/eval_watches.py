"""How well standing questions notify: RealTime QA weeks replayed as commits, scored against
hand labels (eval/gold/watches-realtimeqa.jsonl).

    python -m eval.eval_watches [--weeks 6] [--json] [--out FILE]

A fresh index holds the week before the first quiz week. Then, week by week: that week's quiz
questions become watches whose webhook is a receiver on loopback (it verifies every signature with
`standardwebhooks`), and the week's articles go in as one commit. Each question stands over its
own week's commit (which holds its gold article) and the next week's (mostly other news; the
label says which articles still answer it), then it is removed. After each commit a republished
copy of every article a delivery named is committed too: it must send nothing.

Scored per (question, commit, article of the commit): notified means the article is among the
`documents` of a delivery; the label says whether the article states the answer the question asks
for (`notify`). The articles read and judged: those the labelling rule proposes (eval/
watch_candidates.py: the gold article, the articles that contain the answer's words and share the
question's rarer words, and the 3 sharing most) and any the service named that the rule had not
proposed (`read_when_named`); the other articles of the commit are no (a sample of them was read
to check that). Precision and recall over those pairs, and per judgement (a delivery naming at
least one labelled article), for the whole set, for its two halves (alternate questions, so a bar
chosen on one half is judged on the other) and for each kind of commit. The sweep applies
stricter watch bars (`min_relevance`: the best cosine of the question and a cited passage's stored
chunks) to the same deliveries; a delivery's bar does not change what the watch is sent next
(only an answer repeating the last one is held back), so this is what watches made with that bar
would have been sent, short of a later answer that repeats one the bar held back.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from standardwebhooks import Webhook

from rag.config import Settings
from rag.ingestion.documents import Document, document_from_record
from rag.service import Service
from rag.watches import WatchIn

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "realtimeqa-2022"
GOLD = ROOT / "eval" / "gold" / "watches-realtimeqa.jsonl"
BARS = [0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7]
COPY_NOTE = "\n\nThis story was first published by another news outlet."


class Receiver:
    """A webhook on loopback: each delivery verified with the watch's secret, kept by webhook-id."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.got: dict[str, dict] = {}
        self.bad = 0
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                owner.receive(body, headers)
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def receive(self, body: bytes, headers: dict[str, str]) -> None:
        try:
            watch_id = json.loads(body)["data"]["watch_id"]
            payload = Webhook(self.secrets[watch_id]).verify(body, headers)
        except Exception:  # a signature that does not verify, or a body that is not ours
            with self.lock:
                self.bad += 1
            return
        with self.lock:
            self.got[headers["webhook-id"]] = payload

    def wait_for(self, ids: set[str], timeout_s: float = 120.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if ids <= self.got.keys():
                    return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def load(weeks: int) -> tuple[list[dict], dict[str, list[dict]], list[dict]]:
    """(the gold rows of the first `weeks` quiz weeks' questions over the commits replayed, the
    corpus articles of each replayed week, the articles of the week before the first)."""
    gold = [json.loads(line) for line in GOLD.read_text().splitlines() if line.strip()]
    chosen = sorted({g["quiz_date"] for g in gold})[:weeks]
    gold = [g for g in gold if g["quiz_date"] in chosen and g["through"] in chosen]
    with gzip.open(DATA / "corpus.jsonl.gz", "rt") as f:
        corpus = sorted((json.loads(line) for line in f), key=lambda r: (r["published"], r["id"]))
    spans = {g["through"]: g["after"] for g in gold}
    by_week = {w: [r for r in corpus if a < r["published"] <= w] for w, a in spans.items()}
    first_after = spans[chosen[0]]
    before = (date.fromisoformat(first_after.replace("/", "-")) - timedelta(days=7)).isoformat().replace("-", "/")
    base = [r for r in corpus if before < r["published"] <= first_after]
    return gold, by_week, base


def cited_relevance(service: Service, vector: np.ndarray, passages: list[dict]) -> float:
    """The best cosine of the question and a cited passage's chunks as the index stores them."""
    store = service.index.store
    vids = []
    for p in passages:
        chunks = store.chunks_by_vid(store.chunk_vids(p["doc_id"])).values()
        vids += [c.vid for c in chunks if c.start >= p["start"] and c.end <= p["end"]]
    vecs = service.index.vectors_present(vids)
    return max((float(v @ vector) for v in vecs.values()), default=0.0)


def copy_of(record: dict) -> Document:
    """A republished copy: another id, address and headline, one sentence added."""
    doc = document_from_record(record, "realtimeqa")
    return Document(
        f"{doc.id}-copy", doc.text + COPY_NOTE, f"Republished: {doc.title or 'a story'}",
        f"https://republished.example/{doc.id}", doc.published,
    )


def replay(weeks: int, on_week=None) -> dict:  # type: ignore[no-untyped-def]
    """Run the replay; returns what each watch was sent at each commit it stood over."""
    gold, by_week, base = load(weeks)
    rows = {(g["id"], g["through"]): g for g in gold}
    receiver = Receiver()
    out: dict = {"weeks": [], "watches": []}
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        service = Service(Settings(index_dir=Path(tmp) / "index", fetch_allow_private=True))
        t0 = time.perf_counter()
        service.ingest([document_from_record(r, "realtimeqa") for r in base])
        out["base"] = {"articles": len(base), "seconds": round(time.perf_counter() - t0, 1)}
        standing: dict[str, dict] = {}  # watch id -> the question's gold row of its own week
        for week in sorted(by_week):
            for g in (g for g in gold if g["through"] == week and g["commit"] == "own"):
                w = service.watches.add(WatchIn(question=g["question"], url=receiver.url))
                receiver.secrets[w.id] = w.secret
                standing[w.id] = g
            # A question stands over its own week's commit and the next one, where both are labelled.
            judged = {wid: rows[(g["id"], week)] for wid, g in standing.items() if (g["id"], week) in rows}
            seen = {wid: {e.id for e in service.watches.events(wid)} for wid in standing}
            articles = by_week[week]
            t0 = time.perf_counter()
            service.ingest([document_from_record(r, "realtimeqa") for r in articles])
            seconds = time.perf_counter() - t0
            events = {wid: [e for e in service.watches.events(wid) if e.id not in seen[wid]] for wid in standing}
            ids = {e.id for es in events.values() for e in es}
            arrived = receiver.wait_for(ids)
            vectors = dict(zip(judged, np.asarray(
                service.embedder.encode([g["question"] for g in judged.values()]), dtype=np.float32)))
            named: set[str] = set()
            for wid, g in judged.items():
                data = [receiver.got[e.id]["data"] for e in events[wid] if e.id in receiver.got]
                docs = sorted({d for x in data for d in x["documents"]})
                named.update(docs)
                out["watches"].append({
                    "id": g["id"], "commit": g["commit"], "through": week, "articles": [r["id"] for r in articles],
                    "documents": docs, "deliveries": len(data),
                    "relevance": round(max((cited_relevance(service, vectors[wid], x["passages"]) for x in data),
                                           default=0.0), 6),
                })
            # Republished copies of every article a delivery named: folded, so nothing is sent.
            records = {r["id"]: r for r in articles}
            before_copies = {e.id for wid in standing for e in service.watches.events(wid)}
            t1 = time.perf_counter()
            report = service.ingest([copy_of(records[d]) for d in sorted(named)])
            folded = sum(1 for r in service.index.store.documents_by_id(report.added).values() if r.dup_of)
            after = {e.id for wid in standing for e in service.watches.events(wid)}
            out["weeks"].append({
                "week": week, "watches": len(judged), "articles": len(articles), "commit_s": round(seconds, 1),
                "deliveries": len(ids), "all_arrived": arrived, "copies": len(report.added), "copies_folded": folded,
                "copies_notified": len(after - before_copies), "copies_s": round(time.perf_counter() - t1, 1),
            })
            for wid, g in list(standing.items()):
                if g["through"] != week:  # it has stood over its own week and this one
                    service.watches.delete(wid)
                    del standing[wid]
            if on_week is not None:
                on_week(out["weeks"][-1])
        service.close()
    receiver.close()
    out["bad_signatures"] = receiver.bad
    out["seconds"] = round(time.perf_counter() - t_all, 1)
    out["gold"] = {f"{g['id']} {g['through']}": g for g in gold}
    return out


def score(watches: list[dict], gold: dict[str, dict], bar: float = 0.0) -> dict:
    """Pair and watch precision/recall of the deliveries whose cited relevance reaches `bar`."""
    tp = fp = fn = 0
    w_sent = w_right = w_should = w_found = gold_hits = 0
    for w in watches:
        g = gold[f"{w['id']} {w['through']}"]
        labels = set(g["notify"])
        sent = set(w["documents"]) if w["documents"] and w["relevance"] >= bar else set()
        tp += len(sent & labels)
        fp += len(sent - labels)
        fn += len(labels - sent)
        w_sent += bool(sent)
        w_right += bool(sent & labels)
        w_should += bool(labels)
        w_found += bool(sent & labels)
        gold_hits += g["gold_doc"] in sent
    p = tp / (tp + fp) if tp + fp else float("nan")
    r = tp / (tp + fn) if tp + fn else float("nan")
    return {
        "bar": bar, "watches": len(watches), "pairs": sum(len(w["articles"]) for w in watches), "labelled": tp + fn,
        "notified_pairs": tp + fp, "precision": p, "recall": r,
        "f1": 2 * p * r / (p + r) if tp and p + r else 0.0,
        "watches_notified": w_sent, "watch_precision": w_right / w_sent if w_sent else float("nan"),
        "watch_recall": w_found / w_should if w_should else float("nan"), "gold_doc_notified": gold_hits,
    }


def summarise(run: dict, bars: list[float]) -> dict:
    """Scores as configured and under each stricter bar, for all watches and each half, for both
    commits together and apart; the bar with the best F1 on half A, judged on half B."""
    gold = run["gold"]
    questions = sorted({w["id"] for w in run["watches"]})
    half = {q: "A" if i % 2 == 0 else "B" for i, q in enumerate(questions)}  # a question's commits stay together

    def sets(ws: list[dict]) -> dict[str, list[dict]]:
        return {"all": ws, "A": [w for w in ws if half[w["id"]] == "A"], "B": [w for w in ws if half[w["id"]] == "B"]}

    every = sets(run["watches"])
    summary = {
        "as_configured": {k: score(ws, gold) for k, ws in every.items()},
        "by_commit": {c: score([w for w in run["watches"] if w["commit"] == c], gold) for c in ("own", "next")},
        "sweep": [{"bar": b, **{k: score(ws, gold, b) for k, ws in every.items()}} for b in bars],
    }
    best_a = max(summary["sweep"], key=lambda s: (s["A"]["f1"], -s["bar"]))
    summary["chosen_on_A"] = {"bar": best_a["bar"], "A": best_a["A"], "B": best_a["B"]}
    unread = sorted(
        (w["id"], w["through"], d) for w in run["watches"] for d in w["documents"]
        if d not in gold[f"{w['id']} {w['through']}"]["notify"] and d not in gold[f"{w['id']} {w['through']}"]["read_not"]
    )
    summary["notified_but_not_read"] = [" ".join(u) for u in unread]
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weeks", type=int, default=6, help="quiz weeks replayed, from the first (1..12 labelled: 6)")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    ap.add_argument("--out", type=Path, help="also write the run (every watch's deliveries) and summary here")
    args = ap.parse_args()
    if not (DATA / "corpus.jsonl.gz").exists():
        print(f"RealTime QA data not found at {DATA}", file=sys.stderr)
        raise SystemExit(2)
    run = replay(args.weeks, on_week=lambda w: print(json.dumps(w), file=sys.stderr, flush=True))
    summary = summarise(run, BARS)
    meta = {k: run[k] for k in ("base", "weeks", "bad_signatures", "seconds")}
    if args.out:
        args.out.write_text(json.dumps({**meta, "watches": run["watches"], "summary": summary}, indent=2))
    if args.json:
        print(json.dumps({**meta, "summary": summary}, indent=2))
        return
    c = {**summary["as_configured"], **{f"{k} commit": v for k, v in summary["by_commit"].items()}}
    print(f"{len({w['id'] for w in run['watches']})} standing questions, {len(run['watches'])} (question, commit) "
          f"judgements over {len(meta['weeks'])} weekly commits ({sum(w['articles'] for w in meta['weeks'])} articles; "
          f"archive {meta['base']['articles']}), {meta['seconds']} s; bad signatures {meta['bad_signatures']}")
    print("set          pairs  labelled  notified  precision  recall  F1     watches notified  watch precision  watch recall")
    for h in ("all", "A", "B", "own commit", "next commit"):
        s = c[h]
        print(f"{h:<11} {s['pairs']:>6}  {s['labelled']:>8}  {s['notified_pairs']:>8}  {s['precision']:>9.3f}  "
              f"{s['recall']:>6.3f}  {s['f1']:.3f}  {s['watches_notified']:>16}  {s['watch_precision']:>15.3f}  "
              f"{s['watch_recall']:>12.3f}")
    copies = sum(w["copies"] for w in meta["weeks"])
    print(f"republished copies: {copies} committed, {sum(w['copies_folded'] for w in meta['weeks'])} folded, "
          f"{sum(w['copies_notified'] for w in meta['weeks'])} deliveries")
    print("bar    all P/R/F1          A P/R/F1            B P/R/F1")
    for s in summary["sweep"]:
        print(f"{s['bar']:<5}  " + "  ".join(f"{s[h]['precision']:.3f}/{s[h]['recall']:.3f}/{s[h]['f1']:.3f}"
                                             for h in ("all", "A", "B")))
    ch = summary["chosen_on_A"]
    print(f"best F1 on A at bar {ch['bar']}: A {ch['A']['f1']:.3f}, B {ch['B']['f1']:.3f}")
    if summary["notified_but_not_read"]:
        print("notified pairs no one has read yet:", ", ".join(summary["notified_but_not_read"]))


if __name__ == "__main__":
    main()
