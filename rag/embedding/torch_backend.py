"""The torch backend: sentence-transformers on the CPU."""

from __future__ import annotations

import numpy as np

from ..config import DEFAULT_EMBED_MODEL
from .base import EmbeddingError, ModelIdentity, resolve_model_path, weights_sha256


class TorchEmbedder:
    """sentence-transformers on the CPU."""

    def __init__(self, name: str = DEFAULT_EMBED_MODEL) -> None:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the "Loading weights" bar is noise on every start

        path = resolve_model_path(name)
        try:
            self.model = SentenceTransformer(path, device="cpu")
        except Exception as exc:  # noqa: BLE001 - any load failure becomes one clear sentence
            raise EmbeddingError(f"cannot load embedding model {name!r} from {path!r}: {exc}") from exc
        self.tokenizer = self.model.tokenizer
        dim = int(self.model.get_embedding_dimension() or 0)
        self.identity = ModelIdentity(
            name=name,
            path=path,
            weights_sha256=weights_sha256(path),
            dim=dim,
            max_tokens=int(self.model.max_seq_length),
            backend="torch",
        )

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.identity.dim), dtype=np.float32)
        vecs = self.model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for `text`, without [CLS]/[SEP]."""
        return len(self.tokenizer.encode(text, add_special_tokens=False, verbose=False))
