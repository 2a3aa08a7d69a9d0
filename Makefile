# Two commands for a newcomer: `make serve` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
HOST   ?= 127.0.0.1
PORT   ?= 8000

# Models load only from installed packages: never reach for a model hub at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: serve test test-all eval bench bench-index bench-txtai venv clean-index

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# The CPU build of torch lies on disk; installing it first keeps pip from pulling CUDA.
	$(PIP) install -q torch==2.13.0
	touch $@

$(VENV)/.base: $(VENV)/.created pyproject.toml
	$(PIP) install -q -e .
	touch $@

# Tests need the `llm` extra too: llama-cpp-python compiles from source once (~5 min on 2 cores).
$(VENV)/.dev: $(VENV)/.base pyproject.toml
	$(PIP) install -q -e '.[dev,llm]'
	touch $@

venv: $(VENV)/.dev

serve: $(VENV)/.base
	$(VENV)/bin/rag serve --host $(HOST) --port $(PORT)

test: $(VENV)/.dev
	$(PY) -m pytest -q

test-all: $(VENV)/.dev
	$(PY) -m pytest -q -m ''

eval: $(VENV)/.dev
	$(VENV)/bin/rag eval

bench: $(VENV)/.dev
	$(PY) -m eval.bench

bench-index: $(VENV)/.dev
	$(PY) -m eval.bench_index

bench-txtai: $(VENV)/.dev
	$(PIP) install -q -e '.[bench]'
	$(PY) -m eval.bench_txtai

clean-index:
	rm -rf index/*.faiss index/*.sqlite* index/manifest.json
