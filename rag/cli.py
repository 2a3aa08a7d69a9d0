"""The `rag` command: a thin terminal shell over `rag.Service` (progress bars, exit codes)."""

from __future__ import annotations

import json
import re
import sqlite3
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError

from .cluster import RayUnavailable
from .config import Settings
from .ingestion.documents import DocumentError
from .embedding.base import EmbeddingError
from .storage.index import IndexError_
from .storage.space import StorageFull
from .schema import Query, QueryResponse
from .cli_timeline import timeline_command
from .cli_watches import watches_cli

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Question answering over news articles.")

# Inputs worth a progress bar (smaller ones finish before a bar is useful).
PROGRESS_MIN_DOCS = 20
# A full disk is StorageFull (exit 1, "no space left on device writing <file>: free space and retry").
KNOWN_ERRORS = (DocumentError, EmbeddingError, IndexError_, StorageFull, OSError, sqlite3.Error, RayUnavailable)


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def say(message: str) -> None:
    typer.echo(message, err=True)


def open_service(rebuild: bool = False, seed: bool = True):  # type: ignore[no-untyped-def]
    """The service, with the index built from `seeds/` first when there is none yet."""
    from .service import Service

    try:
        settings = Settings()
    except ValidationError as exc:
        fail(f"invalid RAG_* setting: {_first_error(exc)}", 2)
    try:
        service = Service(settings, rebuild=rebuild)
        if seed and service.index.store.counts()[0] == 0 and settings.seeds_dir.is_dir():
            say(f"No index in {settings.index_dir}/ yet: building it from {settings.seeds_dir}/ ...")
            report = service.seed_if_needed()
            if report:
                say(f"Indexed {len(report.added)} documents ({report.chunks} chunks) in {report.seconds:.1f} s.")
        return service
    except KNOWN_ERRORS as exc:
        fail(str(exc))


app.add_typer(watches_cli(open_service, fail, KNOWN_ERRORS), name="watches")


@app.command()
def ingest(
    paths: Annotated[
        list[str],
        typer.Argument(help="Files or folders (.txt, .md, .jsonl, .jsonl.gz, .html, .htm), or http(s) URLs of pages or RSS/Atom feeds."),
    ],
    rebuild: Annotated[bool, typer.Option(help="Re-chunk and re-embed every stored document too.")] = False,
    ray: Annotated[
        str | None,
        typer.Option("--ray", metavar="[ADDRESS]", help="Chunk and embed on a Ray cluster (ADDRESS, else RAG_RAY_ADDRESS, else a local Ray); needs the `ray` extra."),
    ] = None,
) -> None:
    """Add or update documents; unchanged ones are skipped."""
    if ray is not None:
        _require_ray()
    service = open_service(rebuild=rebuild, seed=False)
    try:
        docs = _gather(service, paths)
        bar = _progress_bar(len(docs))
        remote = None if ray is None else _ray_embedding(service.settings, ray, getattr(bar, "chunks", None))
        report = service.ingest(docs, rebuild=rebuild, on_progress=bar, remote=remote)
    except KNOWN_ERRORS as exc:
        fail(str(exc))
    typer.echo(
        f"{len(report.added)} added, {len(report.replaced)} replaced"
        + (f" ({len(report.metadata_only)} of them only in source or date)" if report.metadata_only else "")
        + f", {len(report.unchanged)} unchanged; "
        f"{report.chunks} chunks embedded in {report.seconds:.1f} s"
        + (f"; {report.merges} segment merge(s) after." if report.merges else ".")
    )


def _require_ray() -> None:
    """Exit 2, saying how to install it, without the `ray` extra."""
    from .cluster import RayNotInstalled, import_ray

    try:
        import_ray()
    except RayNotInstalled as exc:
        fail(str(exc), 2)


def _ray_embedding(settings: Settings, address: str, on_chunks):  # type: ignore[no-untyped-def]
    """The Ray backfill for `--ray ADDRESS` (`local`: RAG_RAY_ADDRESS, else a Ray on this machine)."""
    from .cluster import RayEmbedding

    return RayEmbedding(settings, None if address == RAY_LOCAL else address, on_chunks)


