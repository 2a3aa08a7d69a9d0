from pathlib import Path

import numpy as np
import pytest

from rag.storage import segments, vectors
from rag.ingestion.documents import Document
from rag.storage.index import Index, IndexMismatch

ROOT = Path(__file__).resolve().parents[2]


def test_faiss_matches_numpy_brute_force():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(500, 32)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    ids = np.arange(1000, 1500)
    index = vectors.new_index(32)
    vectors.add(index, ids, data)
    vectors.remove(index, [1000, 1001])
    for q in data[:20]:
        got = vectors.search(index, q, 10)
        scores = data @ q
        scores[:2] = -np.inf  # removed
        want = np.argsort(-scores)[:10] + 1000
        assert [i for i, _ in got] == want.tolist()
        assert np.allclose([s for _, s in got], np.sort(scores)[::-1][:10], atol=1e-5)


def test_seeded_index_search_matches_brute_force(seeds_service, embedder):
    store = seeds_service.index.store
    vids = [vid for d in store.documents() for vid in store.chunk_vids(d.id)]
    mat = seeds_service.index.vectors_for(vids)
    q = embedder.encode(["security guarantees for Ukraine"])[0]
    want = [vids[i] for i in np.argsort(-(mat @ q))[:5]]
    got = [c.vid for c, _ in seeds_service.index.search(q, 5)]
    assert got == want


def test_reingest_is_idempotent_and_changes_replace(make_service):
    s = make_service()
    doc = Document("a", "Russia demands neutrality for Ukraine. " * 30)
    first = s.ingest([doc])
    assert first.added == ["a"] and first.chunks > 0
    again = s.ingest([doc])
    assert again.unchanged == ["a"] and again.chunks == 0
    vids_before = set(s.index.store.chunk_vids("a"))
    changed = s.ingest([Document("a", "Entirely new text about power plants.")])
    assert changed.replaced == ["a"]
    vids_after = set(s.index.store.chunk_vids("a"))
    assert vids_after and not (vids_before & vids_after)
    assert s.index.vector_count() == len(vids_after)
    hits = s.retriever.search("neutrality", 5)
    assert all("neutrality" not in h.chunk.text for h in hits)  # no stale chunk


def test_delete_removes_document_and_vectors(make_service):
    s = make_service()
    s.ingest([Document("a", "Alpha text about land."), Document("b", "Beta text about power plants.")])
    assert s.delete(["a", "nope"]) == ["a"]
    assert s.document("a") is None
    assert s.index.vector_count() == len(s.index.store.chunk_vids("b"))
    assert all(h.chunk.doc_id == "b" for h in s.retriever.search("land", 5))


def test_index_persists_and_reopens(make_service, tmp_path):
    s = make_service(index_dir=tmp_path / "ix")
    s.ingest([Document("a", "Grushko spoke to Izvestiya about ironclad guarantees.")])
    s.close()
    t = make_service(index_dir=tmp_path / "ix")
    assert t.health().documents == 1
    assert t.retriever.search("Izvestiya interview", 1)[0].chunk.doc_id == "a"


def test_other_settings_are_refused_then_rebuilt(make_service, tmp_path):
    folder = tmp_path / "ix"
    s = make_service(index_dir=folder)
    s.ingest([Document("a", "Some article text about a ceasefire. " * 20)])
    s.close()
    with pytest.raises(IndexMismatch, match="rag ingest --rebuild"):
        make_service(index_dir=folder, chunk_tokens=100)
    r = make_service(index_dir=folder, chunk_tokens=100, rebuild=True)
    report = r.ingest([], rebuild=True)
    assert report.replaced == [] and report.chunks > 0  # re-embedded from the stored text
    assert Index.read_manifest(folder).chunker["chunk_tokens"] == 100
    assert r.document("a") is not None


