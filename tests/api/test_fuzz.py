"""Schemathesis fuzzes every operation of the API from its own OpenAPI schema, in process (ASGI).

Writes go to a throwaway copy of the seeds index, so the shared one is never damaged. Checked:
no 5xx ever, and every 4xx is JSON with an `error` sentence.
"""

from __future__ import annotations

import shutil
from collections import Counter
import sqlite3

import pytest
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, given, settings

from api.app import create_app
from rag.config import Settings
from rag.service import Service

MAX_EXAMPLES = 30


@pytest.fixture(scope="module")
def fuzz_service(seeds_service, embedder, tmp_path_factory):
    """A Service over a copy of the seeds index (SQLite copied with its backup API, then the vectors)."""
    src = seeds_service.settings.index_dir
    folder = tmp_path_factory.mktemp("fuzz-index")
    with sqlite3.connect(src / "store.sqlite") as source, sqlite3.connect(folder / "store.sqlite") as target:
        source.backup(target)
    for f in [*src.glob("vectors-*.faiss"), src / "manifest.json"]:
        shutil.copy2(f, folder / f.name)
    service = Service(seeds_service.settings.model_copy(update={"index_dir": folder}), embedder=embedder)
    assert service.health().documents == seeds_service.health().documents
    yield service
    service.close()


def _cases() -> list[tuple[str, str, GenerationMode]]:
    """(method, path, mode) for every operation; negative cases only where there is input to spoil."""
    spec = create_app(settings=Settings(api_keys=None, protect_reads=False)).openapi()
    out = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            modes = list(GenerationMode) if op.get("parameters") or op.get("requestBody") else [GenerationMode.POSITIVE]
            out += [(method.upper(), path, mode) for mode in modes]
    return out


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_service):
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(fuzz_service))


@pytest.mark.parametrize("method,path,mode", _cases(), ids=lambda v: getattr(v, "value", v))
def test_no_server_errors_and_every_4xx_is_json(fuzz_schema, method, path, mode):
    """Valid (positive) and invalid (negative) requests alike: 4xx JSON with `error`, never 5xx."""
    operation = fuzz_schema[path][method]
    seen: list[int] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case) -> None:
        response = case.call()
        seen.append(response.status_code)
        where = f"{case.method} {case.formatted_path}"
        assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:300]}"
        if 400 <= response.status_code < 500:
            body = response.json()
            assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], f"{where}: {response.text[:300]}"

    check()
    print(method, path, mode.value, sorted(Counter(seen).items()))
