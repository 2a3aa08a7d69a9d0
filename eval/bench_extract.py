"""Extraction quality of web pages: RealTime QA articles wrapped in the markup of news sites.

    python -m eval.bench_extract [--n 300] [--seed 0] [--json] [--corpus PATH]

Each sampled article (title, text, published, url) is rendered into one of five site templates
that differ as real sites do: where the date and title are stated (Open Graph and article meta
tags, JSON-LD NewsArticle, a <time> element, plain <meta name="date">, microdata), how the text
is marked up (paragraphs, or <br>-separated div soup), and what surrounds the article
(navigation and mega menus, adverts and teasers between paragraphs, related links, newsletter
boxes, share buttons, author boxes, a comment thread, cookie banners, scripts, footers). The page goes through the product's
extractor (rag/ingestion/html.py), and the extracted text is scored against the original
article by token-level precision, recall and F1 (lower-cased words, as multisets; macro means over
articles). Title recovery counts articles with a title whose extracted title equals it (case and
spacing aside); date recovery, articles with a date whose extracted date falls on its day.
"""

from __future__ import annotations

import argparse
import gzip
import html
import json
import random
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from eval.realtimeqa import CORPUS
from rag import dates
from rag.ingestion.documents import DocumentError
from rag.ingestion.html import extract

_WORD = re.compile(r"\w+", re.UNICODE)
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]


@dataclass(frozen=True)
class Article:
    id: str
    title: str | None
    text: str
    day: str | None  # YYYY-MM-DD
    url: str


# --- site templates --------------------------------------------------------------------------------

def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _paras(a: Article) -> list[str]:
    return [p.strip() for p in a.text.split("\n") if p.strip()]


def _long_date(day: str) -> str:
    d = date.fromisoformat(day)
    return f"{MONTHS[d.month - 1]} {d.day}, {d.year}"


COMMENTS = [
    ("mike_t", "This is exactly what I have been saying for years, and nobody in charge listens."),
    ("Sarah K.", "Thanks for the clear reporting. Shared with my book club."),
    ("anon4412", "Where are the numbers for last year? The comparison seems unfair to me."),
    ("retired_teacher", "My grandson read this one aloud at dinner and we argued about it all evening."),
]
RELATED = [
    "Five things to know before the markets open", "The best budget phones of the year, tested",
    "Opinion: why our cities need more trees", "Quiz: can you name these famous landmarks?",
    "Watch: the moment a rescue dog met its new family", "How to save on your energy bill this winter",
]


def _comments(rng: random.Random, outer: str) -> str:
    picked = rng.sample(COMMENTS, 3)
    items = "".join(
        f'<li class="comment"><div class="comment-author">{_e(n)}</div><div class="comment-body"><p>{_e(t)}</p>'
        f'</div><a class="reply" href="#">Reply</a></li>' for n, t in picked
    )
    return f'<{outer} id="comments" class="comments-area"><h2>{len(picked)} comments</h2><ol class="comment-list">{items}</ol></{outer}>'


def _related(rng: random.Random, title: str) -> str:
    links = "".join(f'<li><a href="/story/{i}">{_e(t)}</a></li>' for i, t in enumerate(rng.sample(RELATED, 4)))
    return f'<aside class="related-stories"><h3>{_e(title)}</h3><ul>{links}</ul></aside>'


def classic(a: Article, rng: random.Random) -> str:
    """A newspaper: Open Graph and article meta tags, a byline, adverts, related links, comments."""
    head = f"<title>{_e(a.title) + ' | ' if a.title else ''}The Morning Courier</title>"
    if a.title:
        head += f'<meta property="og:title" content="{_e(a.title)}">'
    if a.day:
        head += f'<meta property="article:published_time" content="{a.day}T08:00:00Z">'
    body = "".join(f"<p>{_e(p)}</p>" for p in _paras(a))
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">{head}<link rel="canonical" href="{_e(a.url)}"></head>'
        '<body><header><div class="logo"><a href="/">The Morning Courier</a></div><nav class="menu"><ul>'
        + "".join(f'<li><a href="/{s.lower()}">{s}</a></li>' for s in ("News", "Politics", "Business", "Tech", "Sport", "Culture"))
        + '</ul></nav><div class="ad ad-leaderboard">Advertisement: Switch to FlexiBank and get 200 dollars. Terms apply.</div></header>'
        f'<main><article class="story">{"<h1>" + _e(a.title) + "</h1>" if a.title else ""}'
        f'<div class="meta">By Staff Reporter{" | " + _e(_long_date(a.day)) if a.day else ""}</div>'
        f'<div class="story-body">{body}</div></article>{_related(rng, "More stories")}</main>'
        f'{_comments(rng, "section")}'
        '<footer><p>© The Morning Courier. All rights reserved.</p><a href="/privacy">Privacy</a> <a href="/terms">Terms</a></footer>'
        "</body></html>"
    )


