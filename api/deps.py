"""The one Service of the app, built lazily, handed to routes as a FastAPI dependency."""

from __future__ import annotations

import threading

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from rag.config import Settings
from rag.service import Service


class ServiceHolder:
    def __init__(self, service: Service | None, settings: Settings | None) -> None:
        self._service = service
        self._settings = settings
        self._lock = threading.Lock()

    @property
    def settings(self) -> Settings:
        """The settings in force: the service's own once it exists."""
        return self._service.settings if self._service is not None else (self._settings or Settings())

    @property
    def ready(self) -> bool:
        return self._service is not None

    def get(self) -> Service:
        with self._lock:
            if self._service is None:
                self._service = Service(self._settings or Settings())
            return self._service


async def get_service(request: Request) -> Service:
    """async: once the service exists this is an attribute read, not worth a thread-pool hop;
    building it (the first request of a lazily started app) happens in a worker thread."""
    holder: ServiceHolder = request.app.state.holder
    if holder.ready:
        return holder.get()
    return await run_in_threadpool(holder.get)
