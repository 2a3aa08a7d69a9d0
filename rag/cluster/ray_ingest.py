"""Backfills on Ray: Ray Data reads the documents, chunks them on CPU tasks and embeds them in an
actor pool (one actor per GPU, else one per RAG_RAY_CPUS_PER_ACTOR CPUs); the batches stream back,
in input order, to the one process that writes the index (`Ingestor.ingest(..., remote=...)`).

Ray retries what a lost node was running (its tasks and actors restart elsewhere), and the driver
keeps each document's chunks by ordinal, so a retried batch can neither lose nor double a chunk.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import SecretStr

from ..config import Settings
from .connect import RayUnavailable, connect
from ..ingestion.chunking import Chunk, Chunker, chunker_for
from ..ingestion.documents import Document
from ..ingestion.pipeline import model_identity
from ..text import context_text

CHUNK_CPUS = 0.25  # a chunking task is light; what it leaves is the embedding actors'
CHUNK_BATCH_DOCS = 16
EMBED_BATCH_CHUNKS = 256


# What chunking and embedding read besides the RAG_EMBED_* settings: a worker gets nothing else,
# so the service's own keys (RAG_API_KEYS, the LLM's and the reranker's) never leave the driver.
WORKER_SETTINGS = frozenset({"cache_dir", "device", "chunk_tokens", "chunk_overlap", "ray_cpus_per_actor"})


def is_worker_setting(name: str) -> bool:
    return name.startswith("embed_") or name in WORKER_SETTINGS


def settings_as_values(settings: Settings, names: Iterable[str] | None = None) -> dict:
    """Settings (all, or `names`) as plain values for another process: secrets revealed, paths
    absolute (a process of another node may start elsewhere)."""
    out = {}
    for name in Settings.model_fields if names is None else names:
        value = getattr(settings, name)
        value = value.get_secret_value() if isinstance(value, SecretStr) else value
        out[name] = str(Path(value).resolve()) if isinstance(value, Path) else value
    return out


def settings_for_workers(settings: Settings) -> dict:
    """What chunking tasks and embedding actors need: the embedding settings, with the embedding
    server's key, and no other secret."""
    return settings_as_values(settings, [n for n in Settings.model_fields if is_worker_setting(n)])


@lru_cache(maxsize=2)
def _embedder(frozen: tuple):  # type: ignore[no-untyped-def]
    from ..embedding import load_embedder

    s = Settings(**dict(frozen))
    return load_embedder(s.embed_model, s.embed_backend, s.cache_dir, s)


def _frozen(values: dict) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in values.items()))


@lru_cache(maxsize=2)
def _chunker(frozen: tuple) -> Chunker:
    values = dict(frozen)
    return chunker_for(_embedder(frozen), values["chunk_tokens"], values["chunk_overlap"])


def chunk_batch(batch: dict, settings: dict) -> dict:
    """A Ray Data task: documents in, one row per chunk out (offsets and the text to embed)."""
    chunker = _chunker(_frozen(settings))
    cols: dict[str, list] = {k: [] for k in ("doc_id", "ordinal", "start", "end", "text", "embed", "n")}
    for doc_id, text, title in zip(batch["doc_id"], batch["text"], batch["title"]):
        chunks = chunker.split(str(doc_id), str(text))
        for c in chunks:
            for k, v in (("doc_id", c.doc_id), ("ordinal", c.ordinal), ("start", c.start), ("end", c.end),
                         ("text", c.text), ("embed", context_text(str(title) or None, c.text)), ("n", len(chunks))):
                cols[k].append(v)
    return {k: np.array(v, dtype=object if k in ("doc_id", "text", "embed") else np.int64) for k, v in cols.items()}


class EmbedActor:
    """A Ray Data actor: the embedding model loaded once, then batches of chunks embedded. Its
    settings are a class attribute of a subclass made per run (`_actor_class`), not constructor
    arguments: those would sit in the object store, which Ray warns cannot be relied on for restarts."""

    SETTINGS: dict = {}

    def __init__(self) -> None:
        settings = self.SETTINGS
        self.embedder = _embedder(_frozen(settings))
        if hasattr(self.embedder, "limit_threads"):  # as many threads as CPUs this actor holds
            self.embedder.limit_threads(max(1, round(float(settings.get("ray_cpus_per_actor", 1)))))
        self.batch_size = int(settings["embed_batch_size"])
        i = self.embedder.identity
        self.model = model_identity(i.name, i.weights_sha256, i.backend, i.export_sha256, i.runtime)

    def __call__(self, batch: dict) -> dict:
        batch["vector"] = self.embedder.encode([str(t) for t in batch["embed"]], batch_size=self.batch_size)
        batch["model"] = np.array([self.model] * len(batch["vector"]), dtype=object)
        return batch


