"""The OpenAI-compatible embedding backend against real servers on loopback.

llama.cpp's server (`python -m llama_cpp.server`, the `llm` extra) serves the packaged MiniLM,
converted to GGUF by llama.cpp's own converter (`make llama-converter` fetches it from the pinned
llama-cpp-python sdist). A small `http.server` stands in for servers that answer garbage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

if not os.environ.get("CI"):
    pytest.importorskip("llama_cpp", reason="the `llm` extra is not installed (pip install -e '.[llm]')")

from rag.config import Settings  # noqa: E402
from rag.embedding import EmbeddingError, load_embedder, weights_sha256  # noqa: E402
from rag.embedding.base import resolve_model_path  # noqa: E402
from rag.embedding.openai_backend import CHARS_PER_TOKEN, OpenAIEmbedder  # noqa: E402
from rag.service import Service  # noqa: E402
from rag.storage.index import IndexMismatch  # noqa: E402

from eval.serving import LOOPBACK, ServerDidNotStart, free_port, stop, wait_until_up  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache"
CONVERTER = CACHE / "llama-src" / "llama.cpp" / "convert_hf_to_gguf.py"
KEY = "test-key"
MODEL = "all-minilm-l6-v2"
# llama.cpp's LLAMA_POOLING_TYPE_MEAN: what the sentence-transformers model's 1_Pooling does.
POOLING_MEAN = 1


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return Path(resolve_model_path(Settings().embed_model))


@pytest.fixture(scope="module")
def gguf(model_dir) -> Path:
    """The packaged model as an f32 GGUF, converted once into the cache (keyed by its weights)."""
    if not CONVERTER.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{CONVERTER} is missing: run `make llama-converter`")
        pytest.skip(f"{CONVERTER} is missing: run `make llama-converter`")
    out = CACHE / "gguf" / f"minilm-{weights_sha256(str(model_dir))[:16]}-f32.gguf"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        done = subprocess.run(
            [sys.executable, str(CONVERTER), str(model_dir), "--outfile", str(tmp), "--outtype", "f32"],
            capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        assert done.returncode == 0, done.stderr[-2000:]
        os.replace(tmp, out)
    return out


@pytest.fixture(scope="module")
def llama_server(gguf, tmp_path_factory) -> str:
    """`python -m llama_cpp.server --embedding` over the GGUF, behind an API key; its base URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--embedding", "true",
           "--host", LOOPBACK, "--port", str(port), "--n_ctx", "512", "--api_key", KEY, "--model_alias", MODEL,
           # One thread: llama.cpp's threads spin-wait on each other, and on a busy 2-core machine a
           # descheduled one stalled single-text requests from ~20 ms to seconds.
           "--n_threads", "1", "--n_threads_batch", "1"]
    log = tmp_path_factory.mktemp("llama-embed") / "server.log"  # an unread pipe would fill and stall it
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    url = f"http://{LOOPBACK}:{port}"
    try:
        try:
            wait_until_up(proc, f"{url}/openapi.json", 120, log, interval_s=0.3)  # open without the key
        except ServerDidNotStart as exc:
            pytest.fail(f"llama_cpp.server {exc}")
        yield url
    finally:
        stop(proc, timeout_s=20)


def endpoint_settings(url: str, **extra) -> Settings:
    return Settings(**{"embed_backend": "openai", "embed_model": MODEL, "embed_base_url": f"{url}/v1",
                       "embed_api_key": KEY, **extra})


@pytest.fixture(scope="module")
def remote(llama_server, model_dir) -> OpenAIEmbedder:
    s = endpoint_settings(llama_server, embed_tokenizer=model_dir, embed_max_tokens=256)
    return load_embedder(s.embed_model, s.embed_backend, settings=s)


def test_the_gguf_pools_by_mean_as_the_model_does(gguf, model_dir):
    sys.path.insert(0, str(CONVERTER.parent / "gguf-py"))
    try:
        import gguf as gguf_py

        fields = gguf_py.GGUFReader(str(gguf)).fields
        pooling = fields["bert.pooling_type"]
        assert int(pooling.parts[pooling.data[0]][0]) == POOLING_MEAN
    finally:
        sys.path.remove(str(CONVERTER.parent / "gguf-py"))
    config = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
    assert config["pooling_mode_mean_tokens"] and not config["pooling_mode_cls_token"]


def test_identity_and_normalised_vectors(remote):
    assert (remote.identity.name, remote.identity.dim, remote.identity.backend) == (MODEL, 384, "openai-api")
    vecs = remote.encode([f"text number {i}" for i in range(150)], batch_size=16)  # 10 requests, 2 at once
    assert vecs.shape == (150, 384) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert remote.encode([]).shape == (0, 384)


def test_endpoint_vectors_agree_with_the_local_backend_on_the_seeds(remote, seeds_service, embedder):
    store = seeds_service.index.store
    texts = [c.text for d in store.documents() for c in store.chunks_by_vid(store.chunk_vids(d.id)).values()]
    cos = np.sum(remote.encode(texts) * embedder.encode(texts), axis=1)
    print(f"\ncosine endpoint vs local ONNX int8 over {len(texts)} seeds chunks: "
          f"mean {cos.mean():.4f}, min {cos.min():.4f}")
    # Against the int8 export; against torch (same float weights) it is ~0.9999.
    assert cos.mean() > 0.99 and cos.min() > 0.97


