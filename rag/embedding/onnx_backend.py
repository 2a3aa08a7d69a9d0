"""The ONNX backend: the model's transformer exported once, int8-quantised, run by ONNX Runtime.

The query path needs only `onnxruntime`, `tokenizers` and numpy; torch and transformers are
imported only to export the model, once per weights file, into the cache folder.

Each text runs through the model alone, unpadded, on a one-thread session, and several texts run
at once on as many threads as there are CPUs. Dynamic quantisation scales activations per tensor,
so in a padded batch a text's vector moved with its batch mates (cosine ~0.99); alone, it depends
on its text, the export and the runtime only, bitwise, whatever the batch size, mates or order.
It is faster too: no padding, and no syncing of intra-op threads (docs/benchmarks.md).

Agreement with the torch backend (cosine of the two vectors of a text): ~0.994 on average for
passages and questions, ≥0.985 for nearly all; one- or two-word queries can drop to ~0.97.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import DEFAULT_EMBED_MODEL
from .base import EmbeddingError, ModelIdentity, file_sha256, resolve_model_path, weights_sha256

if TYPE_CHECKING:
    import onnxruntime as ort
    from tokenizers import Tokenizer

log = logging.getLogger("rag.embedding")

BACKEND = "onnx-int8"
ONNX_FILE = "model-int8.onnx"
OPSET = 17
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
TOKENIZE_SLICE = 4096


def default_cache_dir() -> Path:
    """The project's cache folder, relative to the working directory (never the home directory)."""
    return Path(".cache")


def onnx_model_file(cache_dir: Path, weights_sha: str) -> Path:
    """Where the quantised model of one weights file lives: keyed by the weights, not the name."""
    return cache_dir / "onnx" / weights_sha[:16] / ONNX_FILE


class OnnxEmbedder:
    """Sentence embeddings from an int8 ONNX export of the model, on the CPU."""

    def __init__(self, name: str = DEFAULT_EMBED_MODEL, cache_dir: Path | None = None) -> None:
        path = resolve_model_path(name)
        folder = _local_folder(name, path)
        self._tokenizer, self._counter = _load_tokenizers(folder)
        max_tokens = _max_tokens(folder)
        self._tokenizer.enable_truncation(max_length=max_tokens)  # counts [CLS] and [SEP]
        self._tokenizer.no_padding()  # each text runs alone: nothing to pad
        self._counter.no_truncation()
        self._counter.no_padding()
        dim = _pooling_dim(folder)  # refuses a model this backend cannot pool before exporting it
        key = weights_sha256(str(folder))
        if key.startswith("unknown:"):
            raise EmbeddingError(f"no weights file in {folder} to export for model {name!r}")
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.onnx_path = onnx_model_file(cache, key)
        # Seconds this instance spent exporting; None when the file was there (or another
        # process made it while this one waited for the lock).
        self.export_seconds: float | None = None
        if not self.onnx_path.is_file():
            self.export_seconds = export_int8(folder, self.onnx_path)
        self.identity = ModelIdentity(
            name=name,
            path=path,
            weights_sha256=weights_sha256(path),
            dim=dim,
            max_tokens=max_tokens,
            backend=BACKEND,
            export_sha256=file_sha256(self.onnx_path),
            runtime=runtime_version(),
        )
        self.workers = os.cpu_count() or 1  # texts embedded at once, one thread each
        # Opened on first use (~0.25 s): construction stays cheap for commands that never embed.
        self._session: ort.InferenceSession | None = None
        self._has_token_types = False
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._lock = threading.Lock()

    def limit_threads(self, cpus: int) -> None:
        """Use at most `cpus` threads: a process sharing the machine (a Ray actor holding a
        fraction of it) would otherwise run one thread per core against its neighbours'."""
        with self._lock:
            self.workers = max(1, min(os.cpu_count() or 1, int(cpus)))
            if self._pool is not None:
                self._pool.shutdown(wait=False)
                self._pool = None

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text, in the order given. Each text runs
        alone, so `batch_size` (the `Embedder` contract's) changes nothing here."""
        dim = self.identity.dim
        if not texts:
            return np.zeros((0, dim), dtype=np.float32)
        ids: list[np.ndarray] = []
        for start in range(0, len(texts), TOKENIZE_SLICE):  # bounds the Encoding objects alive
            encodings = self._tokenizer.encode_batch(texts[start : start + TOKENIZE_SLICE])
            ids += [np.asarray(e.ids, dtype=np.int64) for e in encodings]
        out = np.empty((len(texts), dim), dtype=np.float32)
        pool = self._executor() if len(ids) > 1 else None
        rows = pool.map(self._encode_one, ids) if pool is not None else map(self._encode_one, ids)
        for row, vector in enumerate(rows):
            out[row] = vector
        return out

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for `text`, without [CLS]/[SEP] and without truncation."""
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def _encode_one(self, ids: np.ndarray) -> np.ndarray:
        """One text's token ids through the transformer, mean-pooled and normalised."""
        session = self._session or self._open()
        input_ids = ids[None, :]
        mask = np.ones_like(input_ids)
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if self._has_token_types:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        hidden = session.run(None, feeds)[0]
        weights = mask.astype(np.float32)
        summed = np.einsum("bld,bl->bd", hidden, weights)
        pooled = summed / np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12))[0].astype(np.float32, copy=False)

    def _open(self) -> ort.InferenceSession:
        with self._lock:
            if self._session is None:
                session = _session(self.onnx_path, threads=1)
                self._has_token_types = "token_type_ids" in {i.name for i in session.get_inputs()}
                self._session = session
            return self._session

    def _executor(self) -> ThreadPoolExecutor | None:
        """The threads that run texts side by side (ONNX Runtime releases the GIL); None with one
        worker. Made again in a forked child, whose copy would have no threads behind it."""
        with self._lock:
            if self.workers <= 1:
                return None
            if self._pool is None or self._pool_pid != os.getpid():
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="rag-embed")
                self._pool_pid = os.getpid()
            return self._pool


