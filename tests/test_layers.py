"""The package layering of `rag/` (its docstring): lower layers never import higher ones."""

from __future__ import annotations

import ast
from pathlib import Path

RAG = Path(__file__).resolve().parents[1] / "rag"

# Each unit and the units it may import. Loaders and the chunker sit below storage; the ingest
# pipeline above it, so `ingestion` is split into its low modules and `ingestion.pipeline`.
ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "text": set(),
    "observe": set(),  # hooks for metrics and traces: the library names its stages, never who listens
    "dates": {"config"},
    "schema": {"config", "dates"},
    "ingestion": {"config", "text", "dates"},
    "embedding": {"config"},
    "storage": {"config", "text", "dates"},
    "ingestion.pipeline": {"config", "text", "dates", "observe", "ingestion", "embedding", "storage"},
    "ingestion.watcher": {"config", "text", "dates", "observe", "ingestion", "storage", "ingestion.pipeline"},
    "retrieval": {"config", "text", "dates", "observe", "schema", "embedding", "storage"},
    "answering": {"config", "text", "dates", "observe", "schema", "retrieval"},
    "client": {"config", "dates", "schema"},  # speaks the JSON contract over HTTP, nothing else
    # standing questions: the index and the answering reached only through the service handed in
    "watches": {"config", "dates", "schema", "text", "ingestion"},
}


def _unit(parts: list[str]) -> str:
    # ingestion/__init__ hands out the pipeline's names lazily, so it sits at the pipeline's level.
    if parts[:2] in (["ingestion", "pipeline"], ["ingestion", "__init__"]):
        return "ingestion.pipeline"
    if parts[:2] == ["ingestion", "watcher"]:  # polls feeds into the pipeline
        return "ingestion.watcher"
    return parts[0]


def _imports(path: Path) -> set[str]:
    """The rag units a module imports, at any depth in the file (lazy imports count too)."""
    mod = list(path.relative_to(RAG).with_suffix("").parts)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = mod[: len(mod) - node.level] + (node.module.split(".") if node.module else [])
                if not node.module:  # `from . import x`
                    parts = parts + [node.names[0].name]
            elif node.module and node.module.split(".")[0] == "rag":
                parts = node.module.split(".")[1:]
            else:
                continue
            if parts:
                found.add(_unit(parts))
    return found


def test_lower_layers_never_import_higher_ones():
    bad = []
    for path in sorted(RAG.rglob("*.py")):
        parts = list(path.relative_to(RAG).with_suffix("").parts)
        unit = _unit(parts)
        if unit not in ALLOWED:  # service, cli, the package root: the top, may import anything
            continue
        for dep in _imports(path) - {unit} - ALLOWED[unit]:
            bad.append(f"{path.relative_to(RAG)} imports {dep}")
    assert bad == []


def test_every_package_says_what_it_owns_and_may_import():
    for init in RAG.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "import" in doc, f"{init.relative_to(RAG)} does not say what it may import"
