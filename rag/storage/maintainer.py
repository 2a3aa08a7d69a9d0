"""A background thread that keeps an index's segments merged and its word index fresh."""

from __future__ import annotations

import logging
import threading

from .index import Index

log = logging.getLogger("rag.storage")


class Maintainer:
    """Runs `Index.maintain` every `every_s` seconds until stopped. A failure (a full disk, say)
    is logged and retried at the next round: the index stays as last committed meanwhile."""

    def __init__(self, index: Index, every_s: float) -> None:
        self.index = index
        self.every_s = every_s
        self.merges = 0
        self.errors = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rag-maintainer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the current round of merges (a merge already committing finishes first)."""
        self._stop.set()
        self._thread.join(timeout)

    @staticmethod
    def _log(step: dict) -> None:
        log.info("merged %(merged)d segments (%(vectors)d vectors) in %(seconds).2f s", step)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.merges += len(self.index.maintain(on_step=self._log))
            except Exception as exc:  # noqa: BLE001 - keep serving; the index is as last committed
                self.errors += 1
                self.last_error = str(exc)
                log.warning("index maintenance failed (retried in %.0f s): %s", self.every_s, exc)
        self.index.store.close()