def _serve_on_ray(settings: Settings, address: str | None, replicas: int, host: str, port: int) -> None:
    from api.ray_serve import run

    where = address or settings.ray_address
    try:
        run(settings, where, replicas, host, port, on_ready=lambda: say(
            f"Serving on http://{host}:{port} with {replicas} query replica(s) and one writer on Ray Serve "
            f"({where or 'a local Ray'}); Ctrl-C stops"))
    except KNOWN_ERRORS as exc:
        fail(str(exc))


def _gather(service, paths: list[str]) -> list:  # type: ignore[no-untyped-def]
    """The documents of each file, folder or URL, in order; a feed's unreadable pages are warned of."""
    from .ingestion.documents import load_path
    from .ingestion.web import is_url

    docs = []
    for p in paths:
        if not is_url(p):
            docs += list(load_path(Path(p)))
            continue
        for found in service.read_urls([p]):
            for failure in found.failures:
                say(f"warning: skipped {failure}")
            docs += found.documents
    return docs


@app.command()
def watch(
    feeds: Annotated[list[str] | None, typer.Argument(help="URLs of RSS or Atom feeds (default: RAG_FEEDS).")] = None,
    every: Annotated[str | None, typer.Option(help="Time between polls: 90s, 10m, 1h (default RAG_FEED_EVERY).")] = None,
    once: Annotated[bool, typer.Option("--once", help="Poll each feed once and exit (1 if any feed failed).")] = False,
) -> None:
    """Poll feeds and ingest new or changed articles as they are published (Ctrl-C stops)."""
    from .config import parse_duration

    try:
        every_s = parse_duration(every) if every is not None else None
    except ValueError as exc:
        fail(f"--every: {exc}", 2)
    service = open_service(seed=False)
    feeds = feeds or service.settings.feed_urls
    if not feeds:
        fail("no feeds: name their URLs, or set RAG_FEEDS", 2)
    watcher = service.watch(feeds, every_s, on_event=say)
    if once:
        failed = [s for s in watcher.poll_once() if s.outcome == "error"]
        service.close()
        if failed:
            fail(f"{len(failed)} of {len(watcher.feeds)} feed(s) could not be read")
        return
    say(f"Watching {len(watcher.feeds)} feed(s) every {watcher.every_s:g} s (Ctrl-C stops).")
    try:
        watcher.run()
    except KeyboardInterrupt:
        say("Stopped.")
    finally:
        service.close()


