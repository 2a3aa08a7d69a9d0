"""RAG_DEVICE: auto falls back to the CPU here, cuda without a GPU and cuda with a CPU-only backend
are clear errors, an unknown value lists the valid ones; the batch size follows the card's memory.
(The CUDA path itself runs in `python -m eval.bench_gpu` on a GPU machine; there is none here.)"""

import pytest
from pydantic import ValidationError

from rag.config import DEFAULT_EMBED_MODEL, Settings
from rag.embedding import load_embedder
from rag.embedding.base import EmbeddingError
from rag.embedding.torch_backend import TorchEmbedder, cuda_batch_size, resolve_device

torch = pytest.importorskip("torch")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_auto_is_the_cpu_without_a_gpu_and_cuda_is_refused():
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    with pytest.raises(EmbeddingError, match="no CUDA device"):
        resolve_device("cuda")
    e = TorchEmbedder(DEFAULT_EMBED_MODEL, "auto")
    assert e.device == "cpu" and e.identity.backend == "torch"


def test_cuda_needs_the_torch_backend():
    with pytest.raises(EmbeddingError, match="RAG_EMBED_BACKEND=torch"):
        load_embedder(DEFAULT_EMBED_MODEL, "onnx", settings=Settings(device="cuda"))


def test_unknown_device_lists_the_valid_ones():
    with pytest.raises(ValidationError, match="'auto', 'cpu' or 'cuda'"):
        Settings(device="tpu")


def test_batch_size_follows_free_memory():
    assert cuda_batch_size(2 * 2**30) == 64 and cuda_batch_size(16 * 2**30) == 256
    assert cuda_batch_size(80 * 2**30) == 1024
