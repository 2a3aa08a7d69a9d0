"""`rag eval`: parse configurations, run the seeds gold set or a benchmark, write reports."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from rag.config import GeneratorKind, RetrievalMode, Settings

from . import report
from .harness import GOLD, EvalConfig, load_gold, run_seeds


class EvalError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Outcome:
    metrics: dict  # one config: its metrics; several: {config name: metrics}
    text: str
    rows: dict[str, dict[str, float]]

    def below(self, floors: dict[str, float | None]) -> list[str]:
        return [
            f"{name}: {key} {row[key]:.3f} < {floor}"
            for name, row in self.rows.items()
            for key, floor in floors.items()
            if floor is not None and key in row and row[key] < floor
        ]


def parse_config(spec: str, base: EvalConfig) -> EvalConfig:
    """'mode=hybrid,k=5,chunk=200' -> EvalConfig; unknown keys or values say what is valid."""
    values: dict = {"mode": base.mode, "k": base.k, "chunk_tokens": base.chunk_tokens}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, _, value = part.partition("=")
        key = {"chunk": "chunk_tokens"}.get(key.strip(), key.strip())
        try:
            if key == "mode":
                values["mode"] = RetrievalMode(value.strip())
            elif key in ("k", "chunk_tokens"):
                values[key] = int(value)
            else:
                raise EvalError(f"unknown setting {key!r} in {spec!r}; use mode, k, chunk", 2)
        except ValueError:
            valid = ", ".join(m.value for m in RetrievalMode) if key == "mode" else "an integer"
            raise EvalError(f"bad value {value!r} for {key} in {spec!r}; valid: {valid}", 2) from None
    return EvalConfig(**values)


def with_generator(configs: list[EvalConfig], generator: str) -> list[EvalConfig]:
    """Each configuration twice: with the extractive answer, then with `generator` beside it."""
    try:
        kind = GeneratorKind(generator)
    except ValueError:
        valid = ", ".join(g.value for g in GeneratorKind)
        raise EvalError(f"unknown generator {generator!r}; valid: {valid}", 2) from None
    if kind is GeneratorKind.extractive:
        return configs
    return [x for c in configs for x in (c, replace(c, generator=kind))]


def run_eval(
    compare: list[str], benchmark: str | None, corpus: Path | None, questions: Path | None, index: Path | None,
    gold: Path | None, results: Path, progress: Callable[[int], Callable[[int], None] | None] | None = None,
    generator: str | None = None,
) -> Outcome:
    settings = Settings()
    base = EvalConfig(settings.retrieval_mode, settings.top_k, settings.chunk_tokens)
    configs = [parse_config(s, base) for s in compare] or [base]
    if generator is not None:
        configs = with_generator(configs, generator)
    if benchmark is None:
        return _seeds(configs, settings, gold or GOLD, results)
    if benchmark != "realtimeqa":
        raise EvalError(f"unknown benchmark {benchmark!r}; valid: realtimeqa", 2)
    return _realtimeqa(configs, settings, corpus, questions, index, results, progress)


def _seeds(configs: list[EvalConfig], settings: Settings, gold_path: Path, results: Path) -> Outcome:
    from rag.embedding import load_embedder

    if not gold_path.exists():
        raise EvalError(f"gold set {gold_path} not found")
    embedder = load_embedder(settings.embed_model, settings.embed_backend, settings.cache_dir)
    done = run_seeds(configs, embedder, settings.seeds_dir, load_gold(gold_path), settings)
    rows = {r.config.name: r.metrics for r in done}
    details = {r.config.name: r.per_question for r in done}
    return _finish("seeds", rows, details, results, embedding=report.embedding_identity(embedder.identity))


def _realtimeqa(
    configs: list[EvalConfig], settings: Settings, corpus: Path | None, questions: Path | None, index: Path | None,
    results: Path, progress,  # type: ignore[no-untyped-def]
) -> Outcome:
    from rag.service import Service

    from . import realtimeqa as rt

    paths = rt.BenchmarkPaths(corpus or rt.CORPUS, questions or rt.QUESTIONS)
    if paths.missing():
        raise EvalError(f"RealTime QA data not found ({', '.join(map(str, paths.missing()))}); skipping", 0)
    folder = index or settings.index_dir.parent / "index" / "realtimeqa" if index is None else index
    service = Service(settings.model_copy(update={"index_dir": folder, "chunk_tokens": configs[0].chunk_tokens}))
    ingest_s = rt.ensure_ingested(service, paths.corpus, on_progress=progress(5000) if progress else None)
    qs = rt.load_questions(paths.questions)
    rows, details = {}, {}
    for config in configs:
        generator = None if config.generator is GeneratorKind.extractive else config.generator
        # as of the quiz date with the question's named time as a prior (the default) and without
        # it, side by side; then as of now
        for as_of, window in ((True, True), (True, False), (False, True)):
            t0 = time.perf_counter()
            row, per_question = rt.run(service, qs, config.mode, as_of=as_of, generator=generator, time_window=window)
            row["seconds"] = time.perf_counter() - t0
            name = f"{config.mode.value} chunk={config.chunk_tokens}" + (f" {generator.value}" if generator else "")
            name += (" as_of=quiz date" + ("" if window else " time_window=off")) if as_of else " as_of=now"
            rows[name], details[name] = row, per_question
    for row in rows.values():
        row["ingest_seconds"] = ingest_s if ingest_s is not None else float("nan")
        row["chunks"] = float(service.health().chunks)
    return _finish("realtimeqa", rows, details, results, {"published_mc_accuracy": rt.BASELINES},
                   report.embedding_identity(service.embedder.identity))


def _finish(
    name: str, rows: dict[str, dict[str, float]], details: dict, results: Path,
    baselines: dict[str, dict[str, float]] | None = None, embedding: dict[str, str] | None = None,
) -> Outcome:
    written = report.write(results, name, rows, details, baselines, embedding)
    text = report.table(rows)
    for title, values in (baselines or {}).items():
        text += "\n\n" + report.baseline_table(title, values)
    if embedding:
        text += "\n\n" + report.identity_line(embedding)
    text += "\n\nreports: " + ", ".join(str(p) for p in written)
    metrics = next(iter(rows.values())) if len(rows) == 1 else dict(rows)
    return Outcome(metrics | (baselines or {}) | ({"embedding": embedding} if embedding else {}), text, rows)
