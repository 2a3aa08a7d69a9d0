"""Advisory file locks (flock) that the index's writers, merges and segment builds share: the
kernel drops a lock when its holder dies, so a lock still held means its work is still running."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def flock(path: Path, blocking: bool) -> Iterator[bool]:
    """An advisory lock on its own open file, so threads of one process exclude each other too;
    yields whether it was taken (always, when `blocking`)."""
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
