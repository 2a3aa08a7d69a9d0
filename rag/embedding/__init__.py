"""Embedding: turns text into L2-normalised vectors (ONNX int8 or torch backend).

Owns the `Embedder` contract (`base`), one backend per file (`onnx_backend`, `torch_backend`) and
the factory that picks one (`factory`). May import only `rag.config`; storage, retrieval and
ingestion import it, never the other way.
"""

from .base import Embedder, EmbeddingError, ModelIdentity, cpu_class, resolve_model_path, weights_sha256
from .factory import load_embedder

__all__ = [
    "Embedder", "EmbeddingError", "ModelIdentity", "cpu_class", "load_embedder", "resolve_model_path", "weights_sha256",
]
