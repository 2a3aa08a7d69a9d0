"""Articles with nothing visible, and ids and titles made of invisible characters, are refused with
a sentence naming the document, the same way for text files, JSON lines and records; a real
article keeps its text byte for byte, invisible characters and all (passages cite offsets)."""

from __future__ import annotations

import json
import re
import unicodedata

import pytest

from rag.ingestion.documents import (
    ID_PATTERN,
    DocumentError,
    document_from_record,
    document_from_text,
    has_visible,
    headline,
    load_path,
    validate_doc_id,
)

ALL_WHITESPACE = "".join(c for c in map(chr, range(0x10000)) if c.isspace())
INVISIBLE = {
    "zero-width spaces": "\u200b\u200b\u200b",
    "zero-width joiners": "\u200c\u200d\u2060",
    "byte-order marks": "\ufeff\ufeff",
    "soft hyphens": "\u00ad\u00ad",
    "bidi and other format characters": "\u202e\u2066\u2069\u061c\u180e\ufff9",
    "control characters": "\x01\x02\x07\x1b\x7f\x85\x9f",
    "every Unicode whitespace": ALL_WHITESPACE,
    "combining marks alone": "\u0301\u0308\u20dd",
    "private use only": "\ue000\uf8ff",
    "Hangul fillers": "\u3164\u115f\u1160\uffa0",
    "braille blank": "\u2800",
    "variation selectors": "\ufe0f\ufe00",
    "punctuation and symbols": "... --- *** !!! ☃ ★",
    "mixed": " \u200b\n\u00ad\t\ufeff\u3000\u0301",
}


@pytest.mark.parametrize("text", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_invisible_text_is_refused_by_every_loader(text, tmp_path):
    assert not has_visible(text)
    with pytest.raises(DocumentError, match=r"'ghost'.*no visible letter or digit"):
        document_from_text("ghost", text, "ghost.txt")
    refused = r"(document '{}' is empty: .*no visible letter or digit|`text` is missing or empty)"
    with pytest.raises(DocumentError, match="line 7: " + refused.format("ghost")):
        document_from_record({"id": "ghost", "text": text}, "line 7")
    (tmp_path / "ghost.txt").write_text(text, encoding="utf-8", errors="surrogatepass")
    with pytest.raises(DocumentError, match="ghost"):
        list(load_path(tmp_path / "ghost.txt"))
    lines = [json.dumps({"text": "A real one."}), json.dumps({"text": text})]
    (tmp_path / "batch.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DocumentError, match="batch.jsonl:2: " + refused.format("[0-9a-f]{16}")):
        list(load_path(tmp_path / "batch.jsonl"))


@pytest.mark.parametrize(
    "text",
    ["\u200bFerry\u200b resumes\u00ad", "\ufeffA", "7", "新闻", "Ünïcödé\u0301", "x\x0cy", "ℕ²", "\u3164ㄱ"],
)
def test_any_visible_letter_or_digit_keeps_the_text_byte_for_byte(text):
    assert document_from_text("ok", text).text == text
    assert document_from_record({"id": "ok", "text": text}, "here").text == text


def test_nul_and_lone_surrogates_are_refused_with_their_offset(tmp_path):
    with pytest.raises(DocumentError, match="NUL character at offset 5"):
        document_from_text("bin", "hello\x00world", "bin.txt")
    with pytest.raises(DocumentError, match="NUL character at offset 2"):
        document_from_record({"text": "ab\x00"}, "r")
    for field in ("text", "title", "url", "id"):
        record = {"text": "Fine text.", field: "x\ud800y"}
        with pytest.raises(DocumentError, match=rf"`{field}` holds a lone surrogate \(U\+D800\) at offset 1"):
            document_from_record(record, "r")
    (tmp_path / "s.jsonl").write_text('{"text": "caf\\udc80 au lait"}\n')
    with pytest.raises(DocumentError, match=r"s.jsonl:1: `text` holds a lone surrogate \(U\+DC80\) at offset 3"):
        list(load_path(tmp_path / "s.jsonl"))


@pytest.mark.parametrize("title", [" ", "\u200b", "\u00ad\ufeff", "—", 42, ["a list"]])
def test_titles_need_a_visible_letter_or_digit(title):
    with pytest.raises(DocumentError, match="the title"):
        document_from_record({"text": "Real text.", "title": title}, "r")
    assert document_from_record({"text": "Real text.", "title": "Budget 2024"}, "r").title == "Budget 2024"


def test_an_invisible_first_line_is_no_headline():
    assert headline("\u200b\u200b") is None
    assert headline("# \u00ad") is None
    doc = document_from_text("d", "\u200b\n\nThe council met on Monday.")
    assert doc.title is None and doc.text == "\u200b\n\nThe council met on Monday."


@pytest.mark.parametrize(
    "bad",
    ["\u200b", "a\u200bb", "\u3164", " ", "   ", "\u00a0", "\ufeffid", "a\u202eb", "x\x85", "\u2028", "a/b", "\t"],
)
def test_invisible_ids_are_refused_by_every_loader(bad, tmp_path):
    with pytest.raises(DocumentError):
        validate_doc_id(bad)
    with pytest.raises(DocumentError, match="document id"):
        document_from_record({"id": bad, "text": "Real text."}, "r")
    with pytest.raises(DocumentError, match="document id"):
        document_from_text(bad, "Real text.")


def test_the_id_pattern_is_the_id_rule():
    """ID_PATTERN (stated in the OpenAPI document) accepts exactly the ids validate_doc_id does."""
    rx = re.compile(ID_PATTERN)
    differ = []
    for cp in [*range(0x10000), *range(0x10000, 0x110000, 251)]:
        c = chr(cp)
        if unicodedata.category(c) == "Cs":
            continue
        for candidate in (c, f"a{c}b", c * 3, f"{c} ", f" {c}", f".{c}"):
            try:
                validate_doc_id(candidate)
                ok = True
            except DocumentError:
                ok = False
            if ok != bool(rx.fullmatch(candidate)):
                differ.append(candidate)
    assert differ == []
    for fine in ("001_7db6926444a715ac", "storm report", "新闻-1", "a.b", "...", "x" * 200):
        assert validate_doc_id(fine) == fine and rx.fullmatch(fine)


def test_hostile_json_lines_name_their_line(tmp_path):
    """`rag ingest` reads .jsonl with the same strict JSON as the API (rag.ingestion.strictjson)."""
    cases = {
        "[" * 200_000 + "]" * 200_000: "arrays and objects nested deeper than 64 levels",
        '{"text": "Ferry", "text": "Other"}': "the key 'text' appears twice",
        '{"text": "Ferry", "published": NaN}': "NaN is not a JSON number",
        '{"text": "Ferry", "n": ' + "9" * 5000 + "}": "a number has more than 4300 digits",
    }
    for line, reason in cases.items():
        (tmp_path / "bad.jsonl").write_text(json.dumps({"text": "A fine first article."}) + "\n" + line + "\n")
        with pytest.raises(DocumentError, match=re.escape(f"bad.jsonl:2: invalid JSON ({reason}")):
            list(load_path(tmp_path / "bad.jsonl"))

