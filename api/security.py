"""API keys and request limits (issue 6 fills this in)."""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Middleware and handlers for limits; a no-op until keys and limits exist."""