def runtime_version() -> str:
    """The ONNX Runtime release that runs the export: another one gives other vectors from the
    same file (up to 3.4e-2 a component between 1.29.0 and 1.32.0)."""
    return f"onnxruntime {version('onnxruntime').split('+')[0]}"


def export_int8(folder: Path, target: Path) -> float | None:
    """Export the transformer to ONNX and quantise it to `target`; returns the seconds spent,
    or None when another process exported it meanwhile.

    One process exports at a time (a lock file beside the target); files are written under
    temporary names and moved into place, so readers see either no file or a whole one.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / ".export.lock"
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if target.is_file():  # another process exported while this one waited
                return None
            for stale in target.parent.glob(".tmp-*"):  # left by a crashed exporter
                shutil.rmtree(stale, ignore_errors=True)
            log.info("exporting %s to ONNX int8 at %s (once per model)", folder, target)
            started = time.perf_counter()
            work = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
            try:
                fp32 = work / "model-fp32.onnx"
                int8 = work / ONNX_FILE
                _export_fp32(folder, fp32)
                _quantize(fp32, int8)  # the fp32 file is dropped with `work`: only int8 is used
                with int8.open("rb") as fh:
                    os.fsync(fh.fileno())
                os.replace(int8, target)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            return time.perf_counter() - started
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _export_fp32(folder: Path, out: Path) -> None:
    """Trace the transformer (ids, mask, token types -> last_hidden_state) into fp32 ONNX."""
    import warnings

    try:
        import torch
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise EmbeddingError(
            f"exporting the ONNX model needs torch and transformers once ({exc}); "
            "or copy a cached model-int8.onnx into place"
        ) from exc

    hf_logging.disable_progress_bar()
    try:
        # Eager attention traces to plain MatMul/Softmax/Add ops, mask included.
        model = AutoModel.from_pretrained(str(folder), attn_implementation="eager").eval()
    except Exception as exc:  # noqa: BLE001 - any load failure becomes one clear sentence
        raise EmbeddingError(f"cannot load {folder} with transformers to export it: {exc}") from exc

    class LastHidden(torch.nn.Module):
        """Positional inputs and a single tensor output, as the exporter wants them."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
        ) -> torch.Tensor:
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    # Two rows, the second padded: the traced graph must honour the attention mask.
    ids = torch.tensor([[101, 7592, 2088, 2003, 1037, 3231, 1012, 102],
                        [101, 7592, 102, 0, 0, 0, 0, 0]], dtype=torch.long)  # fmt: skip
    mask = (ids != 0).long()
    dynamic = {n: {0: "batch", 1: "sequence"} for n in (*INPUT_NAMES, "last_hidden_state")}
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is deprecated in favour of dynamo, which needs onnxscript
        # (not a dependency); its tracer warnings are about shapes the dynamic axes cover.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHidden(model),
            (ids, mask, torch.zeros_like(ids)),
            str(out),
            input_names=list(INPUT_NAMES),
            output_names=["last_hidden_state"],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def _quantize(fp32: Path, int8: Path) -> None:
    """Dynamic int8: per-channel weights, MatMul only (per-tensor costs too much accuracy)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quant_log = logging.getLogger()  # the quantiser warns on the root logger about pre-processing
    level = quant_log.level
    quant_log.setLevel(logging.ERROR)
    try:
        quantize_dynamic(
            str(fp32),
            str(int8),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
        )
    finally:
        quant_log.setLevel(level)


def _session(model: Path, threads: int) -> ort.InferenceSession:
    """A CPU session with all graph optimisations and `threads` intra-op threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - a corrupt cache file must say where it is
        raise EmbeddingError(f"cannot load ONNX model {model} (delete it to re-export): {exc}") from exc