def test_token_counts_follow_the_named_tokenizer_else_the_estimate(remote, llama_server, embedder):
    text = "Dmitry Peskov said the Kremlin's position on NATO enlargement had not changed."
    assert remote.count_tokens(text) == embedder.count_tokens(text)
    plain = load_embedder(MODEL, "openai", settings=endpoint_settings(llama_server))
    assert plain.count_tokens(text) == -(-len(text) // CHARS_PER_TOKEN) >= embedder.count_tokens(text)


def test_an_index_built_over_the_endpoint(remote, tmp_path, seeds_service, gold, embedder):
    s = endpoint_settings(remote.url.rsplit("/v1", 1)[0], index_dir=tmp_path, seeds_dir=seeds_service.settings.seeds_dir)
    service = Service(s, embedder=remote)
    service.seed_if_needed()
    assert (service.manifest.model_name, service.manifest.dim) == (MODEL, 384)
    assert service.index.store.counts() == seeds_service.index.store.counts()
    from rag.schema import Query

    top = {g["id"]: service.ask(Query(question=g["question"], answer=False)).passages for g in gold}
    local = {g["id"]: seeds_service.ask(Query(question=g["question"], answer=False)).passages for g in gold}
    agree = sum(top[q][0].doc_id == local[q][0].doc_id for q in top if top[q] and local[q])
    assert agree >= 0.9 * len(gold)
    with pytest.raises(IndexMismatch, match="model_name"):
        Service(Settings(index_dir=tmp_path), embedder=embedder)  # the local model: refused as today


@pytest.mark.parametrize(
    "extra, says",
    [
        ({"embed_api_key": "wrong"}, "refused the request (401): check RAG_EMBED_API_KEY"),
        ({"embed_dim": 768}, "returns 384-dimensional vectors for model 'all-minilm-l6-v2', but RAG_EMBED_DIM is 768"),
        ({"embed_base_url": "/v1/v1"}, "(404)"),
    ],
)
def test_start_errors_are_one_sentence(llama_server, extra, says):
    if extra.get("embed_base_url"):
        extra = {"embed_base_url": llama_server + extra["embed_base_url"]}
    s = endpoint_settings(llama_server, **extra)
    with pytest.raises(EmbeddingError) as err:
        load_embedder(s.embed_model, s.embed_backend, settings=s)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_nothing_listening_is_one_sentence():
    s = endpoint_settings(f"http://{LOOPBACK}:{free_port()}", embed_retries=1)
    with pytest.raises(EmbeddingError, match="cannot reach the embedding server .* is it running"):
        load_embedder(s.embed_model, s.embed_backend, settings=s)


def test_the_model_must_be_named():
    with pytest.raises(EmbeddingError, match="RAG_EMBED_MODEL"):
        load_embedder(Settings().embed_model, "openai")


class _Odd(BaseHTTPRequestHandler):
    """Answers /<mode>/v1/embeddings badly on purpose; a 384-d probe answer for `/ok-then-*`."""

    calls = 0

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        mode = self.path.strip("/").split("/")[0]
        texts = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["input"]
        row = lambda i, d=384: {"object": "embedding", "index": i, "embedding": [0.1] * d}  # noqa: E731
        probe = len(texts) == 1
        if mode == "garbage":
            body = b"<html>502 bad gateway</html>"
        elif mode == "few" and not probe:
            body = json.dumps({"data": [row(0)]}).encode()
        elif mode == "zeros" and not probe:
            body = json.dumps({"data": [{"index": i, "embedding": [0.0] * 384} for i in range(len(texts))]}).encode()
        elif mode == "resized" and not probe:
            body = json.dumps({"data": [row(i, 768) for i in range(len(texts))]}).encode()
        elif mode == "flaky" and type(self).calls % 2 == 0:
            type(self).calls += 1
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        else:
            type(self).calls += 1
            body = json.dumps({"data": [row(i) for i in range(len(texts))]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def odd_server():
    server = ThreadingHTTPServer((LOOPBACK, free_port()), _Odd)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://{LOOPBACK}:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_garbage_at_start_is_one_sentence(odd_server):
    with pytest.raises(EmbeddingError, match="answered something other than OpenAI embeddings: <html>502"):
        OpenAIEmbedder(f"{odd_server}/garbage", MODEL, retries=0)


@pytest.mark.parametrize(
    "mode, says",
    [("few", "returned 1 vectors of shape \\(384,\\) for 2 texts"), ("zeros", "zero, NaN or infinite"),
     ("resized", "now returns 768-dimensional vectors, not the 384")],
)
def test_bad_vectors_on_a_request_are_one_sentence(odd_server, mode, says):
    e = OpenAIEmbedder(f"{odd_server}/{mode}", MODEL, retries=0)
    with pytest.raises(EmbeddingError, match=says):
        e.encode(["one", "two"])


def test_a_503_is_retried(odd_server):
    e = OpenAIEmbedder(f"{odd_server}/flaky", MODEL, retries=1)
    assert e.encode(["one", "two"]).shape == (2, 384)


def test_a_server_gone_after_start_is_a_503_sentence_on_the_query(tmp_path):
    from fastapi.testclient import TestClient

    from api.app import create_app

    server = ThreadingHTTPServer((LOOPBACK, free_port()), _Odd)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    embedder = OpenAIEmbedder(f"http://{LOOPBACK}:{server.server_port}/ok", MODEL, retries=0)
    server.shutdown()
    server.server_close()
    with TestClient(create_app(Service(Settings(index_dir=tmp_path), embedder=embedder))) as client:
        resp = client.post("/query", json={"question": "Who won?", "answer": False})
    assert resp.status_code == 503
    assert resp.json()["error"].startswith("cannot reach the embedding server")
