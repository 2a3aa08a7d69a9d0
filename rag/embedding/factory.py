"""Pick the embedding backend named in settings; backends load only when picked."""

from __future__ import annotations

from pathlib import Path

from ..config import DEFAULT_EMBED_MODEL, Device, EmbedBackend, Settings, get_settings
from .base import Embedder, EmbeddingError


def load_embedder(
    name: str = DEFAULT_EMBED_MODEL,
    backend: "EmbedBackend | str" = "onnx",
    cache_dir: Path | None = None,
    settings: Settings | None = None,
) -> Embedder:
    """The one embedding model of the process, for the chosen backend. The server backend reads its
    URL, key and limits from `settings` (default: the environment's), `name` being the server's model."""
    try:
        backend = EmbedBackend(backend)
    except ValueError:
        valid = ", ".join(b.value for b in EmbedBackend)
        raise EmbeddingError(f"unknown embedding backend {backend!r}; valid: {valid}") from None
    device = settings.device if settings is not None else Device.auto
    if device is Device.cuda and backend is not EmbedBackend.torch:
        raise EmbeddingError(f"RAG_DEVICE=cuda runs the torch backend only; set RAG_EMBED_BACKEND=torch (now {backend.value})")
    if backend is EmbedBackend.openai:
        from .openai_backend import OpenAIEmbedder

        if name == DEFAULT_EMBED_MODEL:
            raise EmbeddingError(
                "RAG_EMBED_BACKEND=openai needs RAG_EMBED_MODEL: the model name the embedding server serves"
            )
        s = (settings or get_settings()).model_copy(update={"embed_model": name})
        return OpenAIEmbedder.from_settings(s)
    if backend is EmbedBackend.onnx:
        from .onnx_backend import OnnxEmbedder

        return OnnxEmbedder(name, cache_dir=cache_dir)
    from .torch_backend import TorchEmbedder

    return TorchEmbedder(name, device)
