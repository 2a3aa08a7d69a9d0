"""Token-aware chunking with exact character offsets.

Chunks are measured in the embedding model's own tokens so none exceeds its window (text past the
window would be cited but never searched). Every chunk satisfies
`document.text[chunk.start:chunk.end] == chunk.text`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported on first split: `rag ask` never chunks, and langchain costs ~0.2 s to import
    from langchain_text_splitters import RecursiveCharacterTextSplitter

# Paragraphs first, then lines, then sentence ends, then clauses, then words. Separators stay at
# the end of the piece they close, so a chunk ends on "." rather than starting with it.
SEPARATORS: tuple[str, ...] = ("\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", "")
CHUNKER_VERSION = 2


@dataclass(frozen=True)
class Chunk:
    doc_id: str
    ordinal: int
    start: int
    end: int
    text: str

    @property
    def chunk_id(self) -> str:
        return f"{self.doc_id}#{self.ordinal}"


class Chunker:
    """Splits text into overlapping, sentence-friendly chunks of at most `max_tokens` tokens."""

    def __init__(
        self,
        count_tokens: Callable[[str], int],
        chunk_tokens: int,
        overlap_tokens: int,
        max_tokens: int,
    ) -> None:
        if chunk_tokens > max_tokens:
            raise ValueError(f"chunk size {chunk_tokens} exceeds the model window {max_tokens}")
        # The splitter measures each piece when choosing where to cut and again when merging:
        # a small cache halves the tokeniser calls, ~a tenth of ingest time.
        self.count_tokens = lru_cache(maxsize=8192)(count_tokens)
        self.chunk_tokens = chunk_tokens
        self.overlap_tokens = overlap_tokens
        self.max_tokens = max_tokens

    @cached_property
    def _splitter(self) -> "RecursiveCharacterTextSplitter":
        return self._make_splitter(self.chunk_tokens, self.overlap_tokens)

    def _make_splitter(self, size: int, overlap: int) -> "RecursiveCharacterTextSplitter":
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        return RecursiveCharacterTextSplitter(
            separators=list(SEPARATORS),
            keep_separator="end",
            chunk_size=size,
            chunk_overlap=min(overlap, size // 2),
            length_function=self.count_tokens,
            strip_whitespace=True,
        )

    def settings(self) -> dict:
        """What the manifest records: an index built with other settings is refused."""
        return {
            "version": CHUNKER_VERSION,
            "chunk_tokens": self.chunk_tokens,
            "overlap_tokens": self.overlap_tokens,
            "separators": list(SEPARATORS),
            "title_context": True,
        }

    def split(self, doc_id: str, text: str) -> list[Chunk]:
        pieces = self._fit(self._splitter.split_text(text))
        return [
            Chunk(doc_id, i, start, start + len(piece), piece)
            for i, (start, piece) in enumerate(locate(text, pieces))
        ]

    def _fit(self, pieces: Sequence[str]) -> list[str]:
        """Re-split the rare piece whose merged token count crept past the model window."""
        out: list[str] = []
        for piece in pieces:
            if self.count_tokens(piece) <= self.max_tokens:
                out.append(piece)
            else:
                smaller = self._make_splitter(self.max_tokens // 2, self.overlap_tokens // 2)
                out.extend(self._fit(smaller.split_text(piece)))
        return out


def locate(text: str, pieces: Sequence[str]) -> list[tuple[int, str]]:
    """Each piece's start offset in `text`, searching forward since pieces come in order."""
    located: list[tuple[int, str]] = []
    cursor = 0
    for piece in pieces:
        start = text.find(piece, cursor)
        if start < 0:
            start = text.find(piece)
        if start < 0:  # the splitter only ever returns substrings; this guards the invariant
            raise AssertionError(f"chunk not found in its document: {piece[:60]!r}")
        located.append((start, piece))
        cursor = start + 1
    return located


def chunker_for(embedder, chunk_tokens: int, chunk_overlap: int) -> Chunker:  # type: ignore[no-untyped-def]
    """The chunker an index uses with `embedder`: its token counts, and its window less the two
    special tokens ([CLS], [SEP]) the model adds."""
    return Chunker(embedder.count_tokens, chunk_tokens, chunk_overlap, embedder.identity.max_tokens - 2)
