"""Shared fixtures: the real model and one real index of the seeds, built once per session."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"
GOLD = ROOT / "eval" / "gold" / "seeds.jsonl"


@pytest.fixture(scope="session")
def embedder():
    from rag.config import Settings
    from rag.embedding import load_embedder

    s = Settings()  # the shipped default backend (ONNX), exported once into .cache
    return load_embedder(s.embed_model, s.embed_backend, s.cache_dir)


@pytest.fixture(scope="session")
def seeds_service(tmp_path_factory, embedder):
    """A Service over a fresh index of the five seed articles."""
    from rag.config import Settings
    from rag.service import Service

    folder = tmp_path_factory.mktemp("seeds-index")
    service = Service(Settings(index_dir=folder, seeds_dir=SEEDS), embedder=embedder)
    service.seed_if_needed()
    yield service
    service.close()


@pytest.fixture(scope="session")
def client(seeds_service):
    from fastapi.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(seeds_service)) as c:
        yield c


@pytest.fixture(scope="session")
def gold() -> list[dict]:
    return [json.loads(line) for line in GOLD.read_text().splitlines() if line.strip()]


@pytest.fixture()
def make_service(tmp_path, embedder):
    """Factory for a Service over its own empty index (for tests that write)."""
    from rag.config import Settings
    from rag.service import Service

    made = []

    def make(**overrides):
        settings = Settings(index_dir=overrides.pop("index_dir", tmp_path / "index"), seeds_dir=SEEDS, **overrides)
        s = Service(settings, embedder=embedder, rebuild=overrides.pop("rebuild", False))
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()
