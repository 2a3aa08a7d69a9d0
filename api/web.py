"""The web page at `/` (issue 8 fills this in)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
