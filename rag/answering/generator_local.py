"""A generator running a GGUF model in process with llama-cpp-python (the `llm` extra).

One loaded model per file is kept for the life of the process; llama.cpp contexts are not
thread-safe, so drafts take turns on a lock (a draft waiting past its time limit gives up).
"""

from __future__ import annotations

import atexit
import functools
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from . import prompt
from ..config import Settings
from .generator import GeneratorError
from .llm_models import ModelFileError, model_path
from ..retrieval.search import Hit

# The prompt (five passages of <= 800 characters, ~1,000 tokens) plus the answer fit with room to spare.
CONTEXT_TOKENS = 4096

_models: dict[Path, object] = {}


@atexit.register
def _close_models() -> None:
    """Free the models while llama_cpp is still importable: left to garbage collection at
    interpreter exit, its finaliser runs after the module is torn down and prints a TypeError."""
    for model in _models.values():
        close = getattr(model, "close", None)
        if close is not None:
            close()
    _models.clear()


_load_lock = threading.Lock()
_run_locks: dict[Path, threading.Lock] = {}


class LocalGenerator:
    name = "local"

    def __init__(
        self, model_spec: str, cache_dir: Path, max_tokens: int = 160, timeout_s: float = 60.0,
        threads: int | None = None,
    ) -> None:
        self.model_spec = model_spec
        self.cache_dir = cache_dir
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        self.threads = threads or os.cpu_count() or 1
        packaged = model_spec.startswith("packaged:")
        self.model: str | None = model_spec.removeprefix("packaged:") if packaged else Path(model_spec).stem

    @classmethod
    def from_settings(cls, s: Settings) -> "LocalGenerator":
        return cls(s.llm_model_path, s.cache_dir, s.llm_max_tokens, s.llm_timeout_s)

    def stream(self, question: str, hits: list[Hit], choices: list[str] | None = None) -> Iterator[str]:
        deadline = time.monotonic() + self.timeout_s
        path, llm = self.load()
        lock = _run_locks[path]
        if not lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise GeneratorError(f"the local model was busy for {self.timeout_s:g} s")
        try:
            chunks = llm.create_chat_completion(  # type: ignore[attr-defined]
                messages=prompt.messages(question, hits, choices), max_tokens=self.max_tokens, temperature=0.0,
                stream=True,
            )
            try:
                for chunk in chunks:
                    piece = (chunk["choices"][0].get("delta") or {}).get("content") or ""
                    if piece:
                        yield piece
                    if time.monotonic() > deadline:
                        raise GeneratorError(f"the local model did not finish within {self.timeout_s:g} s")
            finally:
                chunks.close()
        except ValueError as exc:  # llama.cpp: prompt longer than the context, and the like
            raise GeneratorError(f"the local model could not run: {exc}") from None
        finally:
            lock.release()

    def load(self) -> tuple[Path, object]:
        """The model file and its loaded model (loaded once per process)."""
        try:
            from llama_cpp import Llama
        except ImportError:
            raise GeneratorError("the local generator needs llama-cpp-python: pip install -e '.[llm]'") from None
        try:
            path = model_path(self.model_spec, self.cache_dir).resolve()
        except ModelFileError as exc:
            raise GeneratorError(str(exc)) from None
        refusal = amx_refusal(llama_system_info())
        if refusal:
            raise GeneratorError(refusal)
        with _load_lock:
            if path not in _models:
                try:
                    _models[path] = Llama(
                        model_path=str(path), n_ctx=CONTEXT_TOKENS, n_threads=self.threads, verbose=False,
                    )
                except (ValueError, RuntimeError) as exc:
                    raise GeneratorError(f"cannot load the local model {path.name}: {exc}") from None
                _run_locks[path] = threading.Lock()
        return path, _models[path]


@functools.cache
def llama_system_info() -> str:
    """What the installed llama.cpp was built with and runs on, as it prints it (fixed for the
    process, so read once rather than at every draft)."""
    import llama_cpp

    return llama_cpp.llama_print_system_info().decode(errors="replace")


def amx_refusal(system_info: str) -> str | None:
    """Why a llama.cpp build must not run here, or None: its AMX kernels crash the whole process
    on Intel CPUs with AMX on Q4_K models (llama.cpp#20824), where a refusal leaves the service up
    and the answer to the extractive draft."""
    if "AMX_INT8 = 1" not in system_info:
        return None
    flags = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    return (
        "this llama-cpp-python build runs llama.cpp's AMX kernels, which crash on Intel CPUs with AMX "
        f"(llama.cpp#20824); rebuild it without them (make venv does): CFLAGS='{flags}' "
        f"CXXFLAGS='{flags}' pip install --no-cache-dir --force-reinstall --no-deps llama-cpp-python"
    )