def _local_folder(name: str, path: str) -> Path:
    """The model's folder on disk: packaged or local paths as given, hub ids from the local cache."""
    folder = Path(path)
    if folder.is_dir():
        return folder
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(path, local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - not found locally, whatever the reason
        raise EmbeddingError(f"embedding model {name!r} not found on disk at {path!r}: {exc}") from exc


def _load_tokenizers(folder: Path) -> tuple[Tokenizer, Tokenizer]:
    """Two copies of the model's fast tokenizer: one truncating for encode, one for counting."""
    from tokenizers import Tokenizer

    file = folder / "tokenizer.json"
    if not file.is_file():
        raise EmbeddingError(f"the ONNX backend needs {file} (a fast tokenizer); it is missing")
    return Tokenizer.from_file(str(file)), Tokenizer.from_file(str(file))


def _read_json(file: Path) -> dict[str, Any]:
    """A JSON object from the model folder, or {} when the file is absent."""
    if not file.is_file():
        return {}
    data = json.loads(file.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _max_tokens(folder: Path) -> int:
    """The window sentence-transformers uses: `max_seq_length`, else the model's positions."""
    st = _read_json(folder / "sentence_bert_config.json")
    if "max_seq_length" in st:
        return int(st["max_seq_length"])
    config = _read_json(folder / "config.json")
    return int(config.get("max_position_embeddings", 512))


def _pooling_dim(folder: Path) -> int:
    """The embedding width, after checking the model pools by mean (the only pooling done here)."""
    pooling_dir = "1_Pooling"
    modules_file = folder / "modules.json"
    if modules_file.is_file():
        for module in json.loads(modules_file.read_text(encoding="utf-8")):
            if str(module.get("type", "")).endswith("Pooling"):
                pooling_dir = str(module.get("path") or pooling_dir)
    pooling = _read_json(folder / pooling_dir / "config.json")
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
    if pooling and modes != ["pooling_mode_mean_tokens"]:
        raise EmbeddingError(f"the ONNX backend does mean pooling only; {folder} asks for {modes}")
    dim = pooling.get("word_embedding_dimension") or _read_json(folder / "config.json").get("hidden_size")
    if not dim:
        raise EmbeddingError(f"cannot tell the embedding width of the model in {folder}")
    return int(dim)