@app.command()
def delete(doc_ids: Annotated[list[str], typer.Argument(help="Document ids to remove.")]) -> None:
    """Remove documents and their chunks from the index."""
    service = open_service(seed=False)
    try:
        found = service.delete(doc_ids)
    except KNOWN_ERRORS as exc:
        fail(str(exc))
    missing = [d for d in doc_ids if d not in found]
    if found:
        typer.echo(f"Deleted {len(found)} document(s): {', '.join(found)}")
    if missing:
        fail(f"no document with id {', '.join(repr(m) for m in missing)}")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, in quotes.")],
    k: Annotated[int, typer.Option("-k", "--k", help="Passages to return (1..50).")] = 5,
    json_out: Annotated[bool, typer.Option("--json", help="Print exactly the /query JSON response.")] = False,
    mode: Annotated[str | None, typer.Option(help="hybrid, dense or lexical.")] = None,
    source: Annotated[str | None, typer.Option(help="Only articles whose source starts with this.")] = None,
    doc_id: Annotated[list[str] | None, typer.Option("--doc-id", help="Only this article (repeatable).")] = None,
    after: Annotated[
        str | None, typer.Option(help="Published on or after YYYY-MM-DD (undated kept unless --no-undated).")
    ] = None,
    before: Annotated[
        str | None, typer.Option(help="Published on or before YYYY-MM-DD (undated kept unless --no-undated).")
    ] = None,
    undated: Annotated[
        bool,
        typer.Option(
            "--undated/--no-undated",
            help="Keep articles without a date (every question is asked as of a time, so this always applies).",
        ),
    ] = True,
    time_window: Annotated[
        bool,
        typer.Option(
            "--time-window/--no-time-window",
            help="Prefer articles from a time the question names (\"this week\", \"in March\"), as of --as-of.",
        ),
    ] = True,
    recency: Annotated[
        float | None, typer.Option(help="0..1 weight preferring recent articles (0 = off; default RAG_RECENCY).")
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Answer as of this date or time (default now): later articles are left out."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only what articles published on or after YYYY-MM-DD add to earlier coverage."),
    ] = None,
    choice: Annotated[
        list[str] | None, typer.Option("--choice", help="A multiple-choice option (repeat, 2 to 10).")
    ] = None,
    generator: Annotated[
        str | None, typer.Option(help="extractive, openai or local (default: RAG_GENERATOR).")
    ] = None,
    stream: Annotated[
        bool, typer.Option("--stream", help="Print the answer as it is generated (with --json: one event a line).")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Also say how the search met its date limit.")] = False,
) -> None:
    """Answer a question from the indexed articles."""
    try:
        query = Query(
            question=question, k=k, mode=mode, source=source, doc_ids=doc_id, published_after=after,
            published_before=before, include_undated=undated, recency=recency, as_of=as_of,
            choices=choice or None, generator=generator, since=since, time_window=time_window, debug=debug,
        )
    except ValidationError as exc:
        fail(_first_error(exc), 2)
    service = open_service()
    try:
        if stream:
            response = service.ask(query, on_event=_stream_printer(json_out))
        else:
            response = service.ask(query)
    except KNOWN_ERRORS as exc:
        fail(str(exc))
    if stream:
        typer.echo(_stream_final(response, json_out))
        return
    typer.echo(response.model_dump_json(indent=2) if json_out else render(response))


def _stream_printer(json_out: bool):  # type: ignore[no-untyped-def]
    """Prints the draft as it arrives: plain pieces, or with --json one event object a line."""
    from .answering.drafting import Delta, Retrieved

    def on_event(event: Retrieved | Delta) -> None:
        if json_out:
            if isinstance(event, Retrieved):
                line = {"event": "passages", "passages": [p.model_dump() for p in event.passages]}
            else:
                line = {"event": "delta", "text": event.text}
            typer.echo(json.dumps(line))
        elif isinstance(event, Delta):
            sys.stdout.write(event.text)
            sys.stdout.flush()

    return on_event


def _stream_final(r: QueryResponse, json_out: bool) -> str:
    """After the streamed draft: what verification kept, then the passages."""
    if json_out:
        answer = r.answer.model_dump() if r.answer else None
        choice = r.choice.model_dump() if r.choice else None
        return json.dumps({"event": "answer", "answerable": r.answerable, "answer": answer, "choice": choice})
    a = r.answer
    if a is None:
        note = []
    elif not r.answerable:
        note = [f"-- not answered: {a.text}"]
    elif a.fallback:
        note = [f"-- draft not used ({a.fallback_reason}); the {a.fallback} answer instead:", a.text]
    elif a.unsupported or a.recited:
        changes = [f"{a.unsupported} unsupported sentence(s) left out"] if a.unsupported else []
        changes += [f"{a.recited} sentence(s) re-cited to the passage that supports them"] if a.recited else []
        note = [f"-- verified: {'; '.join(changes)}; the answer is:", a.text]
    else:
        note = [f"-- verified: every sentence is supported by the passages it cites {a.citations}"]
    body = render(r.model_copy(update={"answer": None}))
    return "\n".join(["", "", *note, "", body]).rstrip()


