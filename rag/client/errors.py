"""The server's refusals as exceptions: each carries the status and the server's own sentence."""

from __future__ import annotations


class ClientError(Exception):
    """A request the server answered with an error (or could not be reached: `status` None)."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message if status is None else f"{status}: {message}")
        self.status = status
        self.message = message


class BadRequest(ClientError):
    """400, 413, 415, 422: the request itself is wrong; the message says what to change."""


class Unauthorized(ClientError):
    """401: no API key, or not a valid one."""


class Forbidden(ClientError):
    """403: refused whatever the key (a cross-site write)."""


class NotFound(ClientError):
    """404: no such document (or route)."""


class ServerError(ClientError):
    """5xx: the server failed (507: its disk is full; 503: a backend it needs is down)."""


class ConnectionFailed(ClientError):
    """No answer at all: the server is down, unreachable, or too slow (after the retries a read gets)."""


def error_for(status: int, message: str) -> ClientError:
    if status == 401:
        return Unauthorized(status, message)
    if status == 403:
        return Forbidden(status, message)
    if status == 404:
        return NotFound(status, message)
    if status >= 500:
        return ServerError(status, message)
    return BadRequest(status, message)
