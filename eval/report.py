"""Tables and files for evaluation results: one printed table, JSON, Markdown and a PNG chart."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

MAIN_METRICS = (
    "hit@1", "hit@5", "mrr@10", "ndcg@10", "nugget_recall", "citation_support", "refusal_accuracy", "mc_accuracy",
    "answer_in_answer",
)


def table(rows: dict[str, dict[str, float]]) -> str:
    """Markdown table: one row per metric, one column per configuration."""
    names = list(rows)
    keys = list(dict.fromkeys(k for r in rows.values() for k in r))
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key in keys:
        cells = [_fmt(rows[n].get(key)) for n in names]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def baseline_table(title: str, values: dict[str, float]) -> str:
    """Published figures to read beside ours: one row each (e.g. `published_mc_accuracy`)."""
    lines = [f"| {title} | value |", "|---|---|"] + [f"| {k} | {_fmt(v)} |" for k, v in values.items()]
    return "\n".join(lines)


def embedding_identity(identity) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """What made the vectors a report's figures come from (an `Embedder.identity`): the same
    figures are only comparable across reports whose identities match."""
    from rag.embedding import cpu_class

    return {
        "model": identity.name, "backend": identity.backend, "model_sha256": identity.weights_sha256,
        "export_sha256": identity.export_sha256, "runtime": identity.runtime, "cpu_class": cpu_class(),
    }


def identity_line(embedding: dict[str, str]) -> str:
    """The embedding identity as one Markdown line."""
    export = f", export sha256 {embedding['export_sha256']} on {embedding['runtime']}" if embedding.get("export_sha256") else ""
    return (f"Embedding: {embedding['model']} ({embedding['backend']}), model sha256 {embedding['model_sha256']}"
            f"{export}; CPU class {embedding['cpu_class']}")


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.0f}" if abs(v) >= 100 or float(v).is_integer() else f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"


def write(
    folder: Path, name: str, rows: dict[str, dict[str, float]], details: dict | None = None,
    baselines: dict[str, dict[str, float]] | None = None, embedding: dict[str, str] | None = None,
) -> list[Path]:
    """report JSON + Markdown + chart PNG under `folder`; returns the paths written. `baselines`:
    published figures shown beside ours; `embedding`: what made the vectors (`embedding_identity`).
    The chart needs matplotlib (the `eval` extra): without it the PNG is left out, not the whole report."""
    folder.mkdir(parents=True, exist_ok=True)
    js = folder / f"{name}.json"
    body = {"configs": rows, "details": details or {}} | ({"baselines": baselines} if baselines else {})
    body |= {"embedding": embedding} if embedding else {}
    js.write_text(json.dumps(body, indent=2, default=str))
    md = folder / f"{name}.md"
    extra = "".join(f"\n{baseline_table(t, v)}\n" for t, v in (baselines or {}).items())
    made = f"{identity_line(embedding)}\n\n" if embedding else ""
    md.write_text(f"# {name}\n\n{made}{table(rows)}\n{extra}")
    if importlib.util.find_spec("matplotlib") is None:
        return [js, md]
    png = folder / f"{name}.png"
    chart(rows, png, [k for k in MAIN_METRICS if any(k in r for r in rows.values())] or list(next(iter(rows.values())))[:6])
    return [js, md, png]


def chart(rows: dict[str, dict[str, float]], path: Path, keys: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(keys) * max(1, len(rows)) ** 0.5), 4))
    width = 0.8 / max(1, len(rows))
    for i, (name, r) in enumerate(rows.items()):
        xs = [j + i * width for j in range(len(keys))]
        ax.bar(xs, [r.get(k) or 0.0 for k in keys], width, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(keys))], keys, rotation=20)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    ax.set_title(path.stem)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