app.command("timeline")(timeline_command(open_service, fail, lambda exc: _first_error(exc), KNOWN_ERRORS))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    ray: Annotated[
        str | None,
        typer.Option("--ray", metavar="[ADDRESS]", help="Serve as a Ray Serve application on the cluster at ADDRESS (else RAG_RAY_ADDRESS, else a local Ray); needs the `ray` extra."),
    ] = None,
    replicas: Annotated[int, typer.Option(min=1, max=64, help="With --ray: query replicas (writes go to one writer replica).")] = 2,
) -> None:
    """Serve the HTTP API (OpenAPI page at /docs).

    Without RAG_API_KEYS anyone who can connect may add and delete documents, so the server then
    binds only to a loopback address.
    """
    from api.origins import check as check_origins
    from api.security import Guard, SecurityConfigError, is_loopback

    from .ingestion.fetch import Fetcher, FetchError, FetchPolicy

    if ray is not None:
        _require_ray()
    try:
        settings = Settings()
        guard = Guard.from_settings(settings)
        check_origins(settings)
        if settings.feed_urls:  # the watcher's fetcher, built now so that one that cannot be guarded stops the start
            Fetcher(FetchPolicy.from_settings(settings)).close()
    except ValidationError as exc:
        fail(f"invalid RAG_* setting: {_first_error(exc)}", 2)
    except (SecurityConfigError, FetchError) as exc:
        fail(str(exc), 2)
    if not guard.enabled:
        if not is_loopback(host):
            fail(
                f"refusing to serve on {host} without API keys: anyone who can reach it could add and delete "
                "documents. Set RAG_API_KEYS (comma-separated keys, or @/path/to/file with one key per line), "
                "or bind to 127.0.0.1.",
                2,
            )
        if settings.protect_reads:
            fail("RAG_PROTECT_READS=true needs RAG_API_KEYS to be set", 2)
        say("warning: RAG_API_KEYS is not set: writes (POST and DELETE /documents) are open to anyone on this machine.")
    else:
        reads = "reads need one too" if settings.protect_reads else "reads are open (RAG_PROTECT_READS=true protects them)"
        say(f"API keys: {len(guard.digests)} loaded; writes need `Authorization: Bearer <key>`; {reads}.")
    import uvicorn

    from api.app import create_app

    service = open_service()
    try:
        report = service.seed_if_needed()
    except KNOWN_ERRORS as exc:
        fail(str(exc))
    if report and (report.added or report.replaced):
        say(f"Seeds changed: {len(report.added)} added, {len(report.replaced)} replaced.")
    if settings.feed_urls:
        say(f"Watching {len(settings.feed_urls)} feed(s) (RAG_FEEDS) every {settings.feed_every}.")
    if ray is not None:
        service.close()
        _serve_on_ray(settings, None if ray == RAY_LOCAL else ray, replicas, host, port)
        return
    metrics = ", Prometheus metrics at /metrics" if settings.metrics else ""
    say(f"Serving on http://{host}:{port} (OpenAPI page at /docs, MCP at /mcp{metrics})")
    # Keep idle connections longer than clients do (httpx and most pools drop theirs after 5 s,
    # uvicorn's default too): otherwise the server may close one just as a client reuses it, and
    # that request fails with a connection error (seen once in 1,000 under the load test).
    uvicorn.run(create_app(service), host=host, port=port, log_level="warning", timeout_keep_alive=65)


@app.command()
def mcp() -> None:
    """Serve the Model Context Protocol over stdin and stdout, for an MCP host that launches it
    (tools ask, search, get_document, list_documents, add_document, delete_document)."""
    from api.mcp_server import run_stdio

    service = open_service()  # says on stderr what it does: stdout carries only the protocol
    try:
        run_stdio(service)
    except KeyboardInterrupt:
        pass
    finally:
        service.close()


