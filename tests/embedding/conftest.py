"""Fixtures of the embedding tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def fresh_onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty cache folder, so the first OnnxEmbedder made on it exports the model afresh with the
    installed releases (never a file cached by earlier ones); shared, as an export takes 10-60 s."""
    return tmp_path_factory.mktemp("onnx-cache")
