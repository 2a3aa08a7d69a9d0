"""Web pages to documents: the article's main text and what the page states about it.

trafilatura finds the article among menus, adverts, related links and comments, and reads its
title, date, author and canonical URL from the markup (meta tags, JSON-LD, bylines). The stored
text is exactly the extracted text, so passages' offsets are exact against it.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from dataclasses import dataclass


from .. import dates
from .documents import Document, DocumentError, validate_doc_id

HTML_SUFFIXES = (".html", ".htm")
# A <meta charset> must sit in the first 1024 bytes (HTML5 "prescan"); a little more tolerates
# pages that put long comments or scripts before it.
_PRESCAN_BYTES = 4096
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


@dataclass(frozen=True)
class Article:
    """What a page states: its main text, and title, date (normalised), author and canonical URL
    where it states them."""

    text: str
    title: str | None
    published: str | None
    author: str | None
    url: str | None


def declared_charset(data: bytes, header_charset: str | None = None) -> str | None:
    """The page's encoding as declared: a byte-order mark, else the HTTP header, else <meta charset>."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name
    if header_charset:
        return header_charset.strip().strip("\"'")
    found = _META_CHARSET.search(data[:_PRESCAN_BYTES])
    return found.group(1).decode("ascii") if found else None


def decode_html(data: bytes, where: str, header_charset: str | None = None) -> str:
    """The page's characters, by its declared charset (UTF-8 when none); a clear error naming
    `where` for an unknown charset or bytes that the charset cannot read."""
    charset = declared_charset(data, header_charset) or "utf-8"
    try:
        codec = codecs.lookup(charset).name
    except LookupError:
        raise DocumentError(f"{where}: declares an unknown character set {charset!r}") from None
    if codec == "utf-8":
        codec = "utf-8-sig"
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        raise DocumentError(
            f"{where} is not valid {charset}: undecodable byte 0x{data[exc.start]:02x} at offset {exc.start}"
        ) from None


def extract(html: str, where: str, url: str | None = None) -> Article:
    """The article of a page; DocumentError when no article text is found in it."""
    import trafilatura  # 0.25 s to import: only when a page is read

    found = trafilatura.bare_extraction(
        html,
        url=url,
        with_metadata=True,
        include_comments=False,
        include_images=False,
        # The date the page states (meta tags, JSON-LD, <time>), not one guessed from its text.
        date_extraction_params={"extensive_search": False, "original_date": True},
    )
    text = (getattr(found, "text", None) or "").strip() if found is not None else ""
    if not any(ch.isalnum() for ch in text):
        raise DocumentError(f"{where}: no article text found in the page")
    return Article(
        text=text,
        title=_clean(getattr(found, "title", None)),
        published=_date(getattr(found, "date", None)),
        author=_clean(getattr(found, "author", None)),
        url=_clean(getattr(found, "url", None)),
    )


def document_from_html(
    html: str,
    where: str,
    doc_id: str | None = None,
    source: str | None = None,
    url: str | None = None,
    title: str | None = None,
    published: str | None = None,
) -> Document:
    """A page as a document. `url` is where it was fetched; `title` and `published` (a feed's)
    stand in where the page states none. Source: the canonical URL, else `url`, else `source`.
    Without `doc_id` the id is derived from the canonical or fetched URL."""
    art = extract(html, where, url)
    canonical = art.url if art.url and art.url.startswith(("http://", "https://")) else None
    link = canonical or url
    if doc_id is None:
        if link is None:
            raise DocumentError(f"{where}: a page needs an id or a URL")
        doc_id = url_id(link)
    validate_doc_id(doc_id)
    doc_title = art.title or _clean(title)
    when = _more_precise(art.published, _date(published))
    return Document(id=doc_id, text=art.text, title=doc_title, source=link or source, published=when, author=art.author)


def _more_precise(page: str | None, feed: str | None) -> str | None:
    """The page's date, or the feed's where the page states none, or the feed's time of the same
    day where the page states only the day (pages' dates are read to the day)."""
    if page is None:
        return feed
    if feed is not None and len(page) == 10 and feed[:10] == page:
        return feed
    return page


def url_id(url: str) -> str:
    """A stable id for an article at `url` (as `document_from_record` derives one)."""
    return hashlib.sha1(url.encode("utf-8")).hexdigest()[:16]


def is_html(name: str) -> bool:
    return name.lower().endswith(HTML_SUFFIXES)


def _clean(value: object) -> str | None:
    """Spacing collapsed; None unless it holds a letter or digit (a title of dashes is no title)."""
    text = " ".join(str(value).split()) if isinstance(value, str) else ""
    return text if any(ch.isalnum() for ch in text) else None


def _date(value: object) -> str | None:
    """A stated date in the normalised form, or None when absent or unreadable (a page's
    unreadable date leaves it undated rather than refusing the article)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return dates.normalise(value)
    except dates.DateError:
        return None


def load_html(data: bytes, doc_id: str, where: str, header_charset: str | None = None) -> Document:
    """A saved page (a file or an upload) as a document with the given id; source: the canonical
    URL where the page states one, else `where`."""
    return document_from_html(decode_html(data, where, header_charset), where, doc_id=doc_id, source=where)
