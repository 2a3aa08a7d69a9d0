"""`rag watches add|list|events|rm|test`: standing questions from the terminal, over `Service.watches`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError

from .watches import WatchError, WatchEventOut, WatchFilters, WatchIn


def watches_cli(open_service: Callable[..., Any], fail: Callable[[str, int], NoReturn], known: tuple) -> typer.Typer:
    """The `watches` command group; `open_service` and `fail` are the main CLI's."""
    group = typer.Typer(no_args_is_help=True, help="Standing questions that notify a webhook when new articles answer them.")

    @group.command("add")
    def add(
        question: Annotated[str, typer.Argument(help="The standing question, in quotes.")],
        url: Annotated[str, typer.Option("--url", help="The webhook (http or https) that gets each new answer.")],
        secret: Annotated[str | None, typer.Option(help="Signing secret whsec_...; generated when absent.")] = None,
        min_relevance: Annotated[float | None, typer.Option(help="A stricter relevance bar than RAG_MIN_RELEVANCE.")] = None,
        source: Annotated[str | None, typer.Option(help="Only articles whose source starts with this.")] = None,
        after: Annotated[str | None, typer.Option(help="Published on or after YYYY-MM-DD.")] = None,
        before: Annotated[str | None, typer.Option(help="Published on or before YYYY-MM-DD.")] = None,
        json_out: Annotated[bool, typer.Option("--json", help="Print the watch as JSON (its secret included).")] = False,
    ) -> None:
        """Add a standing question; prints its id and signing secret (shown only now)."""
        try:
            watch = WatchIn(
                question=question, url=url, secret=secret, min_relevance=min_relevance,
                filters=WatchFilters(source=source, published_after=after, published_before=before),
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            fail(f"{where + ': ' if where else ''}{first.get('msg', 'invalid value')}", 2)
        service = open_service(seed=False)
        try:
            made = service.watches.add(watch)
        except WatchError as exc:
            fail(str(exc), 2)
        except known as exc:
            fail(str(exc), 1)
        finally:
            service.close()
        if json_out:
            typer.echo(made.model_dump_json(indent=2))
        else:
            typer.echo(f"{made.id}\t{made.question}\n  webhook {made.url}\n  secret  {made.secret}  (not shown again)")

    @group.command("list")
    def list_(json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
        """The standing questions."""
        service = open_service(seed=False)
        try:
            found = service.watches.list()
        finally:
            service.close()
        if json_out:
            typer.echo(json.dumps([w.model_dump(mode="json") for w in found], indent=2))
            return
        if not found:
            typer.echo("No standing questions.")
        for w in found:
            typer.echo(f"{w.id}\t{w.notified} notified\t{w.question}\t-> {w.url}")

    @group.command("events")
    def events(
        watch_id: Annotated[str, typer.Argument(help="The watch whose deliveries to show.")],
        json_out: Annotated[bool, typer.Option("--json", help="Print the GET /watches/{id}/events JSON.")] = False,
    ) -> None:
        """A standing question's deliveries, oldest first: what was sent, when, and whether it landed."""
        service = open_service(seed=False)
        try:
            found = service.watches.events(watch_id)
        finally:
            service.close()
        if found is None:
            fail(f"no watch with id {watch_id!r}", 1)
        if json_out:
            typer.echo(json.dumps([e.model_dump(mode="json") for e in found], indent=2))
            return
        if not found:
            typer.echo("No deliveries yet.")
        for e in found:
            typer.echo(_event_line(e))

    @group.command("rm")
    def rm(watch_ids: Annotated[list[str], typer.Argument(help="Watch ids to remove.")]) -> None:
        """Remove standing questions and their deliveries."""
        service = open_service(seed=False)
        try:
            missing = [w for w in watch_ids if not service.watches.delete(w)]
        finally:
            service.close()
        removed = [w for w in watch_ids if w not in missing]
        if removed:
            typer.echo(f"Removed {len(removed)} watch(es): {', '.join(removed)}")
        if missing:
            fail(f"no watch with id {', '.join(repr(m) for m in missing)}", 1)

    @group.command("test")
    def test(watch_id: Annotated[str, typer.Argument(help="The watch to test.")]) -> None:
        """Send one signed watch.test delivery now, with the answer the archive gives; exit 1 if refused."""
        service = open_service(seed=False)
        try:
            result = service.watches.test(watch_id)
        finally:
            service.close()
        if result is None:
            fail(f"no watch with id {watch_id!r}", 1)
        accepted, what = result
        if not accepted:
            fail(f"the webhook did not accept the test delivery: {what}", 1)
        typer.echo(f"Delivered: the webhook answered {what}.")

    return group


def _event_line(e: WatchEventOut) -> str:
    """`id  type  status (attempts, last answer)  created  [articles]` for one delivery."""
    answer = f", last HTTP {e.last_status}" if e.last_status else (f", {e.last_error}" if e.last_error else "")
    when = f"delivered {e.delivered}" if e.delivered else (f"next try {e.next_attempt}" if e.next_attempt else "")
    docs = e.payload.get("data", {}).get("documents") or []
    return "\t".join(x for x in (
        e.id, e.type, f"{e.status} ({e.attempts} attempt(s){answer})", f"made {e.created}", when,
        ", ".join(docs),
    ) if x)
