"""A full disk during a write: HTTP 507 naming the file and what to do, `rag ingest` exit 1 with one
sentence, and the index whole afterwards (same documents, readable, writable once space is freed).

The disk is real: a small tmpfs mounted for the test (root can mount one; elsewhere those tests
skip). `test_file_size_limit_stand_in` needs no root: RLIMIT_FSIZE makes the kernel refuse to
grow files (EFBIG) in a `rag ingest` subprocess, a stand-in for a full disk at the same OS
boundary, so the mapping is tested on every machine.
"""

from __future__ import annotations

import errno
import os
import resource
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from rag.config import Settings
from rag.service import Service
from rag.storage import Batch, ChunkRow, DocRow, Index, PendingDoc
from rag.storage.space import StorageFull, storage_full

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "seeds"
ARTICLE = "The harbour tramline of Brackwater opens next spring, the council said on Monday. " * 30


def _mount(folder: Path, size: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, check=False)
    return done.returncode == 0


@pytest.fixture()
def small_disk(tmp_path):
    """A 4 MiB tmpfs; `fill()` takes every free block, `free()` gives them back."""
    disk = tmp_path / "disk"
    if not _mount(disk, "4m"):
        pytest.skip("mounting a tmpfs needs root; test_file_size_limit_stand_in covers the mapping")
    filler = disk / "filler"

    class Disk:
        path = disk

        @staticmethod
        def fill(leave_kib: int = 0) -> None:
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            try:
                while True:
                    os.write(fd, b"\0" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
            finally:
                os.close(fd)
            if leave_kib:
                os.truncate(filler, os.path.getsize(filler) - leave_kib * 1024)

        @staticmethod
        def free() -> None:
            filler.unlink(missing_ok=True)

    yield Disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_api_answers_507_and_the_index_survives(small_disk, embedder):
    service = Service(Settings(index_dir=small_disk.path / "index", seeds_dir=SEEDS), embedder=embedder)
    try:
        service.seed_if_needed()
        c = TestClient(create_app(service))
        before = c.get("/documents").json()
        some = before[0]["id"]
        text_before = c.get(f"/documents/{some}").json()["text"]
        files_before = _files(small_disk.path / "index")
        small_disk.fill()

        writes = [
            c.post("/documents", json={"id": "tram-1", "text": ARTICLE}),
            c.post("/documents", files={"file": ("tram.txt", ARTICLE.encode(), "text/plain")}),
            c.delete(f"/documents/{some}"),
        ]
        for r in writes:
            assert r.status_code == 507, r.text
            error = r.json()["error"]
            assert error.startswith("no space left on device writing ") and str(small_disk.path / "index") in error
            assert "free space and retry" in error and "index is unchanged" in error and "Traceback" not in r.text

        assert c.get("/documents").json() == before, "nothing changed"
        assert c.get(f"/documents/{some}").json()["text"] == text_before
        assert c.post("/query", json={"question": "NATO", "mode": "hybrid"}).status_code == 200
        assert _files(small_disk.path / "index") <= files_before | {"store.sqlite-wal", "store.sqlite-shm"}, \
            "no half-written file left taking up room"
        with sqlite3.connect(small_disk.path / "index" / "store.sqlite") as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

        small_disk.free()
        r = c.post("/documents", json={"id": "tram-1", "text": ARTICLE})
        assert r.status_code == 200 and r.json()["added"] == ["tram-1"]
        assert any(p["doc_id"] == "tram-1" for p in c.post("/query", json={"question": "Brackwater tramline",
                                                                          "mode": "lexical"}).json()["passages"])
        assert c.delete(f"/documents/{some}").status_code == 200
    finally:
        service.close()


def test_sqlite_running_out_of_room_is_storage_full(small_disk, embedder):
    """A commit whose vectors fit but whose rows do not: SQLite's SQLITE_FULL, rolled back."""
    folder = small_disk.path / "index"
    service = Service(Settings(index_dir=folder, seeds_dir=SEEDS), embedder=embedder)
    manifest = service.index.manifest
    service.close()
    index = Index.open(folder, manifest)
    big = "word " * 60_000  # 300 KB of text in one chunk: its rows and words need far more than is left
    pending = PendingDoc(DocRow("big", None, None, None, "h", 1), big, [ChunkRow(1, "big", 0, 0, len(big), big)],
                         np.ones((1, manifest.dim), dtype=np.float32))
    small_disk.fill(leave_kib=200)
    with pytest.raises(StorageFull) as caught, index.writer():
        index.commit(Batch(upserts=[pending]))
    assert str(caught.value).startswith(f"no space left on device writing {folder / 'store.sqlite'}")
    assert index.store.counts() == (0, 0) and index.store.generation() == 0
    small_disk.free()
    with index.writer():
        assert index.commit(Batch(upserts=[pending])) == 1
    assert index.store.counts() == (1, 1)
    index.close()


def _rag(tmp_path: Path, *args: str, limit: int | None = None, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    environ |= {"RAG_SEEDS_DIR": str(tmp_path / "no-seeds"), "RAG_CACHE_DIR": str(ROOT / ".cache"), **env}

    def file_size_limit() -> None:  # in the child only: refuse to grow any file past `limit`
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-m", "rag.cli", *args], cwd=tmp_path, env=environ, capture_output=True,
                          text=True, timeout=300, preexec_fn=file_size_limit if limit else None)


def _one_sentence(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


def test_cli_ingest_on_a_full_disk(small_disk, tmp_path):
    folder = small_disk.path / "index"
    article = tmp_path / "tram.txt"
    article.write_text(ARTICLE)
    first = tmp_path / "first.txt"
    first.write_text("Storm closes the ferry\n\nThe ferry to Eastholm was cancelled all week.")
    assert _rag(tmp_path, "ingest", str(first), RAG_INDEX_DIR=str(folder)).returncode == 0
    small_disk.fill()
    done = _rag(tmp_path, "ingest", str(article), RAG_INDEX_DIR=str(folder))
    assert done.returncode == 1, done
    line = _one_sentence(done.stderr)
    assert line.startswith(f"error: no space left on device writing {folder}") and "free space and retry" in line
    small_disk.free()
    stats = _rag(tmp_path, "stats", RAG_INDEX_DIR=str(folder))
    assert "documents: 1" in stats.stdout, stats
    assert _rag(tmp_path, "ingest", str(article), RAG_INDEX_DIR=str(folder)).returncode == 0


def test_file_size_limit_stand_in(tmp_path):
    """EFBIG from RLIMIT_FSIZE reads like ENOSPC: exit 1, one sentence, the index as it was."""
    folder = tmp_path / "index"
    first = tmp_path / "first.txt"
    first.write_text("Storm closes the ferry\n\nThe ferry to Eastholm was cancelled all week.")
    assert _rag(tmp_path, "ingest", str(first), RAG_INDEX_DIR=str(folder)).returncode == 0
    many = tmp_path / "many.txt"
    many.write_text(" ".join(f"Paragraph {i}: the council of Brackwater met about the tramline." for i in range(3000)))
    largest = max(p.stat().st_size for p in folder.iterdir())
    done = _rag(tmp_path, "ingest", str(many), limit=largest + 64 * 1024, RAG_INDEX_DIR=str(folder))
    assert done.returncode == 1, done
    line = _one_sentence(done.stderr)
    assert line.startswith(f"error: file too large writing {folder}") and "free space and retry" in line, line
    stats = _rag(tmp_path, "stats", RAG_INDEX_DIR=str(folder))
    assert "documents: 1" in stats.stdout, stats


# --- the mapping ------------------------------------------------------------------------------
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EFBIG])
def test_no_room_errnos_are_storage_full(code, tmp_path):
    full = storage_full(OSError(code, os.strerror(code), str(tmp_path / "x.tmp")), tmp_path)
    assert isinstance(full, StorageFull) and full.path == tmp_path / "x.tmp"
    assert str(full).startswith(f"{os.strerror(code).lower()} writing {tmp_path / 'x.tmp'}: free space and retry")


