"""The int8 export of the packaged model, made afresh, is the recorded one and gives the recorded
vectors for fixed texts.

The export is rebuilt from the installed torch, transformers, onnx and onnxruntime, and a changed
build moved the seeds figures (hit@1 0.808 vs 0.846). Two checks, each against a recorded digest:

- the export itself: the sha256 of its graph and weights (`export_digest`). Exporting is
  deterministic (two exports are byte-identical) and quantising is elementwise numpy, so this
  should hold on any machine, and a change means the tools changed the model;
- its output: FIXED_TEXTS embedded as one batch and one text at a time (the one-thread session),
  compared with the reference vectors in `data/`, whose sha256 is recorded below. They must agree
  within TOLERANCE. A hash of rounded vectors is not used: 37 of these 15,360 components lie
  within 1e-6 of a 3-decimal rounding boundary, so float noise far below anything that matters
  would flip it.

The runtime matters as much as the export: onnxruntime 1.29.0 runs the very same file to vectors
up to 3.4e-2 away (lowest cosine 0.980). So does the CPU: ONNX Runtime picks its int8 kernels by
instruction set (without VNNI the u8s8 products can saturate; its higher-precision path moves
components by up to 5e-2 on this AVX2 machine), so reference vectors are kept per CPU class
(`cpu_class()`), and a class without one skips the vector check, saying how to record it.

The pins in constraints.txt decide the versions. After bumping torch, transformers, tokenizers,
onnx or onnxruntime deliberately (and re-measuring the figures the README reports), re-record:

    .venv/bin/python -m tests.embedding.test_export_checksum

It exports into a temporary folder, writes this CPU class's reference vectors and prints the
constants to paste below (keep the RECORDED_VECTORS rows of other classes only if still valid).
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from rag.config import DEFAULT_EMBED_MODEL
from rag.embedding.onnx_backend import OnnxEmbedder

DATA = Path(__file__).resolve().parent / "data"

# Largest allowed difference of one vector component from the reference. Repeated runs and thread
# counts here are bitwise identical, and float32 rounding in the pooling is ~1e-7; the smallest
# real changes measured move components by ~1e-2 (another graph-optimisation level: 1.3e-2; every
# weight nudged by one part in 10^7, which int8 activation rounding amplifies: 2.4e-2; onnxruntime
# 1.29.0 instead of 1.32.0: 3.4e-2).
TOLERANCE = 1e-4

# The releases the record was made with (constraints.txt); changing any of them means re-recording.
RECORDED_WITH = {"torch": "2.13.0", "transformers": "5.24.0", "tokenizers": "0.23.3", "onnx": "1.23.2",
                 "onnxruntime": "1.32.0"}  # fmt: skip
RECORDED_EXPORT_SHA256 = "fdb8998e367e35fa6f95af4d1d14ac1c5252f6f6f91eef08ca7b49b84f898145"
# sha256 of each CPU class's reference vectors, data/vectors-<class>.npy (float32 bytes).
RECORDED_VECTORS = {"x86_64-avx2": "a78a928976cc46cb167e15496dcae6a5b22f30c21857659d0b236ecf4c928eba"}

# ORT's CPU kernels are chosen by these instruction-set flags (/proc/cpuinfo).
KERNEL_FLAGS = ("avx2", "avx_vnni", "avx512f", "avx512bw", "avx512_vnni", "amx_int8", "asimddp", "i8mm", "sve")

# News passages, questions, one-word queries, odd characters, an empty text and one far past the
# 256-token window, so truncation is part of what is checked.
FIXED_TEXTS = [
    "Who did the president meet?",
    "What does Russia demand on NATO?",
    "How many people died in the flood?",
    "When will the new law take effect?",
    "NATO",
    "ceasefire",
    "Vladimir Putin appears open to negotiations with Donald Trump in order to reach an agreement "
    "for a ceasefire in Ukraine, according to Reuters.",
    "However, Putin rules out any compromise regarding territorial matters and insists that Ukraine "
    "must abandon its aspirations to join NATO.",
    "The central bank raised its main interest rate by half a percentage point on Thursday, the "
    "fourth increase this year, and said inflation would stay above target until 2026.",
    "Floodwaters rose overnight in the river valley; rescue teams evacuated 3,400 residents and "
    "officials confirmed 12 deaths by Sunday morning.",
    "The new privacy law takes effect on 1 January and requires companies to report data breaches "
    "within 72 hours.",
    "Shares of the chipmaker fell 8% after it cut its revenue forecast, citing weak demand for "
    "personal computers.",
    "Scientists at the observatory announced the discovery of an exoplanet orbiting in the "
    "habitable zone of a nearby red dwarf.",
    "The striker scored twice in the second half as the home side came back from two goals down "
    "to win the cup final.",
    "Ünïcödé — “quotes”, emoji 🙂 and 数字 in one line.",
    "$4.5bn deal: 12% stake, 3:1 ratio, +0.25 pp (Q3/2024) #markets @Reuters",
    "WHO WARNS OF A NEW WAVE OF INFECTIONS AS WINTER APPROACHES",
    "What is a good recipe for chocolate cake?",
    "",
    " ".join(
        f"Paragraph {i}: the talks in Geneva continued late into the night, delegates said, "
        "with no agreement yet on the ceasefire line or the exchange of prisoners."
        for i in range(1, 16)
    ),
]


def embed_fixed(embedder: OnnxEmbedder) -> np.ndarray:
    """The fixed texts as one batch, then one at a time: (2 * len(FIXED_TEXTS), dim) float32.

    Int8 activations are quantised per batch, so the batching is part of what is fixed."""
    together = embedder.encode(FIXED_TEXTS)
    alone = np.concatenate([embedder.encode([t]) for t in FIXED_TEXTS])
    return np.concatenate([together, alone]).astype(np.float32, copy=False)


def export_digest(model_file: Path) -> str:
    """sha256 of the export's graph (ops, wiring, attributes) and weights; names of nodes and
    the file's metadata are left out."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(model_file))
    h = hashlib.sha256()
    for node in model.graph.node:
        h.update("\0".join([node.domain, node.op_type, *node.input, ">", *node.output]).encode())
        for attr in node.attribute:
            h.update(attr.SerializeToString(deterministic=True))
    for init in sorted(model.graph.initializer, key=lambda t: t.name):
        array = np.ascontiguousarray(numpy_helper.to_array(init))
        h.update(f"{init.name}\0{array.dtype.str}\0{array.shape}".encode())
        h.update(array.tobytes())
    return h.hexdigest()


