"""`NewsRetriever`: the service as a LangChain retriever (`langchain-core`, the `langchain` extra).

Each passage becomes a `Document` whose text is the passage and whose metadata cites it:
`doc_id`, `start` and `end` (character offsets into the article's text), `title`, `url` (the
article's source when it is a web address), `source`, `published`, `rank`, `score`, `chunk_id`.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from ..schema import Passage
from .http import AsyncClient, Client


def to_document(p: Passage) -> Document:
    url = p.source if p.source and p.source.startswith(("http://", "https://")) else None
    return Document(
        page_content=p.text,
        metadata={
            "doc_id": p.doc_id, "start": p.start, "end": p.end, "title": p.title, "url": url, "source": p.source,
            "published": p.published, "rank": p.rank, "score": p.score, "chunk_id": p.chunk_id,
        },
    )


class NewsRetriever(BaseRetriever):
    """Passages for a question from a running service. `fields` are any other `POST /query`
    fields (as_of, source, doc_ids, published_after, mode, ...). Give `async_client` too for
    `ainvoke` without a worker thread."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    client: Client
    async_client: AsyncClient | None = None
    k: int = Field(5, ge=1, le=50)
    fields: dict[str, Any] = Field(default_factory=dict)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [to_document(p) for p in self.client.search(query, k=self.k, **self.fields)]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        if self.async_client is None:
            return await super()._aget_relevant_documents(query, run_manager=run_manager)
        return [to_document(p) for p in await self.async_client.search(query, k=self.k, **self.fields)]
