"""The ONNX int8 backend against the torch backend, on the real packaged model and real text.

The ONNX file is exported once per test session into a temporary cache (about 10-60 s).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from eval.bench_embed import gold_questions, seed_pieces
from rag.config import DEFAULT_EMBED_MODEL
from rag.embedding import load_embedder
from rag.embedding.onnx_backend import OnnxEmbedder, export_int8, onnx_model_file
from rag.embedding.torch_backend import TorchEmbedder

ROOT = Path(__file__).resolve().parents[2]
MIN_COSINE = 0.985  # int8 per-channel MatMul: ~0.99 on passages and full questions

SHORT_QUESTIONS = [
    "Who did the president meet?",
    "What does Russia demand on NATO?",
    "How many people died in the flood?",
    "When will the new law take effect?",
]


@pytest.fixture(scope="module")
def onnx_cache(fresh_onnx_cache: Path) -> Path:
    return fresh_onnx_cache


@pytest.fixture(scope="module")
def onnx_embedder(onnx_cache: Path) -> OnnxEmbedder:
    return OnnxEmbedder(DEFAULT_EMBED_MODEL, cache_dir=onnx_cache)


@pytest.fixture(scope="module")
def torch_embedder() -> TorchEmbedder:
    return TorchEmbedder(DEFAULT_EMBED_MODEL)


@pytest.fixture(scope="module")
def chunks() -> list[str]:
    found = seed_pieces()
    assert len(found) >= 10, "the seed articles are missing"
    return found


def test_export_lands_in_cache(onnx_embedder: OnnxEmbedder, onnx_cache: Path) -> None:
    expected = onnx_model_file(onnx_cache, onnx_embedder.identity.weights_sha256)
    assert onnx_embedder.onnx_path == expected
    assert expected.is_file() and expected.stat().st_size > 1_000_000
    leftovers = [p.name for p in expected.parent.iterdir() if p.name.startswith(".tmp-")]
    assert leftovers == []


def test_identity_matches_torch(onnx_embedder: OnnxEmbedder, torch_embedder: TorchEmbedder) -> None:
    o, t = onnx_embedder.identity, torch_embedder.identity
    assert o.backend == "onnx-int8"
    assert (o.name, o.path, o.weights_sha256, o.dim, o.max_tokens) == (
        t.name, t.path, t.weights_sha256, t.dim, t.max_tokens,
    )  # fmt: skip
    assert o.dim == 384 and o.max_tokens == 256


def test_chunks_agree_with_torch(
    onnx_embedder: OnnxEmbedder, torch_embedder: TorchEmbedder, chunks: list[str]
) -> None:
    ours = onnx_embedder.encode(chunks)
    theirs = torch_embedder.encode(chunks)
    assert ours.shape == (len(chunks), 384) and ours.dtype == np.float32
    cos = np.einsum("nd,nd->n", ours, theirs)
    worst = int(cos.argmin())
    assert cos.min() >= MIN_COSINE, f"chunk {worst} cosine {cos[worst]:.4f}: {chunks[worst][:80]!r}"


def test_questions_agree_with_torch(onnx_embedder: OnnxEmbedder, torch_embedder: TorchEmbedder) -> None:
    questions = SHORT_QUESTIONS + gold_questions()[:20]
    one_by_one = np.concatenate([onnx_embedder.encode([q]) for q in questions])
    together = onnx_embedder.encode(questions)
    theirs = torch_embedder.encode(questions)
    for ours in (one_by_one, together):
        cos = np.einsum("nd,nd->n", ours, theirs)
        worst = int(cos.argmin())
        assert cos.min() >= MIN_COSINE, f"{questions[worst]!r}: cosine {cos[worst]:.4f}"


def test_order_kept_and_normalised(onnx_embedder: OnnxEmbedder, chunks: list[str]) -> None:
    texts = chunks[:12] + SHORT_QUESTIONS
    batched = onnx_embedder.encode(texts, batch_size=3)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    alone = np.concatenate([onnx_embedder.encode([t]) for t in texts])
    assert (np.argmax(alone @ batched.T, axis=1) == np.arange(len(texts))).all()


def test_a_vector_depends_on_its_text_only(onnx_embedder: OnnxEmbedder, chunks: list[str]) -> None:
    """Bitwise the same vector for a text alone, beside short questions or other articles, in any
    order and batch size: dynamic int8 scales computed over a padded batch once moved it (cosine
    0.9957 beside three questions)."""
    first = sorted((ROOT / "seeds").glob("*.txt"))[0].read_text(encoding="utf-8")[:800]
    alone = onnx_embedder.encode([first])
    beside_questions = onnx_embedder.encode(SHORT_QUESTIONS[:3] + [first])[-1:]
    beside_articles = onnx_embedder.encode([first, *chunks])[:1]
    assert np.array_equal(alone, beside_questions) and np.array_equal(alone, beside_articles)

    texts = chunks + SHORT_QUESTIONS + ["NATO", ""]
    reference = np.concatenate([onnx_embedder.encode([t]) for t in texts])
    for batch_size in (1, 3, 64):
        assert np.array_equal(onnx_embedder.encode(texts, batch_size=batch_size), reference), batch_size
    shuffled = np.random.default_rng(7).permutation(len(texts))
    assert np.array_equal(onnx_embedder.encode([texts[i] for i in shuffled]), reference[shuffled])


def test_thread_count_changes_no_bit(onnx_cache: Path, chunks: list[str]) -> None:
    """One worker or several (a Ray actor holding fewer CPUs): the same vectors."""
    texts = chunks[:16] + SHORT_QUESTIONS
    several = OnnxEmbedder(DEFAULT_EMBED_MODEL, cache_dir=onnx_cache)
    several.workers = 4  # more than this machine's cores: texts still run one per thread
    one = OnnxEmbedder(DEFAULT_EMBED_MODEL, cache_dir=onnx_cache)
    one.limit_threads(1)
    assert one.workers == 1
    assert np.array_equal(several.encode(texts), one.encode(texts))


def test_identity_names_the_export_and_runtime(onnx_embedder: OnnxEmbedder) -> None:
    import hashlib
    from importlib.metadata import version

    ident = onnx_embedder.identity
    assert ident.export_sha256 == hashlib.sha256(onnx_embedder.onnx_path.read_bytes()).hexdigest()
    assert ident.runtime == f"onnxruntime {version('onnxruntime').split('+')[0]}"


def test_long_text_is_truncated_not_rejected(onnx_embedder: OnnxEmbedder, chunks: list[str]) -> None:
    long_text = " ".join(chunks)
    assert onnx_embedder.count_tokens(long_text) > 1000
    vecs = onnx_embedder.encode([long_text, "short"])
    assert vecs.shape == (2, 384) and np.isfinite(vecs).all()


def test_count_tokens_matches_torch(
    onnx_embedder: OnnxEmbedder, torch_embedder: TorchEmbedder, chunks: list[str]
) -> None:
    texts = chunks + SHORT_QUESTIONS + ["", "  ", "Ünïcödé — “quotes” and emoji 🙂", " ".join(chunks)]
    for text in texts:
        assert onnx_embedder.count_tokens(text) == torch_embedder.count_tokens(text), text[:60]


def test_empty_input(onnx_embedder: OnnxEmbedder) -> None:
    out = onnx_embedder.encode([])
    assert out.shape == (0, 384) and out.dtype == np.float32


def test_second_construction_reuses_export(onnx_embedder: OnnxEmbedder, onnx_cache: Path) -> None:
    before = onnx_embedder.onnx_path.stat().st_mtime_ns
    again = OnnxEmbedder(DEFAULT_EMBED_MODEL, cache_dir=onnx_cache)
    assert again.export_seconds is None
    assert again.onnx_path == onnx_embedder.onnx_path
    assert again.onnx_path.stat().st_mtime_ns == before


def test_waiting_exporter_takes_the_other_ones_file(onnx_embedder: OnnxEmbedder, tmp_path: Path) -> None:
    """A second exporter blocks on the lock, then finds the file and does not export again."""
    target = onnx_model_file(tmp_path, onnx_embedder.identity.weights_sha256)
    target.parent.mkdir(parents=True)
    result: dict[str, float | None] = {}
    with (target.parent / ".export.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # this test plays the first exporter
        waiter = threading.Thread(
            target=lambda: result.update(s=export_int8(Path(onnx_embedder.identity.path), target))
        )
        waiter.start()
        waiter.join(timeout=2.0)
        assert waiter.is_alive(), "the second exporter did not wait for the lock"
        partial = target.with_name("partial.tmp")
        shutil.copyfile(onnx_embedder.onnx_path, partial)
        os.replace(partial, target)
        fcntl.flock(lock, fcntl.LOCK_UN)
    waiter.join(timeout=120)
    assert not waiter.is_alive()
    assert result == {"s": None}


def test_load_embedder_picks_onnx(onnx_embedder: OnnxEmbedder, onnx_cache: Path) -> None:
    emb = load_embedder(backend="onnx", cache_dir=onnx_cache)
    assert isinstance(emb, OnnxEmbedder) and emb.identity.backend == "onnx-int8"


def test_query_path_imports_no_torch(onnx_embedder: OnnxEmbedder, onnx_cache: Path) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from rag.embedding.onnx_backend import OnnxEmbedder\n"
        f"e = OnnxEmbedder(cache_dir=Path({str(onnx_cache)!r}))\n"
        "assert e.export_seconds is None\n"
        "v = e.encode(['Who did the president meet?', 'a longer passage ' * 40])\n"
        "assert v.shape == (2, 384)\n"
        "e.count_tokens('hello world')\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules)\n"
        "print(','.join(heavy) or 'none')\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "none"


def test_damaged_cached_export_says_where_it_is(onnx_embedder: OnnxEmbedder, tmp_path: Path) -> None:
    """Sessions open on first use, so a damaged cache file fails there with its path, not a trace."""
    from rag.embedding.base import EmbeddingError

    target = onnx_model_file(tmp_path, onnx_embedder.onnx_path.parent.name)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not an onnx model")
    broken = OnnxEmbedder(DEFAULT_EMBED_MODEL, cache_dir=tmp_path)
    assert broken.onnx_path == target
    with pytest.raises(EmbeddingError, match="delete it to re-export"):
        broken.encode(["a question"])


def test_weights_digest_is_cached_and_follows_the_file(tmp_path: Path) -> None:
    from rag.embedding.base import file_sha256

    import hashlib

    f = tmp_path / "model.safetensors"
    f.write_bytes(b"weights v1")
    assert file_sha256(f) == hashlib.sha256(b"weights v1").hexdigest()
    assert file_sha256(f) == hashlib.sha256(b"weights v1").hexdigest()  # from the sidecar
    f.write_bytes(b"weights v2 longer")
    assert file_sha256(f) == hashlib.sha256(b"weights v2 longer").hexdigest()
