"""`rag serve` as a user starts it: a real process on a free loopback port over a fresh index of
the seeds, for tests that talk to it over the network (MCP clients, rag.client, Prometheus)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
KEY = "test-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rag_env(folder: Path, **env: str) -> dict[str, str]:
    """The environment of a `rag` command over an index in `folder` built from the seeds."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OTEL_", "PROMETHEUS_"))}
    return environ | {
        "RAG_INDEX_DIR": str(folder / "index"), "RAG_SEEDS_DIR": str(ROOT / "seeds"),
        "RAG_CACHE_DIR": str(ROOT / ".cache"), "HF_HUB_OFFLINE": "1", **env,
    }


class RagServe:
    """`rag serve --port N` in `folder`; entering waits until /health answers, leaving stops it."""

    def __init__(self, folder: Path, **env: str) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = rag_env(folder, **env)
        self.log = folder / "serve.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "RagServe":
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rag.cli", "serve", "--port", str(self.port)], cwd=ROOT, env=self.env,
            stdout=subprocess.DEVNULL, stderr=self.log.open("w"),
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rag serve exited: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"rag serve did not answer: {self.log.read_text()}")

    def __exit__(self, *_: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
