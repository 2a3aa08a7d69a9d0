"""Strict JSON: nesting bounded before parsing, no NaN/Infinity, no repeated keys, no giant integers."""

from __future__ import annotations

import json

import pytest

from rag.ingestion.strictjson import MAX_DEPTH, JSONInputError, loads, nesting_depth


@pytest.mark.parametrize(
    "text,depth",
    [
        ("1", 0), ("[]", 1), ('{"a": [1, {"b": []}]}', 4), ('[[], [], {"a": []}]', 3),
        ('"[[[[{{{{"', 0),  # brackets inside a string are text
        ('["\\"[[[", [[]]]', 3),  # an escaped quote does not end the string
        ('["\\\\", [[]]]', 3),  # an escaped backslash before the closing quote does
        ("[" * 300_000 + "]" * 300_000, 300_000),
    ],
)
def test_nesting_depth(text, depth):
    assert nesting_depth(text) == depth


@pytest.mark.parametrize(
    "text",
    [
        "[" * 300_000 + "]" * 300_000,  # the body that answered 500
        '{"a":' * 100_000 + "1" + "}" * 100_000,
        '{"question": ' + "[" * 1000 + "]" * 1000 + "}",
        "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
        "[" * 500_000,  # deep and unclosed
    ],
)
def test_too_deep_is_refused_before_parsing(text):
    with pytest.raises(JSONInputError, match=f"nested deeper than {MAX_DEPTH} levels"):
        loads(text)


def test_deep_inside_strings_and_wide_structures_are_fine():
    assert loads(json.dumps({"text": "[" * 1_000_000})) == {"text": "[" * 1_000_000}
    assert loads("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    wide = loads("[" + ",".join(["1"] * 500_000) + "]")
    assert isinstance(wide, list) and len(wide) == 500_000
    assert len(loads(json.dumps({f"k{i}": i for i in range(50_000)}))) == 50_000
    assert loads(json.dumps([[]] * 100_000)) == [[]] * 100_000  # many shallow nests are shallow


@pytest.mark.parametrize(
    "text,reason",
    [
        ("[NaN]", "NaN is not a JSON number"),
        ('{"recency": Infinity}', "Infinity is not a JSON number"),
        ("-Infinity", "-Infinity is not a JSON number"),
        ('{"a": 1, "a": 2}', "the key 'a' appears twice"),
        ('[{"x": {"q": 1, "q": 1}}]', "the key 'q' appears twice"),
        ("[" + "9" * 5000 + "]", "more than 4300 digits"),
        ("{not json", "Expecting property name"),
        ("[1,]", "line 1 column 4"),
        ('"tab\tinside"', "Invalid control character"),
        ("", "Expecting value"),
        ('{"a": 1} {"b": 2}', "Extra data"),
    ],
)
def test_what_is_not_json_says_why(text, reason):
    with pytest.raises(JSONInputError, match=reason.replace("(", r"\(").replace("[", r"\[")):
        loads(text)


def test_json_the_service_reads_as_before():
    assert loads('{"a": [1, 2.5, true, null, "\\u00e9"], "b": {}}') == {"a": [1, 2.5, True, None, "é"], "b": {}}
    assert loads('{"a": 1e999}') == {"a": float("inf")}  # overflow is a number; the field limits judge it
    assert loads('"\\ud800"') == "\ud800"  # a lone surrogate escape parses; documents refuse it (see documents)
    assert loads('{"A": 1, "a": 2}') == {"A": 1, "a": 2}
