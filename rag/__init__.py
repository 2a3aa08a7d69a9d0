"""Retrieval-augmented question answering over news articles, with exact citations.

The packages, lowest first (each imports only those before it; `tests/test_layers.py` checks):

- foundation: `config` (settings and enums), `text` (words, stems, sentences), `dates` (publication
  dates read and normalised to UTC), `schema` (the JSON contract of `POST /query` and `rag ask --json`);
- `ingestion.documents`, `ingestion.chunking`, `ingestion.dedup`: reading and splitting articles (and
  `ingestion.html`, `.feeds`, `.fetch`, `.web`: web pages, RSS/Atom feeds and polite fetching);
- `embedding`: text to vectors;
- `storage`: the SQLite store, FAISS vectors and word index, committed atomically;
- `ingestion.pipeline`: load -> chunk -> embed -> commit; `ingestion.watcher` polls feeds into it;
- `retrieval`: passages for a question;
- `answering`: the cited answer or a refusal;
- `service`: the one object the shells use; `cli` (and the `api` package beside `rag`) are shells.
"""

from .config import EmbedBackend, RetrievalMode, Settings, get_settings
from .ingestion.documents import Document, DocumentError, load_path
from .schema import AnswerOut, DocumentOut, DocumentSummary, Health, Passage, Query, QueryResponse

__all__ = [
    "AnswerOut", "Document", "DocumentError", "DocumentOut", "DocumentSummary", "EmbedBackend", "Health",
    "Passage", "Query", "QueryResponse", "RetrievalMode", "Settings", "Service", "get_settings", "load_path",
]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    # The service pulls in the embedding stack; import it only when asked for.
    if name == "Service":
        from .service import Service

        return Service
    raise AttributeError(name)
