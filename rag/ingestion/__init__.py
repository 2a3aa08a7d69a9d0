"""Ingestion: reads articles (`documents`), splits them into cited chunks (`chunking`), finds
near-duplicate wire copies (`dedup`), and runs load -> chunk -> embed -> commit (`pipeline`).
Web pages (`html`), RSS/Atom feeds (`feeds`), polite bounded fetching (`fetch`) and URLs
(`web`) sit with the loaders; `watcher`, polling feeds into the pipeline, sits above it (and
imports `rag.storage` for its state).

The loaders and the chunker import only the foundation (`config`, `text`, `dates`); `pipeline` also
imports `rag.embedding` and `rag.storage`, and is imported lazily so loading a file stays light.
"""

from .chunking import Chunk, Chunker
from .documents import Document, DocumentError, load_path

__all__ = ["Chunk", "Chunker", "Document", "DocumentError", "IngestReport", "Ingestor", "load_path"]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    if name in ("Ingestor", "IngestReport"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)
