"""A Python client for the HTTP API: `Client` (sync) and `AsyncClient`, on httpx, returning the
`rag.schema` models; `NewsRetriever` (rag/client/langchain.py, the `langchain` extra) makes it a
LangChain retriever.

Speaks only the JSON contract: may import `rag.schema` and the foundation (`config`, `dates`),
never the service, storage or any other layer (a client program need not load a model).
"""

from .errors import BadRequest, ClientError, ConnectionFailed, Forbidden, NotFound, ServerError, Unauthorized
from .http import AsyncClient, Client

__all__ = [
    "AsyncClient", "BadRequest", "Client", "ClientError", "ConnectionFailed", "Forbidden", "NotFound",
    "ServerError", "Unauthorized",
]
