"""Documents and their loaders: .txt, .md, .jsonl / .jsonl.gz with one article a line, and web
pages (.html, .htm; rag/ingestion/html.py)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .. import dates
from . import strictjson

SUPPORTED_SUFFIXES = (".txt", ".md", ".jsonl", ".jsonl.gz", ".html", ".htm")
MAX_ID_CHARS = 200
# A headline is a short first line without a closing full stop; longer lines are lede sentences.
HEADLINE_MAX_CHARS = 150
HEADLINE_MAX_WORDS = 25
# Characters an id may not hold: path separators, controls (C0, DEL, C1), and the invisible ones of
# the Basic Multilingual Plane (no-break and other spaces, zero-width and bidi format characters,
# the BOM, fillers, variation selectors), with which two ids that look alike would differ.
_ID_FORBIDDEN_CLASS = (
    r"/\\\x00-\x1f\x7f-\x9f\u00a0\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2000-\u200f"
    r"\u2028-\u202f\u205f-\u206f\u2800\u3000\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb"
)
_ID_FORBIDDEN = re.compile(f"[{_ID_FORBIDDEN_CLASS}]")
# The whole id rule as one regular expression (the same in Python and ECMA-262), stated in the
# OpenAPI schema; `validate_doc_id` checks it piece by piece to say what is wrong.
ID_PATTERN = rf"^(?!\.\.?$)(?! *$)[^{_ID_FORBIDDEN_CLASS}]+$"
# A letter or digit of any script (Python's Unicode \w), less the Hangul fillers: letters that
# show nothing. A text, or a title, without one has nothing a reader could see or search.
VISIBLE_PATTERN = r"[^\W_\u115f\u1160\u3164\uffa0]"
_VISIBLE = re.compile(VISIBLE_PATTERN)


class DocumentError(ValueError):
    """Input that cannot become a document; the message says what and where."""


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    title: str | None = None
    source: str | None = None
    published: str | None = None
    content_hash: str = field(default="", compare=False)
    author: str | None = None  # as the source states it (a web page's byline)

    def __post_init__(self) -> None:
        validate_doc_id(self.id)
        if not self.text.strip():
            raise DocumentError(f"document {self.id!r} is empty")
        if not self.content_hash:
            object.__setattr__(self, "content_hash", content_hash(self))


def content_hash(doc: Document) -> str:
    """Hash of everything a reader sees: unchanged hash means re-ingesting is a no-op."""
    stated = [doc.text, doc.title, doc.source, doc.published] + ([doc.author] if doc.author else [])
    payload = json.dumps(stated, ensure_ascii=False)  # (without an author, hashes are as before authors were kept)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def validate_doc_id(doc_id: str) -> str:
    """1..MAX_ID_CHARS characters matching ID_PATTERN; the error names the offending character."""
    if not doc_id or not doc_id.strip(" "):
        raise DocumentError("document id must not be empty or only spaces")
    if len(doc_id) > MAX_ID_CHARS:
        raise DocumentError(f"document id is longer than {MAX_ID_CHARS} characters")
    bad = _ID_FORBIDDEN.search(doc_id)
    if bad:
        raise DocumentError(
            f"document id {doc_id!r} contains {_describe(bad.group())} at offset {bad.start()}: an id may not "
            "hold a path separator, control character or invisible character"
        )
    if doc_id in {".", ".."}:
        raise DocumentError(f"document id {doc_id!r} would name a folder, like a path separator")
    return doc_id


def _describe(char: str) -> str:
    if char in "/\\":
        return f"a path separator ({char!r})"
    name = unicodedata.name(char, "")
    if unicodedata.category(char) == "Cc" or not name:
        return f"a control character (U+{ord(char):04X})"
    return f"an invisible character (U+{ord(char):04X} {name})"


def has_visible(text: str) -> bool:
    """True when the text holds a letter or digit a reader can see (VISIBLE_PATTERN)."""
    return _VISIBLE.search(text) is not None


def check_characters(fields: dict[str, object], where: str) -> None:
    """Strings of new input are made of characters: a JSON `\\ud800` escape is not one (SQLite and
    UTF-8 cannot hold it)."""
    for name, value in fields.items():
        if not isinstance(value, str):
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise DocumentError(
                f"{where}: `{name}` holds a lone surrogate (U+{ord(value[exc.start]):04X}) at offset {exc.start}, "
                "which is not a character"
            ) from None


def check_content(doc_id: str, text: str, title: object, where: str) -> None:
    """What a reader sees of new input: text with a visible letter or digit and no NUL, and a
    title, if any, with one too. Stored text stays byte for byte as given (passages cite it by
    offsets), so input is refused, never fixed."""
    label = f"{where}: document {doc_id!r}"
    if "\x00" in text:
        raise DocumentError(
            f"{label}: the text holds a NUL character at offset {text.index(chr(0))}: binary data is not an article"
        )
    if not has_visible(text):
        raise DocumentError(
            f"{label} is empty: its text has no visible letter or digit (only spaces, invisible, format or "
            "control characters, marks or symbols)"
        )
    if title is not None and not (isinstance(title, str) and has_visible(title)):
        raise DocumentError(f"{label}: the title must be text with a visible letter or digit (or left out)")


def headline(first_line: str) -> str | None:
    """The first line as a title when it reads as a headline: short, no closing full stop."""
    line = first_line.strip().strip("#").strip()
    if not has_visible(line) or len(line) > HEADLINE_MAX_CHARS or len(line.split()) > HEADLINE_MAX_WORDS:
        return None
    if line.endswith((".", "!", ";", ",", ":")) and not line.endswith("..."):
        return None
    return line


def decode_utf8(data: bytes, where: str) -> str:
    """Strict UTF-8 (a BOM is dropped); the error names the first bad byte's offset."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{where} is not UTF-8: invalid byte at offset {exc.start}") from None


