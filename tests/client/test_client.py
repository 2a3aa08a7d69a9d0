"""rag.client against a live `rag serve` (keys set): the sync and async clients return the
rag.schema models, raise typed errors with the server's sentence, and retry only reads; the
LangChain retriever cites each passage."""

from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from live import KEY, RagServe, free_port
from rag.client import AsyncClient, BadRequest, Client, ConnectionFailed, NotFound, ServerError, Unauthorized
from rag.schema import DocumentOut, DocumentSummary, Health, IngestOut, Passage, QueryResponse, TimelineResponse
from rag.schema.watches import WatchOut
from webhookreceiver import Receiver

QUESTION = "What does Russia demand on NATO?"
ARTICLE = {"id": "client-test-1", "title": "Lighthouse restored", "url": "https://news.example/lighthouse",
           "published": "2022-09-01",
           "text": "The old lighthouse at Cape Wrath was restored by volunteers over two summers. It shines again."}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    # Loopback webhooks allowed, for the standing questions' receiver.
    with RagServe(tmp_path_factory.mktemp("client"), RAG_API_KEYS=KEY, RAG_FETCH_ALLOW_PRIVATE="true") as server:
        yield server


def test_sync_client_reads(served):
    with Client(served.url) as rag:
        answer = rag.ask(QUESTION, k=3)
        assert isinstance(answer, QueryResponse)
        assert answer.model_dump(mode="json") == httpx.post(f"{served.url}/query", json={"question": QUESTION, "k": 3}).json()
        passages = rag.search(QUESTION, k=2, as_of="2030-01-01")
        assert len(passages) == 2 and all(isinstance(p, Passage) for p in passages)
        docs = rag.documents()
        assert len(docs) == 5 and all(isinstance(d, DocumentSummary) for d in docs)
        doc = rag.document(passages[0].doc_id)
        assert isinstance(doc, DocumentOut) and doc.text[passages[0].start : passages[0].end] == passages[0].text
        assert isinstance(rag.health(), Health) and rag.health().documents == 5
        assert "rag_http_requests_total" in rag.metrics()


def test_sync_client_errors_carry_the_servers_sentence(served):
    with Client(served.url) as rag:
        with pytest.raises(NotFound) as missing:
            rag.document("nope")
        assert missing.value.status == 404 and missing.value.message == "no document with id 'nope'"
        with pytest.raises(BadRequest) as bad:
            rag.ask(QUESTION, k=0)
        assert bad.value.status == 422 and bad.value.message == httpx.post(
            f"{served.url}/query", json={"question": QUESTION, "k": 0}).json()["error"]
        with pytest.raises(Unauthorized) as refused:
            rag.add_document("some text")
        assert refused.value.status == 401 and "API key" in refused.value.message
    with Client(served.url, api_key="not-the-key-0123456789") as wrong, pytest.raises(Unauthorized, match="not valid"):
        wrong.delete_document("000_1447df4d8abbbe65")


def test_sync_client_writes_with_a_key(served, tmp_path):
    with Client(served.url, api_key=KEY) as rag:
        added = rag.add_document(ARTICLE["text"], id=ARTICLE["id"], title=ARTICLE["title"], url=ARTICLE["url"],
                                 published=ARTICLE["published"])
        assert isinstance(added, IngestOut) and added.added == [ARTICLE["id"]]
        assert rag.add_document(ARTICLE["text"], id=ARTICLE["id"], title=ARTICLE["title"], url=ARTICLE["url"],
                                published=ARTICLE["published"]).unchanged == [ARTICLE["id"]]
        file = tmp_path / "note.txt"
        file.write_text("Volunteers planted a thousand oak trees along the river in Perth.")
        assert rag.upload(file).added == ["note"]
        assert rag.delete_document("note").deleted
        with pytest.raises(NotFound):
            rag.delete_document("note")


