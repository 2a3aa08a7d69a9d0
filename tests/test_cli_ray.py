"""`--ray` on the command line without a cluster: how its optional ADDRESS is read, and the
sentence (exit 2) when the `ray` extra is missing. Ray is hidden from the child process by
`sys.modules["ray"] = None`, which makes `import ray` fail as it does without the extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rag.cli import RAY_LOCAL, optional_ray_address

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        (["ingest", "--ray", "seeds"], ["ingest", "--ray", RAY_LOCAL, "seeds"]),
        (["ingest", "seeds", "--ray"], ["ingest", "seeds", "--ray", RAY_LOCAL]),
        (["ingest", "--ray", "10.0.0.5:6379", "a.txt"], ["ingest", "--ray", "10.0.0.5:6379", "a.txt"]),
        (["ingest", "--ray", "ray://head:10001", "a.txt"], ["ingest", "--ray", "ray://head:10001", "a.txt"]),
        (["serve", "--ray", "auto", "--replicas", "3"], ["serve", "--ray", "auto", "--replicas", "3"]),
        (["serve", "--ray", "--replicas", "3"], ["serve", "--ray", RAY_LOCAL, "--replicas", "3"]),
        (["ingest", "notes:2024.txt"], ["ingest", "notes:2024.txt"]),
    ],
)
def test_ray_takes_an_optional_address(argv, want):
    assert optional_ray_address(argv) == want


@pytest.mark.parametrize("args", [["ingest", "--ray", "seeds"], ["serve", "--ray", "--replicas", "2"]])
def test_without_the_ray_extra_the_commands_say_how_to_install_it(args, tmp_path):
    code = f"import sys; sys.modules['ray'] = None; sys.argv = ['rag', *{args!r}]; from rag.cli import main; main()"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={"PATH": "/usr/bin:/bin", "RAG_INDEX_DIR": str(tmp_path / "index"), "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 2, r.stderr
    assert "pip install 'rag-news[ray]'" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "index").exists()  # refused before touching anything


def test_an_invalid_setting_with_ray_is_a_sentence(tmp_path):
    """`--ray` reads settings where every command does: a bad RAG_* value exits 2, no traceback."""
    env = {"PATH": "/usr/bin:/bin", "RAG_INDEX_DIR": str(tmp_path / "index"), "HF_HUB_OFFLINE": "1", "RAG_TOP_K": "many"}
    r = subprocess.run([sys.executable, "-m", "rag.cli", "ingest", "--ray", "seeds"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120, env=env)
    assert r.returncode == 2, r.stderr
    assert "invalid RAG_* setting: top_k" in r.stderr and "Traceback" not in r.stderr
