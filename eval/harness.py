"""Run the seeds gold set through the real service and score retrieval and answers."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rag.config import GeneratorKind, RetrievalMode, Settings
from rag.embedding.base import Embedder
from rag.schema import Query, QueryResponse
from rag.service import Service

from . import metrics as m

GOLD = Path(__file__).resolve().parent / "gold" / "seeds.jsonl"
RETRIEVAL_DEPTH = 10  # hit@10, MRR@10 and nDCG@10 need ten passages whatever k the reader sees


@dataclass(frozen=True)
class EvalConfig:
    """One column of the comparison table."""

    mode: RetrievalMode = RetrievalMode.dense
    k: int = 5
    chunk_tokens: int = 200
    generator: GeneratorKind = GeneratorKind.extractive

    @property
    def name(self) -> str:
        name = f"{self.mode.value} k={self.k} chunk={self.chunk_tokens}"
        return name if self.generator is GeneratorKind.extractive else f"{name} {self.generator.value}"


@dataclass
class ConfigResult:
    config: EvalConfig
    metrics: dict[str, float]
    per_question: list[dict] = field(default_factory=list)


def load_gold(path: Path = GOLD) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_seeds(
    configs: list[EvalConfig], embedder: Embedder, seeds_dir: Path, gold: list[dict], base: Settings | None = None
) -> list[ConfigResult]:
    """Each configuration gets its own fresh index of the seeds (chunking may differ)."""
    base = base or Settings()
    results = []
    for chunk_tokens in dict.fromkeys(c.chunk_tokens for c in configs):
        folder = Path(tempfile.mkdtemp(prefix="rag-eval-"))
        try:
            settings = base.model_copy(update={"index_dir": folder, "seeds_dir": seeds_dir, "chunk_tokens": chunk_tokens,
                                               "chunk_overlap": min(base.chunk_overlap, chunk_tokens // 4)})
            service = Service(settings, embedder=embedder)
            service.seed_if_needed()
            for config in (c for c in configs if c.chunk_tokens == chunk_tokens):
                results.append(evaluate(service, config, gold))
            service.close()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    order = {c: i for i, c in enumerate(configs)}
    return sorted(results, key=lambda r: order[r.config])


def evaluate(service: Service, config: EvalConfig, gold: list[dict]) -> ConfigResult:
    documents = {d.id: service.document(d.id).text for d in service.documents()}  # type: ignore[union-attr]
    rows = []
    for item in gold:
        deep = service.ask(Query(question=item["question"], k=max(RETRIEVAL_DEPTH, config.k), answer=False), config.mode)
        t0 = time.perf_counter()
        shown = service.ask(Query(question=item["question"], k=config.k, generator=config.generator), config.mode)
        latency_ms = (time.perf_counter() - t0) * 1000
        rows.append(score_question(item, deep, shown, documents, latency_ms))
    return ConfigResult(config, summarise(rows), rows)


def score_question(item: dict, deep: QueryResponse, shown: QueryResponse, documents: dict[str, str], latency_ms: float) -> dict:
    texts = [p.text for p in deep.passages]
    evidence = item["evidence"]
    rank = m.first_hit_rank(texts, evidence)
    answer = shown.answer.text if shown.answer else ""
    by_rank = {p.rank: p.text for p in shown.passages}
    row = {
        "id": item["id"], "type": item["type"], "unanswerable": item["type"] == "unanswerable",
        "answerable": shown.answerable, "latency_ms": latency_ms, "first_hit": rank,
        "distinct_docs@5": m.distinct_docs_at([p.doc_id for p in deep.passages], 5), "answer": answer,
        "fallback": bool(shown.answer and shown.answer.fallback),
        "fallback_reason": shown.answer.fallback_reason if shown.answer else None,
        "unsupported": shown.answer.unsupported if shown.answer else 0,
    }
    if evidence:
        row |= {
            "hit@1": m.hit_at(rank, 1), "hit@5": m.hit_at(rank, 5), "hit@10": m.hit_at(rank, 10),
            "rr@10": m.reciprocal_rank(rank, 10), "ndcg@10": m.ndcg_at(texts, evidence, 10),
            "evidence_recall@5": m.evidence_recall_at(texts, evidence, 5),
            "nugget_recall": m.nugget_recall(answer, item["nuggets"]) if shown.answerable else 0.0,
            "citation_support": m.citation_support(answer, by_rank, evidence) if shown.answerable else None,
        }
    if shown.answerable:
        passages = [p.model_dump() for p in shown.passages]
        row["citation_validity"] = m.citation_validity(answer, passages, documents)
    return row


def summarise(rows: list[dict]) -> dict[str, float]:
    answerable = [r for r in rows if not r["unanswerable"]]
    multi = [r for r in rows if r["type"] == "multi"]

    def avg(key: str, pool: list[dict]) -> float:
        return m.mean(r[key] for r in pool if r.get(key) is not None)

    pairs = [(r["unanswerable"], r["answerable"]) for r in rows]
    lat = [r["latency_ms"] for r in rows]
    return {
        "hit@1": avg("hit@1", answerable), "hit@5": avg("hit@5", answerable), "hit@10": avg("hit@10", answerable),
        "mrr@10": avg("rr@10", answerable), "ndcg@10": avg("ndcg@10", answerable),
        "evidence_recall@5": avg("evidence_recall@5", answerable),
        "multi_distinct_docs@5": avg("distinct_docs@5", multi),
        "nugget_recall": avg("nugget_recall", answerable),
        "citation_validity": avg("citation_validity", rows), "citation_support": avg("citation_support", answerable),
        "refusal_accuracy": m.refusal_accuracy(pairs), "false_refusal_rate": m.false_refusal_rate(pairs),
        "latency_p50_ms": m.percentile(lat, 50), "latency_p95_ms": m.percentile(lat, 95),
        "seconds_per_answer": m.mean(lat) / 1000,
        # drafted answers: how often the extractive answer stepped in, and sentences left out as unsupported
        "fallback_rate": m.mean(float(r["fallback"]) for r in rows),
        "unsupported_sentences": float(sum(r["unsupported"] for r in rows)),
        "questions": float(len(rows)),
    }
