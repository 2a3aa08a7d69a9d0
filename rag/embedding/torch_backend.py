"""The torch backend: sentence-transformers on the CPU, or on CUDA in half precision."""

from __future__ import annotations

import numpy as np

from ..config import DEFAULT_EMBED_MODEL, Device
from .base import EmbeddingError, ModelIdentity, resolve_model_path, weights_sha256

# Vectors from another device count as the same model only this close to the CPU's (cosine, the
# lowest over PROBE): an index never mixes vectors that rank differently.
SAME_VECTORS_COSINE = 0.999
# Texts of varied length and subject, embedded on both devices when the model loads on CUDA.
PROBE = [
    "Russia demands that NATO rule out Ukraine's membership before any ceasefire talks.",
    "Grain exports resumed from Odesa after the corridor deal.",
    "The council approved the harbour tramline despite 212 written objections.",
    "Who won the election?",
    "Officials said the cost had risen by 40 percent since the first estimate, and engineers warned "
    "that older sections would need repairs within five years; opposition members called for a "
    "referendum before any further spending on the flood barrier or the rail station.",
    "Zelensky met Erdogan in Istanbul on Tuesday.",
    "Inflation in the euro area fell to 2.4% in November, the lowest in two years.",
    "A 7.1 magnitude earthquake struck off the coast; no tsunami warning was issued.",
]


def resolve_device(device: Device | str) -> str:
    """"cuda" or "cpu" for the setting; a CUDA device asked for but absent is an error."""
    import torch

    device = Device(device)
    if device is Device.auto:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device is Device.cuda and not torch.cuda.is_available():
        raise EmbeddingError("RAG_DEVICE=cuda, but torch sees no CUDA device (torch.cuda.is_available() is false)")
    return device.value


def cuda_batch_size(free_bytes: int) -> int:
    """Chunks per batch on the card: ~64 MiB of activations a chunk of 256 tokens in fp16 is far
    more than MiniLM needs, so this stays safe on any card while filling a large one."""
    return int(min(1024, max(64, free_bytes // (64 * 2**20))))


class TorchEmbedder:
    """sentence-transformers on the CPU (fp32) or CUDA (fp16, batches sized for the card; the
    library already sorts each call's texts by length, so a batch pads little)."""

    def __init__(self, name: str = DEFAULT_EMBED_MODEL, device: Device | str = Device.auto) -> None:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the "Loading weights" bar is noise on every start

        path = resolve_model_path(name)
        self.device = resolve_device(device)
        try:
            self.model = SentenceTransformer(path, device=self.device)
        except Exception as exc:  # noqa: BLE001 - any load failure becomes one clear sentence
            raise EmbeddingError(f"cannot load embedding model {name!r} from {path!r}: {exc}") from exc
        self.tokenizer = self.model.tokenizer
        self.batch_size: int | None = None
        backend = "torch"
        if self.device == "cuda":
            import torch

            self.model.half()
            self.batch_size = cuda_batch_size(torch.cuda.mem_get_info()[0])
            self.probe_cosine = self._agreement_with_cpu(SentenceTransformer(path, device="cpu"))
            if self.probe_cosine < SAME_VECTORS_COSINE:
                backend = "torch-cuda-fp16"  # kept apart: an index of CPU vectors refuses these
        dim = int(self.model.get_embedding_dimension() or 0)
        self.identity = ModelIdentity(
            name=name, path=path, weights_sha256=weights_sha256(path), dim=dim,
            max_tokens=int(self.model.max_seq_length), backend=backend,
        )

    def _agreement_with_cpu(self, cpu_model) -> float:  # type: ignore[no-untyped-def]
        """The lowest cosine between this device's vectors of PROBE and the CPU's."""
        here = self.encode(PROBE)
        there = np.asarray(cpu_model.encode(PROBE, normalize_embeddings=True, convert_to_numpy=True), np.float32)
        return float(np.min(np.sum(here * there, axis=1)))

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.model.get_embedding_dimension() or 0), dtype=np.float32)
        vecs = self.model.encode(
            texts, batch_size=self.batch_size or batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        vecs = np.ascontiguousarray(vecs, dtype=np.float32)
        if self.device != "cpu":  # normalised in fp16: renormalise in fp32 so cosines stay exact
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        return vecs

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for `text`, without [CLS]/[SEP]."""
        return len(self.tokenizer.encode(text, add_special_tokens=False, verbose=False))
