"""The storage engine: the SQLite chunk store, FAISS vector segments, the BM25 word index, commits.

`store` holds documents, chunk texts and offsets, the segment list and tombstones, and is the
commit point; `vectors` the FAISS structures; `segments` the immutable segment files; `merging`
the tiered merge policy; `lexical` the word index; `index` ties them into one atomically committed
index; `maintainer` merges in the background; `locks` the file locks they share.
May import only `rag.config`, `rag.text` and `rag.dates`: it knows nothing of models, retrieval or
answers.
"""

from .index import Batch, Index, IndexError_, IndexMismatch, Manifest, PendingDoc
from .lexical import Lexical
from .maintainer import Maintainer
from .store import ChunkRow, DocRow, Filters, Store
from .vectors import IndexPolicy

__all__ = [
    "Batch", "ChunkRow", "DocRow", "Filters", "Index", "IndexError_", "IndexMismatch", "IndexPolicy",
    "Lexical", "Maintainer", "Manifest", "PendingDoc", "Store",
]