def jsonld(a: Article, rng: random.Random) -> str:
    """A broadcaster: JSON-LD NewsArticle, adverts and read-more links between paragraphs, a newsletter box."""
    ld = {"@context": "https://schema.org", "@type": "NewsArticle", "mainEntityOfPage": a.url,
          "author": {"@type": "Person", "name": "Newsroom Staff"}}
    if a.title:
        ld["headline"] = a.title
    if a.day:
        ld["datePublished"] = f"{a.day}T14:30:00+00:00"
    parts = []
    for i, p in enumerate(_paras(a)):
        parts.append(f'<p class="paragraph">{_e(p)}</p>')
        if i % 4 == 3:
            parts.append('<div class="ad-slot"><span>Advertisement</span><p>Try StreamMax free for 30 days.</p></div>')
        if i == 1:
            parts.append(f'<div class="read-more"><a href="/r/1">READ MORE: {_e(rng.choice(RELATED))}</a></div>')
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{_e(a.title or "World News Network")}</title>'
        f'<script type="application/ld+json">{json.dumps(ld)}</script></head><body>'
        '<div class="top-bar"><a href="/live">Live TV</a><a href="/signin">Sign in</a></div>'
        '<nav class="primary"><a href="/us">US</a><a href="/world">World</a><a href="/markets">Markets</a>'
        '<a href="/health">Health</a><a href="/weather">Weather</a></nav>'
        f'<div class="container"><div class="headline">{"<h1>" + _e(a.title) + "</h1>" if a.title else ""}</div>'
        f'<div class="article-content">{"".join(parts)}</div>'
        '<div class="newsletter"><h4>Get our morning briefing</h4><p>Sign up for the newsletter and never miss a story.</p>'
        '<form><input type="email" placeholder="Your email"><button>Subscribe</button></form></div>'
        f'{_related(rng, "Trending now")}</div>'
        '<div id="disqus_thread" class="comments">' + _comments(rng, "div") + "</div>"
        '<footer class="site-footer"><ul><li><a href="/about">About us</a></li><li><a href="/careers">Careers</a></li>'
        "<li><a href=\"/ads\">Advertise with us</a></li></ul><p>© World News Network</p></footer></body></html>"
    )


def blog(a: Article, rng: random.Random) -> str:
    """A blog engine: <time datetime>, entry-title, sidebar widgets, a threaded comment list."""
    when = f'<time class="entry-date" datetime="{a.day}T09:15:00+00:00">{_e(_long_date(a.day))}</time>' if a.day else ""
    body = "".join(f"<p>{_e(p)}</p>" for p in _paras(a))
    recent = "".join(f'<li><a href="/p/{i}">{_e(t)}</a></li>' for i, t in enumerate(rng.sample(RELATED, 5)))
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{_e(a.title or "Local Voices")} &#8211; Local Voices</title>'
        f'<link rel="canonical" href="{_e(a.url)}"></head><body class="single-post">'
        '<div id="masthead"><h2 class="site-title"><a href="/">Local Voices</a></h2><p class="site-description">News from around the valley</p>'
        '<ul class="menu"><li><a href="/">Home</a></li><li><a href="/about">About</a></li><li><a href="/contact">Contact</a></li></ul></div>'
        f'<div id="primary"><article class="post"><header class="entry-header">'
        f'{"<h1 class=" + chr(34) + "entry-title" + chr(34) + ">" + _e(a.title) + "</h1>" if a.title else ""}'
        f'<div class="entry-meta">Posted on {when} by <span class="author">editor</span></div></header>'
        f'<div class="entry-content">{body}</div><footer class="entry-footer">Filed under: News, Local</footer></article>'
        f'{_comments(rng, "div")}</div>'
        f'<div id="secondary" class="widget-area"><section class="widget"><h3>Recent Posts</h3><ul>{recent}</ul></section>'
        '<section class="widget"><h3>Archives</h3><ul><li>October 2022</li><li>September 2022</li></ul></section></div>'
        '<footer id="colophon"><p>Proudly powered by a blog engine. Theme by Someone.</p></footer></body></html>'
    )


