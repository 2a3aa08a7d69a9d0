"""Retrieval: finds the passages that answer a question (dense, lexical or hybrid) and reranks them.

`search` fuses FAISS and BM25 rankings, applies filters, the per-article cap, merging and
near-duplicate folding; `rerank` is the optional second stage (one reranker per file);
`novelty` keeps what articles since a date add, `timeline` groups a question's articles into
dated events.
May import `rag.storage`, `rag.embedding` and the foundation (`config`, `text`), never answering.
"""

from .rerank import Reranker, load_reranker
from .search import Hit, Retriever, fts_query, rrf

__all__ = ["Hit", "Reranker", "Retriever", "fts_query", "load_reranker", "rrf"]
