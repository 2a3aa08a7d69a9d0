"""What the pure ASGI middleware (metrics, traces) reads of a request's scope."""

from __future__ import annotations

from starlette.routing import BaseRoute, Match
from starlette.types import Scope


def route_template(scope: Scope, routes: list[BaseRoute]) -> str:
    """The template of the route that served the request (Starlette records it in the scope); for
    a request refused before routing, the route its path would have matched; else "unmatched"."""
    found = scope.get("route")
    if found is None:
        found = next((r for r in routes if r.matches(scope)[0] != Match.NONE), None)
    return getattr(found, "path", None) or "unmatched"