def portal(a: Article, rng: random.Random) -> str:
    """A portal: <meta name="date">, breadcrumbs, share buttons, a cookie banner, a fat footer."""
    head = f'<meta name="date" content="{a.day}">' if a.day else ""
    if a.title:
        head += f'<meta name="title" content="{_e(a.title)}"><meta name="twitter:title" content="{_e(a.title)}">'
    body = "".join(f"<p>{_e(p)}</p>" for p in _paras(a))
    footer_links = "".join(f'<a href="/f/{i}">{s}</a> ' for i, s in enumerate(
        ("Contact", "Help", "Accessibility", "Sitemap", "Jobs", "Press", "Cookies", "Legal notice")))
    return (
        f'<!DOCTYPE html><html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
        f'<title>{_e(a.title or "Portal")} - Portal News</title>{head}</head><body>'
        '<div id="cookie-banner">We use cookies to improve your experience. <button>Accept all</button> <button>Settings</button></div>'
        '<div class="nav"><a href="/">Portal</a> | <a href="/mail">Mail</a> | <a href="/news">News</a> | <a href="/finance">Finance</a> | <a href="/games">Games</a></div>'
        '<div class="breadcrumbs"><a href="/">Home</a> &gt; <a href="/news">News</a> &gt; <span>Article</span></div>'
        f'<div id="content"><div class="article">{"<h2 class=" + chr(34) + "title" + chr(34) + ">" + _e(a.title) + "</h2>" if a.title else ""}'
        '<div class="share"><a href="#">Share on Facebook</a> <a href="#">Tweet</a> <a href="#">Email</a></div>'
        f'<div class="text">{body}</div></div>'
        f'<div class="sidebar">{_related(rng, "Most read")}<div class="promo">Play free games now!</div></div></div>'
        f'{_comments(rng, "div")}<div class="footer">{footer_links}<p>Copyright Portal Inc.</p></div></body></html>'
    )


TEASERS = [
    "Officials say the new rules could take effect as early as next spring, pending a final vote.",
    "The company reported its third straight quarter of losses and announced hundreds of job cuts.",
    "Scientists warn the heatwave is a sign of what is to come as summers grow longer and drier.",
    "Fans lined the streets for hours to greet the team after its first title in two decades.",
    "A court ruled on Friday that the contract had been awarded without a proper tender process.",
]


def heavy(a: Article, rng: random.Random) -> str:
    """A heavy commercial site: div soup with <br> breaks instead of <p>, a mega menu, teaser boxes
    with whole sentences inside the article, an author box, tags, scripts, and the date only in
    visible text and <meta itemprop>."""
    menu = "".join(
        f'<div class="col"><b>{sec}</b>' + "".join(f'<a href="/{sec}/{i}">{sec} {w}</a>' for i, w in
                                                 enumerate(("today", "analysis", "video", "live", "archive", "podcasts")))
        + "</div>" for sec in ("World", "Business", "Tech", "Science", "Sport", "Travel", "Food", "Style", "Opinion")
    )
    paras = _paras(a)
    chunks = []
    for i, p in enumerate(paras):
        chunks.append(_e(p))
        if i == 2 or (i > 2 and i % 6 == 2):
            chunks.append(
                f'<div class="teaser-box"><span class="label">Related</span><a href="/t/{i}"><div class="teaser-text">'
                f"{_e(rng.choice(TEASERS))}</div></a></div>"
            )
    body = "<br><br>".join(chunks)
    when = f'<meta itemprop="datePublished" content="{a.day}"><span class="date">Published {_e(_long_date(a.day))}</span>' if a.day else ""
    title = f'<h1 itemprop="headline">{_e(a.title)}</h1>' if a.title else ""
    popular = "".join(f"<li><a href='/p/{i}'>{_e(t)}</a></li>" for i, t in enumerate(rng.sample(TEASERS, 4)))
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{_e(a.title or "Globe Daily")} - Globe Daily</title>'
        '<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments)}gtag("js",new Date());'
        'var adSlots=["top","mid","bottom"];for(var i=0;i<adSlots.length;i++){console.log(adSlots[i])}</script>'
        '<style>.mega{display:none}.teaser-box{border:1px solid #ccc}</style></head><body>'
        f'<div class="mega-menu">{menu}</div>'
        '<div class="promo-strip">Subscribe now: 4 weeks for 1 dollar. Cancel anytime.</div>'
        f'<div class="wrapper" itemscope itemtype="https://schema.org/NewsArticle"><div class="head">{title}{when}</div>'
        '<div class="social"><a href="#">Facebook</a><a href="#">Twitter</a><a href="#">WhatsApp</a><a href="#">Copy link</a></div>'
        f'<div class="content-body" itemprop="articleBody">{body}</div>'
        '<div class="author-box"><img src="/a.png" alt=""><div>Pat Doe covers national affairs and has reported from '
        'more than forty countries. Follow Pat on social media.</div></div>'
        '<div class="tags"><a href="/tag/a">Politics</a><a href="/tag/b">Economy</a><a href="/tag/c">World</a></div></div>'
        f'<div class="most-popular"><h3>Most popular</h3><ol>{popular}</ol></div>'
        f'{_comments(rng, "div")}'
        '<div class="footer-links">' + menu + "</div><p class=\"copy\">Globe Daily Media. All rights reserved.</p></body></html>"
    )