def vectors_sha256(vectors: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(vectors, dtype="<f4").tobytes()).hexdigest()


def cpu_class() -> str:
    """The machine and the instruction-set flags that select ONNX Runtime's kernels."""
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags.update(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return "-".join([platform.machine(), *(f for f in KERNEL_FLAGS if f in flags)])


def reference_file(cls: str) -> Path:
    return DATA / f"vectors-{cls}.npy"


def installed_versions() -> dict[str, str]:
    """The releases that make and run the export, local labels such as `+cpu` dropped."""
    return {name: version(name).split("+")[0] for name in RECORDED_WITH}


def version_note() -> str:
    changed = {k: f"{RECORDED_WITH[k]} -> {v}" for k, v in installed_versions().items() if v != RECORDED_WITH[k]}
    return f"releases changed since the record: {changed or 'none'}"


RERECORD = "if the change is deliberate, re-record: python -m tests.embedding.test_export_checksum"


@pytest.fixture(scope="module")
def fresh_export(fresh_onnx_cache: Path) -> OnnxEmbedder:
    """The packaged model exported by the installed releases in this run, never an earlier file."""
    return OnnxEmbedder(DEFAULT_EMBED_MODEL, cache_dir=fresh_onnx_cache)


@pytest.fixture(scope="module")
def fresh_vectors(fresh_export: OnnxEmbedder) -> np.ndarray:
    return embed_fixed(fresh_export)


def test_export_is_the_recorded_one(fresh_export: OnnxEmbedder) -> None:
    digest = export_digest(fresh_export.onnx_path)
    assert digest == RECORDED_EXPORT_SHA256, (
        f"the int8 export's graph and weights changed (sha256 {digest}); {version_note()}; {RERECORD}"
    )


def test_export_gives_the_recorded_vectors(request: pytest.FixtureRequest) -> None:
    cls = cpu_class()
    if cls not in RECORDED_VECTORS:
        pytest.skip(f"no reference vectors for CPU class {cls} (int8 kernels differ by CPU); "
                    f"record them with: python -m tests.embedding.test_export_checksum")
    reference = np.load(reference_file(cls))
    assert vectors_sha256(reference) == RECORDED_VECTORS[cls], f"{reference_file(cls)} is not the recorded file"
    vectors = request.getfixturevalue("fresh_vectors")
    assert vectors.shape == reference.shape, f"{vectors.shape} vectors against {reference.shape} recorded; {RERECORD}"
    diff = np.abs(vectors - reference)
    if diff.max() <= TOLERANCE:
        return
    cos = np.einsum("nd,nd->n", vectors, reference)
    worst = int(diff.max(axis=1).argmax())
    pytest.fail(
        f"vectors moved: max abs difference {diff.max():.2e} (tolerance {TOLERANCE:.0e}) at text "
        f"{worst % len(FIXED_TEXTS)} ({'batched' if worst < len(FIXED_TEXTS) else 'alone'}), "
        f"{int((diff > TOLERANCE).sum())} of {diff.size} components beyond it, lowest cosine to the "
        f"reference {cos.min():.5f}; {version_note()}; {RERECORD}",
        pytrace=False,
    )


def test_repeated_encodings_are_identical(fresh_export: OnnxEmbedder, fresh_vectors: np.ndarray) -> None:
    """The determinism the tolerance relies on: the same texts in the same batches, the same bits."""
    assert np.array_equal(embed_fixed(fresh_export), fresh_vectors)


def record() -> None:
    """Export afresh, write this CPU class's reference vectors, print the constants to paste."""
    with tempfile.TemporaryDirectory() as folder:
        embedder = OnnxEmbedder(DEFAULT_EMBED_MODEL, cache_dir=Path(folder))
        vectors = embed_fixed(embedder)
        digest = export_digest(embedder.onnx_path)
    cls = cpu_class()
    DATA.mkdir(exist_ok=True)
    np.save(reference_file(cls), vectors)
    print(f"wrote {reference_file(cls)} {vectors.shape}; paste into {Path(__file__).name}:", file=sys.stderr)
    print(f"RECORDED_WITH = {json.dumps(installed_versions())}")
    print(f'RECORDED_EXPORT_SHA256 = "{digest}"')
    print(f'RECORDED_VECTORS = {{"{cls}": "{vectors_sha256(vectors)}"}}')


if __name__ == "__main__":
    record()