def _display_source(path: Path) -> str:
    """Path relative to the working directory (the project) when inside it, else as given."""
    try:
        rel = os.path.relpath(path.resolve(), Path.cwd().resolve())
    except ValueError:  # another drive on Windows
        return path.as_posix()
    return path.as_posix() if rel.startswith("..") else Path(rel).as_posix()


def document_from_text(doc_id: str, text: str, source: str | None = None) -> Document:
    first_line = text.lstrip("\ufeff").split("\n", 1)[0]
    has_body = "\n" in text.strip()
    validate_doc_id(doc_id)
    check_content(doc_id, text, None, source or doc_id)
    return Document(id=doc_id, text=text, title=headline(first_line) if has_body else None, source=source)


def document_from_record(record: dict, where: str) -> Document:
    """One JSON article: only `text` is required; `url` becomes the source."""
    if not isinstance(record, dict):
        raise DocumentError(f"{where}: expected a JSON object")
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise DocumentError(f"{where}: `text` is missing or empty")
    check_characters({k: record.get(k) for k in ("id", "text", "title", "url", "source")}, where)
    url = record.get("url") or record.get("source")
    doc_id = record.get("id") or hashlib.sha1((url or text).encode("utf-8")).hexdigest()[:16]
    published = record.get("published")
    try:  # stored normalised (rag/dates.py): UTC, `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SSZ`
        published = dates.normalise(str(published)) if str(published or "").strip() else None
    except dates.DateError as exc:
        raise DocumentError(f"{where}: document {str(doc_id)!r}: `published` is an {exc}") from None
    try:
        validate_doc_id(str(doc_id))
    except DocumentError as exc:
        raise DocumentError(f"{where}: {exc}") from None
    check_content(str(doc_id), text, record.get("title") or None, where)
    return Document(
        id=str(doc_id),
        text=text,
        title=(record.get("title") or None),
        source=str(url) if url else None,
        published=published,
    )


def _read_jsonl(path: Path) -> Iterator[Document]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                record = strictjson.loads(decode_utf8(raw, where))
            except strictjson.JSONInputError as exc:
                raise DocumentError(f"{where}: invalid JSON ({exc})") from None
            yield document_from_record(record, where)


def load_path(path: Path) -> Iterator[Document]:
    """Documents from one file or, recursively, a folder of supported files (sorted, stable)."""
    if path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file() and is_supported(p)):
            yield from load_path(child)
        return
    if not path.exists():
        raise DocumentError(f"{path} does not exist")
    if not is_supported(path):
        raise DocumentError(f"{path}: unsupported file type (use {', '.join(SUPPORTED_SUFFIXES)})")
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        yield from _read_jsonl(path)
        return
    if path.name.endswith((".html", ".htm")):
        from .html import load_html  # trafilatura is imported only when a page is read

        yield load_html(path.read_bytes(), path.stem, _display_source(path))
        return
    text = decode_utf8(path.read_bytes(), str(path))
    yield document_from_text(path.stem, text, _display_source(path))


def is_supported(path: Path) -> bool:
    return path.name.endswith(SUPPORTED_SUFFIXES)
