"""Work spread over a Ray cluster: backfills through Ray Data (`ray_ingest`), and what a driver
needs to reach a cluster (`connect`).

May import `rag.config`, `rag.text`, `rag.embedding` and `rag.ingestion`; Ray itself only inside
functions, so the rest of the library works without the `ray` extra.
"""

from .connect import INSTALL_HINT, RayNotInstalled, RayUnavailable, connect, import_ray
from .ray_ingest import RayEmbedding, settings_as_values, settings_for_workers

__all__ = ["INSTALL_HINT", "RayEmbedding", "RayNotInstalled", "RayUnavailable", "connect", "import_ray", "settings_as_values",
           "settings_for_workers"]
