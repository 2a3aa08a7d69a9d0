"""A real news site on loopback for the tests: pages shaped like real ones (menus, adverts, related
links, comments around the article) and RSS/Atom feeds whose routes change between polls.

`NewsServer.routes` maps a path to a `Route`; the server answers conditional requests with 304
when the route's ETag or Last-Modified matches, and records every request it receives.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from email.utils import format_datetime
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape


@dataclass
class Route:
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (a page that times out)
    validators: bool = True  # send an ETag and Last-Modified, answer conditional requests with 304
    chunked: bool = False  # no Content-Length: the body's size is known only by reading it


@dataclass
class Hit:
    path: str
    headers: dict[str, str]


class NewsServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: list[Hit] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                owner.hits.append(Hit(self.path, {k.lower(): v for k, v in self.headers.items()}))
                route = owner.routes.get(self.path)
                if route is None:
                    return self._send(404, b"not found", {"Content-Type": "text/plain"})
                if route.delay:
                    time.sleep(route.delay)
                headers = {"Content-Type": route.content_type, **route.headers}
                if route.validators and route.status == 200:
                    tag = '"' + hashlib.sha1(route.body).hexdigest()[:16] + '"'
                    headers["ETag"] = tag
                    headers["Last-Modified"] = owner.last_modified(route.body)
                    if self.headers.get("If-None-Match") == tag:
                        return self._send(304, b"", {"ETag": tag})
                self._send(route.status, route.body, headers, route.chunked)

            def _send(self, status: int, body: bytes, headers: dict[str, str], chunked: bool = False) -> None:
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    if chunked:
                        self.send_header("Transfer-Encoding", "chunked")
                        self.end_headers()
                        for i in range(0, len(body), 8192):
                            piece = body[i : i + 8192]
                            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                        self.wfile.write(b"0\r\n\r\n")
                        return
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if status != 304:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # a client that gave up (timeout tests)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self._stamps: dict[str, str] = {}

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def last_modified(self, body: bytes) -> str:
        key = hashlib.sha1(body).hexdigest()
        return self._stamps.setdefault(key, format_datetime(datetime.now(timezone.utc), usegmt=True))

    def requests_to(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- pages shaped like real news sites ------------------------------------------------------------

NAV = """<header class="site-header"><a class="logo" href="/">The Daily Ledger</a>
<nav class="main-nav"><ul><li><a href="/">Home</a></li><li><a href="/world">World</a></li>
<li><a href="/business">Business</a></li><li><a href="/sport">Sport</a></li><li><a href="/opinion">Opinion</a></li>
<li><a href="/subscribe">Subscribe for unlimited access</a></li></ul></nav></header>"""
AD = """<div class="advert" id="ad-top"><p>ADVERTISEMENT: Refinance today with Lowrate Loans, rates from 2.9% APR,
click here to claim your free quote.</p></div>"""
RELATED = """<aside class="related"><h3>More from The Daily Ledger</h3><ul>
<li><a href="/x/1">Ten garden plants that thrive in the shade</a></li>
<li><a href="/x/2">Celebrity chef opens a bakery by the harbour</a></li>
<li><a href="/x/3">Quiz: how well do you know your capitals?</a></li></ul></aside>"""
COMMENTS = """<section id="comments" class="comments"><h3>Comments (2)</h3>
<div class="comment"><p class="comment-author">grumpy_reader</p><p>Typical. Nobody ever listens to the locals about anything here.</p></div>
<div class="comment"><p class="comment-author">sunny99</p><p>Great piece, sharing this with my whole family tonight.</p></div></section>"""
FOOTER = """<footer><p>Copyright 2022 The Daily Ledger Media Group. All rights reserved.</p>
<ul><li><a href="/privacy">Privacy policy</a></li><li><a href="/terms">Terms of use</a></li>
<li><a href="/cookies">Cookie settings</a></li></ul></footer>"""
BOILERPLATE_PHRASES = ["Refinance today", "Subscribe for unlimited access", "Ten garden plants", "grumpy_reader",
                       "Nobody ever listens", "All rights reserved", "Cookie settings"]


def news_page(
    title: str | None, paragraphs: list[str], published: str | None = None, author: str | None = None,
    canonical: str | None = None, meta_charset: str | None = "utf-8",
) -> str:
    """A news article page with the boilerplate of a real site around it."""
    head = [f'<meta charset="{meta_charset}">' if meta_charset else ""]
    if title:
        head.append(f"<title>{escape(title)} | The Daily Ledger</title>")
        head.append(f'<meta property="og:title" content="{escape(title)}">')
    if canonical:
        head.append(f'<link rel="canonical" href="{canonical}">')
    if published:
        head.append(f'<meta property="article:published_time" content="{published}">')
    if author:
        head.append(f'<meta name="author" content="{escape(author)}">')
    byline = f'<p class="byline">By {escape(author)}</p>' if author else ""
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    h1 = f"<h1>{escape(title)}</h1>" if title else ""
    return (
        f"<!DOCTYPE html><html lang=\"en\"><head>{''.join(head)}</head><body>{NAV}{AD}"
        f"<main><article>{h1}{byline}<div class=\"article-body\">{body}</div></article>{RELATED}</main>"
        f"{COMMENTS}{FOOTER}</body></html>"
    )


def rss(items: list[dict], title: str = "The Daily Ledger") -> bytes:
    """RSS 2.0: each item {title, link, date (RFC 822), guid, summary}."""
    parts = [f"<item><title>{escape(i['title'])}</title><link>{escape(i['link'])}</link>"
             f"<guid>{escape(i.get('guid', i['link']))}</guid>"
             + (f"<pubDate>{i['date']}</pubDate>" if i.get("date") else "")
             + (f"<description>{escape(i['summary'])}</description>" if i.get("summary") else "")
             + "</item>" for i in items]
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{escape(title)}</title>'
            f"<link>http://example.invalid/</link>{''.join(parts)}</channel></rss>").encode()


def atom(entries: list[dict], title: str = "Wire Service") -> bytes:
    """Atom 1.0: each entry {title, link, updated (ISO), id}."""
    parts = [f"<entry><title>{escape(e['title'])}</title><link href=\"{escape(e['link'])}\"/>"
             f"<id>{escape(e.get('id', e['link']))}</id><updated>{e['updated']}</updated></entry>" for e in entries]
    return (f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            f"<title>{escape(title)}</title><id>urn:wire</id><updated>2022-09-06T00:00:00Z</updated>"
            f"{''.join(parts)}</feed>").encode()


STORM = [
    "A powerful storm struck the northern coast on Tuesday, flooding streets and cutting power to "
    "thousands of homes, the regional emergency office said.",
    "Crews worked through the night to clear fallen trees from the main roads, and schools were closed "
    "for the rest of the week while engineers inspected their buildings.",
    "The weather service said the storm would weaken as it moved inland but warned of more heavy rain on "
    "Thursday, and asked residents to stay away from swollen rivers.",
]
BUDGET = [
    "The finance minister presented a budget on Wednesday that raises spending on hospitals and rail "
    "while trimming subsidies for fossil fuels over the next four years.",
    "Opposition leaders said the plan relied on optimistic growth forecasts and would leave the deficit "
    "higher than the government had promised during the campaign.",
    "Economists at the central bank are expected to publish their own assessment of the budget next month.",
]
FESTIVAL = [
    "Organisers of the harbour film festival announced a record programme of two hundred screenings, "
    "with premieres from thirty countries and open-air shows on the quay.",
    "Tickets go on sale on Monday, and the opening night will feature a restored silent classic with a "
    "live orchestra playing the original score.",
]