TEMPLATES: dict[str, Callable[[Article, random.Random], str]] = {
    "classic": classic, "jsonld": jsonld, "blog": blog, "portal": portal, "heavy": heavy,
}


# --- scoring ----------------------------------------------------------------------------------------

def tokens(text: str) -> Counter:
    return Counter(w.lower() for w in _WORD.findall(text))


def prf(extracted: str, gold: str) -> tuple[float, float, float]:
    got, want = tokens(extracted), tokens(gold)
    overlap = sum((got & want).values())
    p = overlap / max(1, sum(got.values()))
    r = overlap / max(1, sum(want.values()))
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def _same_title(a: str | None, b: str | None) -> bool:
    norm = lambda s: " ".join((s or "").casefold().split())  # noqa: E731
    return bool(a) and norm(a) == norm(b)


def load(corpus: Path, n: int, seed: int) -> list[Article]:
    with gzip.open(corpus, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    rng = random.Random(seed)
    picked = rng.sample(rows, min(n, len(rows)))
    out = []
    for r in picked:
        day = dates.day(r.get("published")) if r.get("published") else None
        out.append(Article(r["id"], r.get("title") or None, r["text"], day, r.get("url") or f"https://example.org/{r['id']}"))
    return out


def run(articles: list[Article], seed: int) -> dict:
    rng = random.Random(seed)
    names = list(TEMPLATES)
    per: dict[str, list[dict]] = {n: [] for n in names}
    t0 = time.perf_counter()
    for i, a in enumerate(articles):
        name = names[i % len(names)]
        page = TEMPLATES[name](a, rng)
        try:
            got = extract(page, a.id, a.url)
            p, r, f = prf(got.text, a.text)
            row = {"p": p, "r": r, "f1": f, "title": _same_title(got.title, a.title) if a.title else None,
                   "date": (dates.day(got.published) == a.day) if a.day else None, "failed": False}
        except DocumentError:
            row = {"p": 0.0, "r": 0.0, "f1": 0.0, "title": False if a.title else None,
                   "date": False if a.day else None, "failed": True}
        per[name].append(row)
    seconds = time.perf_counter() - t0
    rows = [r for rs in per.values() for r in rs]
    return {"articles": len(rows), "seconds": round(seconds, 1), "overall": _summary(rows),
            "by_template": {n: _summary(rs) for n, rs in per.items()}}


def _summary(rows: list[dict]) -> dict:
    titled = [r["title"] for r in rows if r["title"] is not None]
    dated = [r["date"] for r in rows if r["date"] is not None]
    return {
        "n": len(rows),
        "precision": round(statistics.fmean(r["p"] for r in rows), 4),
        "recall": round(statistics.fmean(r["r"] for r in rows), 4),
        "f1": round(statistics.fmean(r["f1"] for r in rows), 4),
        "f1_at_least_0.9": round(sum(r["f1"] >= 0.9 for r in rows) / len(rows), 4),
        "title_recovered": round(sum(titled) / len(titled), 4) if titled else None,
        "titled": len(titled),
        "date_recovered": round(sum(dated) / len(dated), 4) if dated else None,
        "dated": len(dated),
        "no_text_found": sum(r["failed"] for r in rows),
    }


def table(result: dict) -> str:
    lines = [f"Extraction of {result['articles']} RealTime QA articles in site templates ({result['seconds']} s)",
             f"{'template':10} {'n':>4} {'P':>6} {'R':>6} {'F1':>6} {'F1>=.9':>7} {'title':>6} {'date':>6} {'none':>5}"]
    for name, s in [*result["by_template"].items(), ("overall", result["overall"])]:
        lines.append(
            f"{name:10} {s['n']:>4} {s['precision']:6.3f} {s['recall']:6.3f} {s['f1']:6.3f} {s['f1_at_least_0.9']:7.3f} "
            f"{_pct(s['title_recovered']):>6} {_pct(s['date_recovered']):>6} {s['no_text_found']:>5}"
        )
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300, help="articles to sample (bounded: the machine is shared)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args()
    if not args.corpus.exists():
        raise SystemExit(f"no corpus at {args.corpus}")
    result = run(load(args.corpus, args.n, args.seed), args.seed)
    print(json.dumps(result, indent=2) if args.json else table(result))


if __name__ == "__main__":
    main()