def test_other_failures_are_not_storage_full(tmp_path):
    assert storage_full(OSError(errno.EIO, "Input/output error"), tmp_path) is None
    assert storage_full(PermissionError(errno.EACCES, "Permission denied"), tmp_path) is None
    assert storage_full(ValueError("no"), tmp_path) is None


def test_a_failed_rollback_after_a_full_disk_still_says_full(tmp_path):
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/x/vectors-2.faiss.tmp")
        except OSError:
            raise sqlite3.OperationalError("cannot rollback - no transaction is active")  # noqa: B904
    except sqlite3.OperationalError as exc:
        full = storage_full(exc, tmp_path)
    assert full is not None and full.path == Path("/x/vectors-2.faiss.tmp")


def test_other_os_errors_are_a_clear_500(make_service, monkeypatch):
    """The service's ingest raising EIO stands in for a failing disk (no real one can be made to)."""
    service = make_service()
    c = TestClient(create_app(service), raise_server_exceptions=False)

    def failing(*_a, **_k):
        raise OSError(errno.EIO, "Input/output error", "/some/index/vectors-9.faiss.tmp")

    monkeypatch.setattr(service, "ingest", failing)
    r = c.post("/documents", json={"text": "A ferry article."})
    assert r.status_code == 500 and r.headers["content-type"].startswith("application/json")
    assert "Input/output error" in r.json()["error"] and "Traceback" not in r.text

    def no_room(*_a, **_k):  # e.g. the temporary folder an upload spools to
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(service, "ingest", no_room)
    r = c.post("/documents", json={"text": "A ferry article."})
    assert r.status_code == 507 and "free space and retry" in r.json()["error"]
