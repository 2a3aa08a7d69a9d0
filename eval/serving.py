"""A server process on loopback for benchmarks and tests: a free port, waiting until it answers,
stopping it. One copy of the start-up loop that `rag serve` and `llama_cpp.server` callers share."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx

LOOPBACK = "127.0.0.1"


class ServerDidNotStart(RuntimeError):
    """The process exited or did not answer in time; the message ends with its log's tail."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_until_up(proc: subprocess.Popen, url: str, timeout_s: float, log: Path | None = None,
                  interval_s: float = 0.3) -> None:
    """Return once GET `url` answers 200; raise ServerDidNotStart if `proc` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise ServerDidNotStart(f"exited at start with {proc.returncode}{_tail(log)}")
        try:
            if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise ServerDidNotStart(f"did not answer within {timeout_s:.0f} s{_tail(log)}")
        time.sleep(interval_s)


def stop(proc: subprocess.Popen, timeout_s: float = 30) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tail(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    return ":\n" + log.read_text(errors="replace")[-2000:]
