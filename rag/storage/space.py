"""A write that ran out of room (full disk, exhausted quota, file-size limit), told apart from
other failures so the shells can say so: HTTP 507 and a sentence, `rag ingest` exit 1.

The failures arrive in three guises: an OSError (ENOSPC, EDQUOT, EFBIG) from Python's own
writes, SQLite's SQLITE_FULL, and SQLite's "disk I/O error" when its shared-memory file could
not grow on a disk with no free block left.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
STORE_FILE = "store.sqlite"


class StorageFull(RuntimeError):
    """No room to write `path`; whatever was being committed was rolled back."""

    def __init__(self, path: Path, reason: str = "no space left on device") -> None:
        self.path = path
        super().__init__(
            f"{reason.lower()} writing {path}: free space and retry; the write was rolled back and "
            "the index is unchanged"
        )


def storage_full(exc: BaseException, folder: Path) -> StorageFull | None:
    """The StorageFull this exception means, or None when it is some other failure. The chain is
    followed: a rollback that fails after a full disk still reports the full disk."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found = _no_room(current, folder)
        if found is not None:
            return found
        current = current.__cause__ or current.__context__
    return None


def _no_room(exc: BaseException, folder: Path) -> StorageFull | None:
    if isinstance(exc, StorageFull):
        return exc
    if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
        return StorageFull(Path(exc.filename) if exc.filename else folder, exc.strerror or os.strerror(exc.errno))
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        shm_could_not_grow = code is not None and code & 0xFF == sqlite3.SQLITE_IOERR and _no_free_block(folder)
        if code == sqlite3.SQLITE_FULL or shm_could_not_grow:
            return StorageFull(folder / STORE_FILE)
    return None


@contextmanager
def no_space_told(folder: Path) -> Iterator[None]:
    """Re-raise a failed write that ran out of room as StorageFull (naming the file)."""
    try:
        yield
    except Exception as exc:
        full = storage_full(exc, folder)
        if full is None or full is exc:
            raise
        raise full from exc


def _no_free_block(folder: Path) -> bool:
    try:
        return os.statvfs(folder).f_bavail == 0
    except OSError:
        return False
