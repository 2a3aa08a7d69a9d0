"""`rag timeline "QUESTION"`: a story's dated events from the terminal, over `Service.timeline`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError

from .schema import TIMELINE_K, TimelineArticle, TimelineQuery, TimelineResponse

NOT_COVERED = "The articles do not cover this question."
QUOTE_CHARS = 300


def timeline_command(
    open_service: Callable[..., Any], fail: Callable[[str, int], NoReturn], first_error: Callable[[ValidationError], str],
    known: tuple,
) -> Callable[..., None]:
    """The `timeline` command; `open_service`, `fail` and `first_error` are the main CLI's."""

    def timeline(
        question: Annotated[str, typer.Argument(help="The question or topic, in quotes.")],
        k: Annotated[int, typer.Option("-k", "--k", help="Passages to gather before grouping (1..50).")] = TIMELINE_K,
        as_of: Annotated[
            str | None, typer.Option("--as-of", help="The story as of this date or time (default now).")
        ] = None,
        json_out: Annotated[bool, typer.Option("--json", help="Print exactly the /timeline JSON response.")] = False,
        mode: Annotated[str | None, typer.Option(help="hybrid, dense or lexical.")] = None,
        source: Annotated[str | None, typer.Option(help="Only articles whose source starts with this.")] = None,
        after: Annotated[str | None, typer.Option(help="Published on or after YYYY-MM-DD.")] = None,
        before: Annotated[str | None, typer.Option(help="Published on or before YYYY-MM-DD.")] = None,
        undated: Annotated[
            bool, typer.Option("--undated/--no-undated", help="List the relevant undated articles apart (default).")
        ] = True,
    ) -> None:
        """The story of a question as dated events, oldest first, each with its key sentence."""
        try:
            query = TimelineQuery(
                question=question, k=k, as_of=as_of, mode=mode, source=source, published_after=after,
                published_before=before, include_undated=undated,
            )
        except ValidationError as exc:
            fail(first_error(exc), 2)
        service = open_service()
        try:
            response = service.timeline(query)
        except known as exc:
            fail(str(exc), 1)
        finally:
            service.close()
        typer.echo(response.model_dump_json(indent=2) if json_out else render(response))

    return timeline


def render(r: TimelineResponse) -> str:
    """Each event: its date and first article, its key sentence with where it sits, its articles."""
    if not r.answerable:
        return NOT_COVERED
    lines: list[str] = []
    for e in r.events:
        s = e.sentence
        lines.append(f"{e.date.isoformat()}  {e.articles[0].title or e.articles[0].doc_id}")
        lines.append(f"    \"{' '.join(s.text.split())[:QUOTE_CHARS]}\"")
        lines.append(f"    {s.source or s.doc_id}  ({s.doc_id}, chars {s.start}-{s.end})")
        lines.append("    articles: " + "; ".join(_article(a) for a in e.articles))
        lines.append("")
    if not r.events:
        lines += ["No dated article answers it: there is no timeline to draw.", ""]
    if r.undated:
        lines.append("Undated, so not on the timeline: " + "; ".join(_article(a) for a in r.undated))
    return "\n".join(lines).rstrip()


def _article(a: TimelineArticle) -> str:
    when = f" {a.published}" if a.published else ""
    copies = f" (also in {', '.join(a.also_in)})" if a.also_in else ""
    return f"{a.doc_id}{when}{copies}"
