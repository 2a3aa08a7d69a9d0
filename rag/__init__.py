"""Retrieval-augmented question answering over news articles, with exact citations."""

from .config import EmbedBackend, RetrievalMode, Settings, get_settings
from .documents import Document, DocumentError, load_path
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
