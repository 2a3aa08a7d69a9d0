"""JSON as the service reads it, from request bodies and .jsonl lines alike: RFC 8259, bounded.

Refused with a sentence (`JSONInputError`) rather than half-read or crashing the parser: nesting
deeper than `MAX_DEPTH` (checked on the raw text before parsing, so a body nested a million
levels deep costs a scan, not a stack), `NaN` / `Infinity` (not JSON), an object that repeats a
key (parsers disagree on which copy wins), and integers too long to convert. Imports nothing of
the project.
"""

from __future__ import annotations

import json
import re

import numpy as np

# Arrays and objects nested this deep at most. The deepest body the API takes is two levels
# (`/query` with `doc_ids`); articles are flat records. 64 leaves room for any extra metadata.
MAX_DEPTH = 64
# Python refuses to read integers longer than this (quadratic to convert); the message says so.
MAX_INT_DIGITS = 4300

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = np.zeros(256, dtype=np.int64)
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1
_SLICE = 1 << 20  # brackets summed per step: bounds the scan's memory whatever the body


class JSONInputError(ValueError):
    """Text that is not JSON the service reads. The message is the reason alone, for the caller
    to place: `f"{where}: invalid JSON ({exc})"`."""


def nesting_depth(text: str) -> int:
    """How deep arrays and objects nest, brackets inside strings not counted (no parsing)."""
    marks = np.frombuffer(_NOT_BRACKET.sub("", _STRING.sub("", text)).encode("ascii"), dtype=np.uint8)
    depth = deepest = 0
    for start in range(0, len(marks), _SLICE):
        running = np.cumsum(_STEP[marks[start : start + _SLICE]]) + depth
        deepest = max(deepest, int(running.max()))
        depth = int(running[-1])
    return deepest


def loads(text: str) -> object:
    """The value of one JSON text, or JSONInputError saying what is wrong with it."""
    if text.count("[") + text.count("{") > MAX_DEPTH and nesting_depth(text) > MAX_DEPTH:
        raise JSONInputError(f"arrays and objects nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text, parse_constant=_not_json, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise JSONInputError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:  # unreachable below MAX_DEPTH; kept so no input can crash a caller
        raise JSONInputError("arrays and objects nested too deeply") from None
    except ValueError as exc:
        if isinstance(exc, JSONInputError):
            raise
        if "digits" not in str(exc):
            raise JSONInputError(str(exc)) from None
        raise JSONInputError(f"a number has more than {MAX_INT_DIGITS} digits") from None


def _not_json(literal: str) -> object:
    raise JSONInputError(f"{literal} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    record = dict(pairs)
    if len(record) < len(pairs):
        seen: set[str] = set()
        repeated = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise JSONInputError(f"the key {repeated!r} appears twice in one object")
    return record