def test_crash_during_commit_leaves_last_good_index(make_service, monkeypatch):
    s = make_service()
    s.ingest([Document("a", "First article about NATO.")])
    gen = s.index.store.generation()

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(segments, "_write_files", boom)
    with pytest.raises(OSError):
        s.ingest([Document("b", "Second article about land.")])
    monkeypatch.undo()
    assert s.index.store.generation() == gen
    assert [d.id for d in s.documents()] == ["a"]
    assert s.index.vector_count() == len(s.index.store.chunk_vids("a"))
    assert not list(s.index.folder.glob("**/*.tmp"))
    assert {p.name for p in segments.folders(s.index.folder)} == {r["name"] for r in s.index.segment_stats()}


def _manifest(**kw):
    from rag.storage.index import Manifest

    base = dict(model_name="m", model_sha256="0" * 64, backend="onnx-int8", dim=4, chunker={},
                export_sha256="a" * 64, runtime="onnxruntime 1.32.0", cpu_classes=["x86_64-avx2"])
    return Manifest(**(base | kw))


def test_vectors_of_another_export_or_runtime_are_refused_naming_both(tmp_path):
    Index.open(tmp_path, _manifest()).close()
    with pytest.raises(IndexMismatch) as other_export:
        Index.open(tmp_path, _manifest(export_sha256="b" * 64))
    assert ("the index holds those of export aaaaaaaaaaaaaaaa on onnxruntime 1.32.0, this process makes those "
            "of export bbbbbbbbbbbbbbbb on onnxruntime 1.32.0") in str(other_export.value)
    assert "rag ingest --rebuild" in str(other_export.value)
    with pytest.raises(IndexMismatch, match="those of export aaaaaaaaaaaaaaaa on onnxruntime 1.29.0"):
        Index.open(tmp_path, _manifest(runtime="onnxruntime 1.29.0"))
    Index.open(tmp_path, _manifest(export_sha256="b" * 64), rebuild=True).close()


def test_an_index_from_before_exports_were_recorded_is_refused_saying_so(tmp_path):
    Index.open(tmp_path, _manifest(export_sha256="", runtime="", cpu_classes=[])).close()
    with pytest.raises(IndexMismatch, match="holds those of no recorded export"):
        Index.open(tmp_path, _manifest())


def _one_doc(index, doc_id):  # type: ignore[no-untyped-def]
    from rag.storage.index import Batch, PendingDoc
    from rag.storage.store import ChunkRow, DocRow

    vids = index.reserve_vids(1)
    vecs = np.eye(4, dtype=np.float32)[:1]
    row = DocRow(doc_id, None, None, None, doc_id, 1)
    with index.writer():
        index.commit(Batch(upserts=[PendingDoc(row, "text", [ChunkRow(vids[0], doc_id, 0, 0, 4, "text")], vecs)]))


def test_cpu_classes_are_recorded_not_compared(tmp_path):
    first = Index.open(tmp_path, _manifest())
    _one_doc(first, "a")
    first.close()
    second = Index.open(tmp_path, _manifest(cpu_classes=["x86_64-avx2-avx512f-avx512bw-avx512_vnni"]))
    _one_doc(second, "b")
    second.close()
    assert Index.read_manifest(tmp_path).cpu_classes == ["x86_64-avx2", "x86_64-avx2-avx512f-avx512bw-avx512_vnni"]
    fresh = Index.open(tmp_path, _manifest(cpu_classes=["x86_64-avx2-avx512f-avx512bw-avx512_vnni"]), rebuild=True)
    assert fresh.manifest.cpu_classes == ["x86_64-avx2-avx512f-avx512bw-avx512_vnni"]
    fresh.close()


def test_service_manifest_names_the_embedder_export(make_service, embedder):
    from rag.embedding import cpu_class

    m = make_service().index.manifest
    assert (m.export_sha256, m.runtime) == (embedder.identity.export_sha256, embedder.identity.runtime)
    assert m.export_sha256 and m.runtime.startswith("onnxruntime ") and m.cpu_classes == [cpu_class()]