def test_timelines_and_standing_questions(served):
    receiver = Receiver()
    try:
        with Client(served.url, api_key=KEY) as rag:
            story = rag.timeline(QUESTION, as_of="2030-01-01")
            assert isinstance(story, TimelineResponse) and story.model_dump(mode="json") == httpx.post(
                f"{served.url}/timeline", json={"question": QUESTION, "as_of": "2030-01-01"}).json()
            assert story.undated  # the seeds carry no dates: listed apart, none on the timeline
            made = rag.add_watch(QUESTION, url=receiver.url, min_relevance=0.3)
            assert made.secret.startswith("whsec_") and made.min_relevance == 0.3
            assert [w.id for w in rag.watches()] == [made.id] and isinstance(rag.watches()[0], WatchOut)
            assert rag.watch(made.id).question == QUESTION
            assert rag.watch_events(made.id) == []
            with pytest.raises(BadRequest, match="only http and https"):
                rag.add_watch(QUESTION, url="file:///etc/passwd")
            assert rag.delete_watch(made.id).deleted
            with pytest.raises(NotFound, match="no watch with id"):
                rag.watch(made.id)
        with Client(served.url) as anonymous, pytest.raises(Unauthorized):
            anonymous.add_watch(QUESTION, url=receiver.url)
    finally:
        receiver.close()


def test_async_client(served):
    async def main() -> tuple:
        async with AsyncClient(served.url, api_key=KEY) as rag:
            answer = await rag.ask(QUESTION, k=3)
            docs = await rag.documents()
            assert (await rag.timeline(QUESTION)).undated
            made = await rag.add_watch(QUESTION, url=receiver.url)
            assert made.id in [w.id for w in await rag.watches()] and await rag.watch_events(made.id) == []
            assert (await rag.delete_watch(made.id)).deleted
            try:
                await rag.document("nope")
            except NotFound as exc:
                missing = exc
            return answer, docs, missing

    receiver = Receiver()
    try:
        answer, docs, missing = asyncio.run(main())
    finally:
        receiver.close()
    assert isinstance(answer, QueryResponse) and answer.passages
    assert {d.id for d in docs} >= {p.doc_id for p in answer.passages}
    assert missing.message == "no document with id 'nope'"


class Failing(BaseHTTPRequestHandler):
    """Answers every request 503 and counts them."""

    hits = 0

    def log_message(self, *args) -> None:  # noqa: ANN002
        pass

    def _fail(self) -> None:
        type(self).hits += 1
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = b'{"error": "the embedding server does not answer"}'
        self.send_response(503)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _fail  # noqa: N815


def test_only_reads_are_retried():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with Client(url, retries=2, backoff_s=0.01) as rag:
            with pytest.raises(ServerError) as read:
                rag.ask(QUESTION)
            assert read.value.status == 503 and read.value.message == "the embedding server does not answer"
            assert Failing.hits == 3  # one try and two retries
            Failing.hits = 0
            with pytest.raises(ServerError):
                rag.add_document("some text")
            assert Failing.hits == 1  # a write is sent once
    finally:
        server.shutdown()
        server.server_close()
    with Client(f"http://127.0.0.1:{free_port()}", retries=1, backoff_s=0.01) as down, pytest.raises(ConnectionFailed) as gone:
        down.health()
    assert gone.value.status is None and "no answer from" in gone.value.message


def test_langchain_retriever(served):
    from langchain_core.documents import Document

    from rag.client.langchain import NewsRetriever

    with Client(served.url, api_key=KEY) as rag:
        rag.add_document(ARTICLE["text"], id=ARTICLE["id"], title=ARTICLE["title"], url=ARTICLE["url"],
                         published=ARTICLE["published"])
        retriever = NewsRetriever(client=rag, k=3)
        found = retriever.invoke("Who restored the lighthouse at Cape Wrath?")
        assert len(found) == 3 and all(isinstance(d, Document) for d in found)
        top = found[0].metadata
        assert top["doc_id"] == ARTICLE["id"] and top["title"] == ARTICLE["title"] and top["url"] == ARTICLE["url"]
        assert top["published"] == ARTICLE["published"]
        for d in found:
            text = rag.document(d.metadata["doc_id"]).text
            assert text[d.metadata["start"] : d.metadata["end"]] == d.page_content
        seed = next(d for d in found if d.metadata["doc_id"] != ARTICLE["id"])
        assert seed.metadata["url"] is None and seed.metadata["source"]  # a file path is not a URL

        async def both() -> tuple:
            async with AsyncClient(served.url) as arag:
                fast = NewsRetriever(client=rag, async_client=arag, k=3)
                return await fast.ainvoke("Who restored the lighthouse at Cape Wrath?"), await retriever.ainvoke("NATO")

        native, threaded = asyncio.run(both())
        assert [d.metadata["doc_id"] for d in native] == [d.metadata["doc_id"] for d in found]
        assert threaded and threaded[0].metadata["doc_id"] != ARTICLE["id"]
        rag.delete_document(ARTICLE["id"])
