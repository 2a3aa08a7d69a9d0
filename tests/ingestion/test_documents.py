import gzip
import json
from pathlib import Path

import pytest

from rag.ingestion.documents import DocumentError, headline, load_path, validate_doc_id

ROOT = Path(__file__).resolve().parents[2]
RTQA = ROOT.parent / "shared" / "data" / "realtimeqa-2022" / "corpus.jsonl.gz"


def test_seed_ids_sources_and_titles(monkeypatch):
    monkeypatch.chdir(ROOT)
    docs = {d.id: d for d in load_path(Path("seeds"))}
    assert sorted(docs) == sorted(p.stem for p in (ROOT / "seeds").glob("*.txt"))
    d = docs["004_a432fe192a64c82f"]
    assert d.source == "seeds/004_a432fe192a64c82f.txt"
    assert d.title and d.title.startswith("Trump to talk to Putin on Tuesday")
    assert docs["000_1447df4d8abbbe65"].title is None  # first line is a sentence with a full stop
    assert docs["001_7db6926444a715ac"].title.startswith("Trump and Putin will discuss")
    for doc in docs.values():  # the stored text is the file, byte for byte
        assert doc.text == (ROOT / doc.source).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "line,expected",
    [
        ("Putin ready to talk", "Putin ready to talk"),
        ("Putin said he was ready to talk.", None),
        ("# A markdown headline", "A markdown headline"),
        ("word " * 40, None),
        ("", None),
    ],
)
def test_headline_rule(line, expected):
    assert headline(line) == expected


def test_markdown_and_jsonl(tmp_path):
    (tmp_path / "a.md").write_text("# Ceasefire talks\n\nBody text here.\n")
    rows = [
        {"id": "x1", "title": "T", "url": "https://example.org/a", "published": "2022-06-01", "text": "Alpha."},
        {"text": "Only text is required."},
    ]
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with gzip.open(tmp_path / "c.jsonl.gz", "wt") as fh:
        fh.write(json.dumps({"id": "z", "text": "Gzipped."}) + "\n")
    docs = {d.id: d for d in load_path(tmp_path)}
    assert docs["a"].title == "Ceasefire talks"
    assert docs["x1"].source == "https://example.org/a" and docs["x1"].published == "2022-06-01"
    assert docs["z"].text == "Gzipped."
    assert len(docs) == 4  # the text-only record gets a stable id from its text


def test_not_utf8_names_the_byte_offset(tmp_path):
    f = tmp_path / "bad.txt"
    f.write_bytes(b"caf\xc3\xa9 ok then \xff bad")
    with pytest.raises(DocumentError, match="offset 14"):
        list(load_path(f))


@pytest.mark.parametrize("bad", ["", "a/b", "a\\b", "x\x00", "..", "x" * 201])
def test_bad_ids_are_refused(bad):
    with pytest.raises(DocumentError):
        validate_doc_id(bad)


def test_empty_document_and_bad_json(tmp_path):
    (tmp_path / "empty.txt").write_text("   \n")
    with pytest.raises(DocumentError, match="empty"):
        list(load_path(tmp_path / "empty.txt"))
    (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\n{oops\n')
    with pytest.raises(DocumentError, match="bad.jsonl:2"):
        list(load_path(tmp_path / "bad.jsonl"))
    with pytest.raises(DocumentError, match="unsupported"):
        list(load_path(Path(__file__)))


@pytest.mark.skipif(not RTQA.exists(), reason="RealTime QA corpus not present beside the project")
def test_realtimeqa_corpus_ingests_as_it_is():
    import itertools

    docs = list(itertools.islice(load_path(RTQA), 200))
    assert len(docs) == 200
    assert all(d.source and d.source.startswith("http") for d in docs)
