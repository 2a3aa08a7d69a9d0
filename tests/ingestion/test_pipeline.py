"""The ingest pipeline: a re-ingest whose texts are unchanged updates metadata only."""

from __future__ import annotations

from rag.ingestion.documents import Document
from rag.storage.store import Filters

TEXT = "Marrick council approved the harbour ferry budget after a long debate about tides. " * 12


class CountingEmbedder:
    """The real embedder, counting the texts it is asked to encode (a wrapper, not a mock: every
    call goes through to the model)."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.texts = 0

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)

    def encode(self, texts, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.texts += len(texts)
        return self.inner.encode(texts, *args, **kwargs)


def _service(tmp_path, embedder):  # type: ignore[no-untyped-def]
    from rag.config import Settings
    from rag.service import Service

    counting = CountingEmbedder(embedder)
    return Service(Settings(index_dir=tmp_path / "index"), embedder=counting), counting


def test_new_date_or_source_updates_metadata_without_re_embedding(tmp_path, embedder):
    s, counting = _service(tmp_path, embedder)
    try:
        s.ingest([Document("a", TEXT, "Ferry budget", "https://a.example/1", "2022/06/12"), Document("b", "Other news. " * 9)])
        vids, gen, embedded = s.index.store.chunk_vids("a"), s.index.store.generation(), counting.texts
        report = s.ingest([Document("a", TEXT, "Ferry budget", "https://b.example/1", "2022-06-12T10:00:00Z")])
        assert report.replaced == ["a"] and report.metadata_only == ["a"] and report.chunks == 0
        assert counting.texts == embedded  # nothing re-embedded
        # the same vectors; a new generation only republishes the segment's publication times
        assert s.index.store.chunk_vids("a") == vids and s.index.store.generation() <= gen + 1
        row, text = s.index.store.document("a")
        assert (row.source, row.published, text) == ("https://b.example/1", "2022-06-12T10:00:00Z", TEXT)
        assert s.ingest([Document("a", TEXT, "Ferry budget", "https://b.example/1", "2022-06-12T10:00:00Z")]).unchanged == ["a"]
        hit = s.retriever.search("harbour ferry budget", 1)[0]
        assert hit.chunk.doc_id == "a" and hit.chunk.vid in vids  # the same vectors still answer
        assert set(vids) <= set(s.index.store.filtered_vids(Filters(published_after="2022-06-12")))
        assert not set(vids) & set(s.index.store.filtered_vids(Filters(published_after="2022-06-13")))
    finally:
        s.close()


def test_a_title_change_re_embeds(tmp_path, embedder):
    """The title is part of what is embedded and word-indexed (rag.text.context_text)."""
    s, counting = _service(tmp_path, embedder)
    try:
        s.ingest([Document("a", TEXT, "Ferry budget", None, "2022-06-12")])
        vids, embedded = s.index.store.chunk_vids("a"), counting.texts
        report = s.ingest([Document("a", TEXT, "Ferry budget passes", None, "2022-06-12")])
        assert report.replaced == ["a"] and report.metadata_only == [] and report.chunks == len(vids)
        assert counting.texts == embedded + len(vids)
        assert not set(s.index.store.chunk_vids("a")) & set(vids)
    finally:
        s.close()


def test_same_id_twice_in_one_input_the_later_wins(tmp_path, embedder):
    s, _ = _service(tmp_path, embedder)
    try:
        s.ingest([Document("a", TEXT, published="2022-06-12")])
        report = s.ingest([Document("a", TEXT, published="2022-06-13"), Document("a", "A new text. " * 10, published="2022-06-14")])
        assert report.metadata_only == [] and report.replaced == ["a"]
        row, text = s.index.store.document("a")
        assert row.published == "2022-06-14" and text.startswith("A new text.")
        s.ingest([Document("a", "Changed again. " * 10), Document("a", "A new text. " * 10, published="2022-06-15")])
        row, text = s.index.store.document("a")
        assert row.published == "2022-06-15" and text.startswith("A new text.")
    finally:
        s.close()


def test_model_identity_names_the_export_and_runtime():
    """A Ray actor's batches are refused unless this string matches the index's: the same weights
    through another ONNX export or onnxruntime release give other vectors."""
    from rag.ingestion.pipeline import model_identity

    base = model_identity("m", "0" * 64, "onnx-int8", "a" * 64, "onnxruntime 1.32.0")
    assert base == "m@" + "0" * 16 + "/onnx-int8/export " + "a" * 16 + " on onnxruntime 1.32.0"
    assert model_identity("m", "0" * 64, "onnx-int8", "b" * 64, "onnxruntime 1.32.0") != base
    assert model_identity("m", "0" * 64, "onnx-int8", "a" * 64, "onnxruntime 1.29.0") != base
    assert model_identity("m", "0" * 64, "torch") == "m@" + "0" * 16 + "/torch"  # no export: as before