class RayEmbedding:
    """`RemoteEmbedding` on a Ray cluster (`address`), or on a local Ray when None."""

    def __init__(self, settings: Settings, address: str | None = None, on_chunks: Callable[[int, float], None] | None = None) -> None:
        self.settings = settings
        self.address = address if address is not None else settings.ray_address
        self.on_chunks = on_chunks  # chunks embedded so far, and chunks/s across the cluster
        self.chunks = 0

    def run(self, docs: list[Document], model: str) -> Iterator[tuple[Document, list[Chunk], np.ndarray]]:
        ray = connect(self.address)
        try:
            yield from self._stream(ray, docs, model)
        finally:
            ray.shutdown()

    def _pipeline(self, ray, docs: list[Document]):  # type: ignore[no-untyped-def]
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        ctx.execution_options.preserve_order = True  # commits follow the input, as a local ingest's do
        values = settings_for_workers(self.settings)
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        use_gpu = gpus > 0 and self.settings.device.value != "cpu" and self.settings.embed_backend.value == "torch"
        if use_gpu:
            pool, actor = gpus, {"num_gpus": 1}
        else:  # each actor leaves a quarter CPU to the chunking tasks
            per = self.settings.ray_cpus_per_actor
            pool = max(1, int(resources.get("CPU", 1) // per))
            actor = {"num_cpus": max(0.25, per - CHUNK_CPUS)}
        blocks = max(1, min(len(docs) // CHUNK_BATCH_DOCS, 200))
        pool = min(pool, blocks)  # more actors than blocks would wait idle
        items = [{"doc_id": d.id, "text": d.text, "title": d.title or ""} for d in docs]
        ds = ray.data.from_items(items, override_num_blocks=blocks)
        ds = ds.map_batches(chunk_batch, fn_kwargs={"settings": values}, batch_size=CHUNK_BATCH_DOCS,
                            batch_format="numpy", num_cpus=CHUNK_CPUS)
        actor_class = type("EmbedActor", (EmbedActor,), {"SETTINGS": values})
        return ds.map_batches(actor_class, compute=ray.data.ActorPoolStrategy(size=pool),
                              batch_size=EMBED_BATCH_CHUNKS, batch_format="numpy", **actor)

    def _stream(self, ray, docs: list[Document], model: str) -> Iterator[tuple[Document, list[Chunk], np.ndarray]]:  # type: ignore[no-untyped-def]
        by_id = {d.id: d for d in docs}
        pending: dict[str, dict[int, tuple[Chunk, np.ndarray]]] = {}
        done: set[str] = set()
        t0 = time.perf_counter()
        for batch in self._batches(self._pipeline(ray, docs)):
            wrong = {str(m) for m in batch["model"]} - {model}
            if wrong:  # e.g. a GPU node whose fp16 vectors are not the CPU's, or another model installed
                raise RayUnavailable(
                    f"the cluster's embedding actors run {sorted(wrong)[0]}, but this index was built by {model}; "
                    "install the same model (and RAG_DEVICE) on every node"
                )
            for i in range(len(batch["doc_id"])):
                doc_id = str(batch["doc_id"][i])
                if doc_id in done or doc_id not in by_id:
                    continue  # a retried batch's repeat
                chunk = Chunk(doc_id, int(batch["ordinal"][i]), int(batch["start"][i]), int(batch["end"][i]), str(batch["text"][i]))
                parts = pending.setdefault(doc_id, {})
                parts[chunk.ordinal] = (chunk, np.asarray(batch["vector"][i], np.float32))
                if len(parts) == int(batch["n"][i]):
                    ordered = [parts[k] for k in sorted(parts)]
                    del pending[doc_id]
                    done.add(doc_id)
                    self.chunks += len(ordered)
                    if self.on_chunks:
                        self.on_chunks(self.chunks, self.chunks / max(time.perf_counter() - t0, 1e-9))
                    yield by_id[doc_id], [c for c, _ in ordered], np.vstack([v for _, v in ordered])
        missing = [d for d in docs if d.id not in done]
        if missing:  # a document that yields no chunk (nothing to embed) still gets committed
            yield from ((d, [], np.zeros((0, 0), np.float32)) for d in missing if d.id not in pending)
            if pending:
                raise RayUnavailable(f"the cluster returned {len(pending)} document(s) incomplete; run the ingest again")

    def _batches(self, ds) -> Iterator[dict]:  # type: ignore[no-untyped-def]
        """The pipeline's output batches, failing after RAG_RAY_STALL_S without one."""
        out: queue.Queue = queue.Queue(maxsize=4)
        end = object()

        def pump() -> None:
            try:
                for b in ds.iter_batches(batch_size=EMBED_BATCH_CHUNKS, batch_format="numpy"):
                    out.put(b)
                out.put(end)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                out.put(exc)

        threading.Thread(target=pump, name="ray-ingest", daemon=True).start()
        while True:
            try:
                item = out.get(timeout=self.settings.ray_stall_s)
            except queue.Empty:
                raise RayUnavailable(
                    f"no embedded batch from the Ray cluster for {self.settings.ray_stall_s:.0f} s (RAG_RAY_STALL_S): "
                    "is a node that can run the embedding actors still alive? Committed documents are kept; run the "
                    "ingest again to finish"
                ) from None
            if item is end:
                return
            if isinstance(item, BaseException):
                raise RayUnavailable(f"the Ray pipeline failed: {item}") from item
            yield item
