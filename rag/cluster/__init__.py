"""Work spread over a Ray cluster: backfills through Ray Data (`ray_ingest`).

May import `rag.config`, `rag.text`, `rag.dates`, `rag.embedding` and `rag.ingestion`; Ray itself
only inside functions, so the rest of the library works without the `ray` extra.
"""

from .ray_ingest import INSTALL_HINT, RayEmbedding, RayNotInstalled, RayUnavailable

__all__ = ["INSTALL_HINT", "RayEmbedding", "RayNotInstalled", "RayUnavailable"]
