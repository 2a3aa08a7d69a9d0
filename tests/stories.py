"""A handmade story for the timeline tests (library, HTTP, CLI, page): its events are clear.

Two reports of a council vote, a cost estimate the same week (another development), two reports
of a court order, the appeal; a republished copy of the first report, an undated explainer and an
unrelated article.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from rag.ingestion import Document

QUESTION = "What happened with the Lakeview tram line?"
STORY = [
    Document("council-approves", "Lakeview's city council voted 7 to 2 on Monday night to approve the new tram line "
             "between the harbour and the university. Mayor Ana Ruiz called the vote a turning point for the city. "
             "Construction is planned to start in the spring.", "Council approves Lakeview tram line",
             "https://news.example/a1", "2025-03-03"),
    Document("vote-backs-tram", "The Lakeview tram line won approval from the city council, which backed the "
             "harbour-to-university route by seven votes to two. Supporters cheered in the public gallery as the "
             "result was read out.", "Tram wins council vote", "https://daily.example/tram-vote", "2025-03-04"),
    Document("tram-cost", "The estimated cost of the Lakeview tram line has risen to 2.1 billion dollars, the city's "
             "finance office said, blaming steel prices and a longer tunnel under the old town.",
             "Tram line cost estimate rises", "https://money.example/tram-cost", "2025-03-04"),
    Document("court-halts", "A regional court on Wednesday halted construction of the Lakeview tram line after "
             "residents of the old town sued over noise and the tunnel. Work must stop until a full hearing in the "
             "summer.", "Court halts tram construction", "https://news.example/court", "2025-03-12"),
    Document("judge-stops-work", "A judge ordered an immediate stop to work on Lakeview's tram, siding for now with "
             "old town residents whose lawsuit says the tunnel will damage their homes.", "Judge stops work on the tram",
             "https://daily.example/judge", "2025-03-13T09:30:00Z"),
    Document("appeal-won", "Construction of the Lakeview tram line resumed on Tuesday after the city won its appeal "
             "against the court order that had stopped the work. The first trams are expected to run in 2027.",
             "Tram work resumes after appeal", "https://news.example/appeal", "2025-04-01"),
    Document("tram-explainer", "The Lakeview tram line will link the harbour with the university in twelve stops. "
             "This explainer answers readers' questions about the route and the timetable.", "Tram line explained",
             "https://blog.example/explainer", None),
    Document("cake", "Whisk the eggs with sugar until pale, fold in the flour and bake the sponge for twenty-five "
             "minutes at 180 degrees.", "A simple sponge cake", "https://food.example/cake", "2025-03-05"),
]
# The wire copy of the first report: folded into it by the near-duplicate check, never an event of its own.
COPY = Document("council-approves-wire", STORY[0].text, "Lakeview council approves tram (wire)",
                "https://wire.example/a1", "2025-03-03")
EVENTS = [
    (date(2025, 3, 3), {"council-approves", "vote-backs-tram"}),
    (date(2025, 3, 4), {"tram-cost"}),  # the same week, but another development
    (date(2025, 3, 12), {"court-halts", "judge-stops-work"}),
    (date(2025, 4, 1), {"appeal-won"}),
]


def write_jsonl(path: Path) -> Path:
    """The story and its copy as a `.jsonl` file of articles, as `rag ingest` and uploads read them."""
    rows = [{"id": d.id, "title": d.title, "url": d.source, "published": d.published, "text": d.text}
            for d in STORY + [COPY]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