@app.command("eval")
def eval_(
    compare: Annotated[
        list[str] | None,
        typer.Option(help="Configurations to compare, e.g. 'mode=hybrid,k=5,chunk=200' (repeat the option)."),
    ] = None,
    benchmark: Annotated[str | None, typer.Option(help="Outside benchmark to run instead: realtimeqa.")] = None,
    corpus: Annotated[Path | None, typer.Option(help="Benchmark corpus (.jsonl/.jsonl.gz).")] = None,
    questions: Annotated[Path | None, typer.Option(help="Benchmark questions (dev.jsonl format).")] = None,
    index: Annotated[Path | None, typer.Option(help="Benchmark index folder (built once, reused).")] = None,
    gold: Annotated[Path | None, typer.Option(help="Gold set (default eval/gold/seeds.jsonl).")] = None,
    results: Annotated[Path, typer.Option(help="Folder for JSON, Markdown and PNG reports.")] = Path("results"),
    json_out: Annotated[bool, typer.Option("--json", help="Print the metrics as one JSON object.")] = False,
    min_hit1: Annotated[float | None, typer.Option(help="Fail (exit 1) if hit@1 is below this.")] = None,
    min_hit5: Annotated[float | None, typer.Option(help="Fail if hit@5 is below this.")] = None,
    min_mrr: Annotated[float | None, typer.Option(help="Fail if MRR@10 is below this.")] = None,
    min_nuggets: Annotated[float | None, typer.Option(help="Fail if nugget recall is below this.")] = None,
    min_support: Annotated[float | None, typer.Option(help="Fail if citation support is below this.")] = None,
    min_refusal: Annotated[float | None, typer.Option(help="Fail if refusal accuracy is below this.")] = None,
    generator: Annotated[
        str | None,
        typer.Option(help="Also score answers drafted by this generator (openai, local) beside the extractive one."),
    ] = None,
) -> None:
    """Score retrieval and answers on the seeds gold set, or on an outside benchmark."""
    from eval.runner import EvalError, run_eval

    floors = {"hit@1": min_hit1, "hit@5": min_hit5, "mrr@10": min_mrr, "nugget_recall": min_nuggets,
              "citation_support": min_support, "refusal_accuracy": min_refusal}
    try:
        outcome = run_eval(
            compare or [], benchmark, corpus, questions, index, gold, results, progress=_progress_bar,
            generator=generator,
        )
    except EvalError as exc:
        fail(str(exc), exc.code)
    except KNOWN_ERRORS as exc:
        fail(str(exc))
    typer.echo(json.dumps(outcome.metrics, indent=2) if json_out else outcome.text)
    below = outcome.below(floors)
    if below:
        fail("below the floor: " + "; ".join(below))


@app.command()
def stats() -> None:
    """Documents, chunks and the model of the index."""
    service = open_service(seed=False)
    h = service.health()
    m = service.index.manifest
    maker = f"export: {m.vector_maker()}; CPU classes: {', '.join(m.cpu_classes)}\n" if m.export_sha256 else ""
    typer.echo(
        f"index: {service.settings.index_dir}\ndocuments: {h.documents}\nchunks: {h.chunks}\n"
        f"model: {m.model_name} ({m.backend}, dim {m.dim}, sha256 {m.model_sha256[:12]}...)\n{maker}"
        f"chunker: {m.chunker['chunk_tokens']} tokens, {m.chunker['overlap_tokens']} overlap\n"
        f"vectors: {describe_vectors(service)}\nwords: {describe_lexical(service)}"
    )


def describe_vectors(service) -> str:  # type: ignore[no-untyped-def]
    """One line for the vectors, then one per segment: structure, vectors, tombstones, sizes."""
    segs = service.index.segment_stats()
    live = sum(s["vectors"] - s["tombstones"] for s in segs)
    memory = sum(s["memory_bytes"] for s in segs)
    dead = sum(s["tombstones"] for s in segs)
    lines = [f"{live} live in {len(segs)} segment(s), {dead} tombstone(s), {_mib(memory)} in memory"]
    for s in segs:
        lines.append(f"  {s['name']}: {_STRUCTURES.get(s['structure'], s['structure'])}, {s['vectors']} vectors, "
                     f"{s['tombstones']} tombstoned, {_mib(s['disk_bytes'])} on disk, {_mib(s['memory_bytes'])} in memory")
    return "\n".join(lines)


_STRUCTURES = {"flat": "flat (exact)", "ivf": "IVF-Flat", "ivfpq": "IVF-PQ + exact re-scoring"}


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def describe_lexical(service) -> str:  # type: ignore[no-untyped-def]
    base = service.index.lexical.base()
    if base is None:
        return "SQLite FTS5 BM25"
    return f"bm25s base of {base.chunks} chunks + FTS5 for newer ones"


