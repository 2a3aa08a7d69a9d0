"""What the OpenAPI document can only say in words, given to schemathesis: for the in-process
fuzz test (tests/api/test_fuzz.py) and for its command line against a live server,

    SCHEMATHESIS_HOOKS=eval.schemathesis_hooks schemathesis run http://127.0.0.1:8000/openapi.json \
        --checks all -H "Authorization: Bearer $KEY"

- An uploaded file's contents. The schema says "a .jsonl file" (`format: binary`) and no more:
  OpenAPI 3.1 can name a part's media type, but JSON Schema validates one JSON document, not a
  file of JSON lines, and says nothing of bytes being UTF-8. Binary values drawn here are
  JSON-lines files of articles; mangled files are refused with 400/422 (test_documents_api.py,
  test_hostile_bodies.py show how).
- Dates at the calendar's ends: the schema's `format: date` and `date-time` admit them, and
  they are drawn as often as other dates (random dates never reach them).
- Multipart's blind spot: a field whose value is an empty list sends no part at all, so such a
  body is dropped before it is sent (the server would see a different request than the check).
- Datetimes whose UTC instant leaves the calendar (OUT_OF_RANGE): RFC 3339 admits them.
- Webhook URLs refused by the fetch guard (RESOLVED): whether a host is public depends on what it
  resolves to when asked.
- Rules that compare two fields (CROSS_FIELD). JSON Schema 2020-12 compares a value with
  constants only (`if`/`then`, `dependentSchemas`, `minimum` take no other field's value), so
  "published_after is not later than published_before" and "no two choices alike" are stated in
  the Query schema's description, enforced by the server, tested by test_api.py and
  test_choices.py, and a schema-valid request refused for them is not held against the server.
"""

from __future__ import annotations

import json
from datetime import timedelta, timezone

import schemathesis
from hypothesis import strategies as st
from schemathesis.specs.openapi.formats import unregister_string_format

from rag.ingestion.documents import VISIBLE_PATTERN

CROSS_FIELD = ("published_after is later than published_before", "two choices are the same", "since is later than as_of")
# A webhook URL is admitted by what its host resolves to at the time (the fetch guard), which no
# schema can state; the WatchIn schema says it in words.
RESOLVED = "webhook URL refused: "
# RFC 3339 (`format: date-time`) admits 0001-01-01T00:00:00+05:00, whose UTC instant lies before
# year 1; no format or pattern can say "within years 1 to 9999 once moved to UTC".
OUT_OF_RANGE = "in UTC it falls outside the years 1 to 9999"
UNSTATABLE = (*CROSS_FIELD, OUT_OF_RANGE, RESOLVED)
# The check whose failures a CROSS_FIELD refusal explains: a schema-valid request rejected.
POSITIVE_DATA = "positive_data_acceptance"

ARTICLE_TEXT = st.from_regex(rf"\A[^\x00\n\r]{{0,40}}{VISIBLE_PATTERN}[^\x00\n\r]{{0,80}}\Z")
ARTICLE_FILES = st.lists(
    st.fixed_dictionaries({"text": ARTICLE_TEXT}, optional={"url": st.text(max_size=30)}), min_size=1, max_size=3,
).map(lambda rs: "\n".join(json.dumps(r) for r in rs).encode())


# The calendar's ends, drawn twice as often as any other date, its first and last day most: the
# days and instants next to year 1 and year 9999 are where date arithmetic overflows, and random
# dates almost never land there.
CALENDAR_EDGES = ("0001-01-01", "0001-01-02", "9999-12-30", "9999-12-31")
EDGE_TIMES = ("T00:00:00Z", "T23:59:59Z", "T00:00:00+05:00", "T23:59:59-05:00", "T12:00:00.999999+14:00")
DATES = st.one_of(st.sampled_from(CALENDAR_EDGES[::3]), st.sampled_from(CALENDAR_EDGES), st.dates().map(str))
DATETIMES = st.one_of(
    st.builds(lambda d, t: d + t, st.sampled_from(CALENDAR_EDGES), st.sampled_from(EDGE_TIMES)),
    st.datetimes(timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=5, minutes=30)),
                                            timezone(timedelta(hours=-11))])).map(lambda t: t.isoformat()),
)


# `format: webhook-url` values: loopback port 9 (discard: nothing listens, so a delivery fails at
# once and never reaches another program), admitted where RAG_FETCH_ALLOW_HOSTS names 127.0.0.1
# (the fuzz test's setting); elsewhere refused with the RESOLVED sentence.
WEBHOOK_URLS = st.from_regex(r"\A[a-z0-9/_-]{0,20}\Z").map(lambda path: f"http://127.0.0.1:9/{path}")


def refused_for_an_unstatable_rule(check: str, body: str) -> bool:
    """Is this failure a schema-valid request refused for a rule JSON Schema cannot state?"""
    return check == POSITIVE_DATA and any(rule in body for rule in UNSTATABLE)


def register_formats(calendar_edges: bool = True) -> None:
    """From now on binary values are JSON-lines files of articles and, with `calendar_edges`,
    dates and datetimes reach the calendar's ends."""
    schemathesis.openapi.format("binary", ARTICLE_FILES)
    schemathesis.openapi.format("webhook-url", WEBHOOK_URLS)
    if calendar_edges:
        schemathesis.openapi.format("date", DATES)
        schemathesis.openapi.format("date-time", DATETIMES)


def unregister_formats() -> None:
    from schemathesis.specs.openapi.formats import STRING_FORMATS

    for name in ("binary", "date", "date-time", "webhook-url"):
        if name in STRING_FORMATS:
            unregister_string_format(name)


def is_article_file(data: object) -> bool:
    """Is an upload's content a JSON-lines file of articles (what ARTICLE_FILES draws)?"""
    raw = getattr(data, "data", data)
    try:
        lines = (raw.decode() if isinstance(raw, bytes) else str(raw)).splitlines()
        return bool(lines) and all(isinstance(r := json.loads(line), dict) and isinstance(r.get("text"), str) for line in lines)
    except (UnicodeDecodeError, ValueError):
        return False


def refused_upload_of_other_content(check: str, body: object) -> bool:
    """A schema-valid upload refused for what is inside its file, where the draw did not come from
    ARTICLE_FILES (the stateful phase draws some binary values by itself)."""
    return check == POSITIVE_DATA and isinstance(body, dict) and "file" in body and not is_article_file(body["file"])


@schemathesis.hook
def filter_failure(ctx, failure, case, response) -> bool:  # type: ignore[no-untyped-def]
    """Keep every failure but a schema-valid request refused for an UNSTATABLE rule or for the
    inside of a file the schema cannot describe."""
    text = response.text if response is not None else ""
    checks = getattr(failure, "checks", ())
    return not any(refused_for_an_unstatable_rule(c, text) or refused_upload_of_other_content(c, case.body) for c in checks)


@schemathesis.hook
def filter_body(ctx, body) -> bool:  # type: ignore[no-untyped-def]
    """Drop upload bodies with an empty list in a field: multipart sends no part for it, so the
    request that goes out is not the one the check judges (a "schema-violating" extra field that
    never reaches the server)."""
    upload = isinstance(body, dict) and "file" in body
    return not (upload and any(isinstance(v, list) and not v for v in body.values()))


register_formats()
