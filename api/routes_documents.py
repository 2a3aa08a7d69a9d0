"""Writing endpoints: add, replace and delete documents (issue 6 fills this in)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
