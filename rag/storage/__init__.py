"""The storage engine: the SQLite chunk store, FAISS vectors, the BM25 word index, atomic commits.

`store` holds documents, chunk texts and offsets and is the commit point; `vectors` the FAISS
structures; `lexical` the word index; `index` ties them into one atomically committed index.
May import only `rag.config`, `rag.text` and `rag.dates`: it knows nothing of models, retrieval or
answers.
"""

from .index import Batch, Index, IndexError_, IndexMismatch, Manifest, PendingDoc
from .lexical import Lexical
from .store import ChunkRow, DocRow, Filters, Store
from .vectors import IndexPolicy

__all__ = [
    "Batch", "ChunkRow", "DocRow", "Filters", "Index", "IndexError_", "IndexMismatch", "IndexPolicy",
    "Lexical", "Manifest", "PendingDoc", "Store",
]