def render(r: QueryResponse) -> str:
    """The answer, then the numbered passages with title, source and offsets."""
    lines = render_choice(r)
    if r.answer is not None:
        lines += [r.answer.text, ""]
        if r.answer.fallback:
            lines += [f"(the {r.answer.generator} draft was not used: {r.answer.fallback_reason})", ""]
        elif r.answer.unsupported:
            lines += [f"({r.answer.unsupported} unsupported sentence(s) of the draft left out)", ""]
        if r.answer.recited:
            lines += [f"({r.answer.recited} sentence(s) re-cited to the passage that supports them)", ""]
    lines += render_time(r)
    for p in r.passages:
        head = p.title or p.doc_id
        lines.append(f"[{p.rank}] {head}  (score {p.score:.3f})")
        dated = f"  published {p.published[:10]}" if p.published else ""
        lines.append(f"    {p.source or p.doc_id}  chars {p.start}-{p.end}{dated}")
        lines.append("    " + " ".join(p.text.split())[:400])
        lines.append("")
    return "\n".join(lines).rstrip()


def render_time(r: QueryResponse) -> list[str]:
    """The window the question named and, with --debug, how each segment met the date limit."""
    lines: list[str] = []
    if r.time_window is not None:
        w = r.time_window
        lines.append(f'(ranked toward {w.start.date()} to {w.end.date()}: "{w.words}")')
    if r.debug is not None:
        plan = ", ".join(f"{way} {n}" for way, n in sorted(r.debug.segments.items()))
        lines.append(f"(segments: {plan or 'none'}; word search: {r.debug.lexical or 'none'})")
    return lines + [""] if lines else []


def render_choice(r: QueryResponse) -> list[str]:
    """The multiple-choice answer and each choice's support, before the open answer."""
    c = r.choice
    if c is None:
        return []
    lines = [f"Choice: {c.text}"]
    if c.fallback:
        lines.append(f"(the {c.generator} pick was not used: {c.fallback_reason})")
    lines += [f"  {s.score:7.3f}  {s.choice}" + (f"  {s.citations}" if s.citations else "") for s in c.scores]
    return lines + [""]


def _progress_bar(total: int):  # type: ignore[no-untyped-def]
    """Documents done of `total`; its `chunks(n, per_s)` adds chunks and chunks/s (a Ray backfill)."""
    if total < PROGRESS_MIN_DOCS:
        return None
    from tqdm import tqdm

    bar = tqdm(total=total, unit="doc", desc="ingest", file=sys.stderr, disable=None)

    def update(done: int) -> None:
        bar.update(max(0, done - bar.n))
        if done >= total:
            bar.close()

    def chunks(n: int, per_s: float) -> None:
        bar.set_postfix_str(f"{n} chunks, {per_s:.0f} chunks/s", refresh=False)

    update.chunks = chunks  # type: ignore[attr-defined]
    return update


def _first_error(exc: ValidationError) -> str:
    e = exc.errors()[0]
    where = ".".join(str(x) for x in e.get("loc", ()))
    return f"{where}: {e.get('msg')}" if where else str(e.get("msg"))


RAY_LOCAL = "local"
# `--ray` takes an optional address: a following word that is not one (a path, another option)
# means "no address". ADDRESS looks like host:port, ray://host:port or auto.
_RAY_ADDRESS = re.compile(r"^(ray://)?[\w.\-]+:\d+$|^auto$|^local$")


def optional_ray_address(argv: list[str]) -> list[str]:
    """argv with `local` after a bare `--ray`, so that Click sees an option with a value."""
    out = []
    for i, arg in enumerate(argv):
        out.append(arg)
        if arg == "--ray" and (i + 1 == len(argv) or not _RAY_ADDRESS.match(argv[i + 1])):
            out.append(RAY_LOCAL)
    return out


def main() -> None:
    app(args=optional_ray_address(sys.argv[1:]), prog_name="rag")


if __name__ == "__main__":
    main()
