# Two commands for a newcomer: `make serve` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
HOST   ?= 127.0.0.1
PORT   ?= 8000
# Every install resolves against constraints.txt, so a fresh machine gets the versions the figures
# were measured with: the int8 export and its vectors change with torch, onnx and onnxruntime.
CONSTRAINTS := constraints.txt
INSTALL     := $(PIP) install -q -c $(CONSTRAINTS)
# The web page tests drive Debian's Chromium (tests/api/test_web.py); no browser is downloaded.
CHROMIUM    := /usr/bin/chromium
# The metrics test scrapes a live server with Debian's Prometheus (tests/api/test_prometheus.py).
PROMETHEUS  := /usr/bin/prometheus

# Models load only from installed packages: never reach for a model hub at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: serve test test-all eval bench bench-index bench-txtai bench-observe venv browser prometheus llama-converter lock clean-index

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(INSTALL) --upgrade pip
	# The CPU build of torch lies on disk; installing it first keeps pip from pulling CUDA.
	$(INSTALL) torch==2.13.0
	touch $@

$(VENV)/.base: $(VENV)/.created pyproject.toml $(CONSTRAINTS)
	$(INSTALL) -e .
	touch $@

# llama-cpp-python compiles llama.cpp for this machine's CPU (~4 min on 2 cores). The wheel is kept
# in a folder named for the CPU's flags and the build's, never in pip's wheel cache: pip keys that by
# version alone, and would hand this CPU a build made for another, with instructions it lacks. On
# x86-64 it is built without llama.cpp's AMX kernels, which crash the process on Intel CPUs that
# have AMX with Q4_K models, the packaged Gemma's type (llama.cpp#20824);
# rag/answering/generator_local.py refuses a build that has them.
LLAMA_VERSION := $(shell sed -n 's/^llama_cpp_python==//p' $(CONSTRAINTS))
LLAMA_CFLAGS  := $(if $(filter x86_64,$(shell uname -m)),-mno-amx-tile -mno-amx-int8 -mno-amx-bf16)
LLAMA_CPU     := $(shell (uname -m; grep -m1 '^flags' /proc/cpuinfo 2>/dev/null; echo '$(LLAMA_CFLAGS)') | cksum | cut -d' ' -f1)
LLAMA_WHEELS  := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/rag/llama-cpp-python/$(LLAMA_VERSION)-$(LLAMA_CPU)
$(VENV)/.llama: $(CONSTRAINTS) | $(VENV)/.created
	test -d $(LLAMA_WHEELS) || { rm -rf $(LLAMA_WHEELS).part && \
	  CFLAGS="$(LLAMA_CFLAGS)" CXXFLAGS="$(LLAMA_CFLAGS)" $(PIP) wheel -q --no-cache-dir --no-deps \
	    -c $(CONSTRAINTS) llama-cpp-python==$(LLAMA_VERSION) -w $(LLAMA_WHEELS).part && \
	  mv $(LLAMA_WHEELS).part $(LLAMA_WHEELS); }
	$(INSTALL) --force-reinstall --no-deps $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl
	touch $@

# Tests need the `llm` extra too (llama-cpp-python above, with its server) and the `ray` extra,
# whose tests start a real two-node cluster.
$(VENV)/.dev: $(VENV)/.base $(VENV)/.llama pyproject.toml $(CONSTRAINTS)
	$(INSTALL) -e '.[dev,llm,ray]'
	touch $@

venv: $(VENV)/.dev

# llama.cpp's HF -> GGUF converter (with its `conversion` package and gguf-py), from the sdist of the
# pinned llama-cpp-python: tests/embedding/test_openai_backend.py serves the packaged model over
# llama.cpp's server, and tests never reach the network.
LLAMA_SRC     := .cache/llama-src
$(LLAMA_SRC)/llama.cpp/convert_hf_to_gguf.py: $(CONSTRAINTS) | $(VENV)/.created
	rm -rf $(LLAMA_SRC) && mkdir -p $(LLAMA_SRC)
	$(PIP) download -q --no-deps --no-binary :all: llama-cpp-python==$(LLAMA_VERSION) -d $(LLAMA_SRC)
	tar -xzf $(LLAMA_SRC)/llama_cpp_python-$(LLAMA_VERSION).tar.gz -C $(LLAMA_SRC) --strip-components=2 \
	  --wildcards '*/vendor/llama.cpp/convert_hf_to_gguf.py' '*/vendor/llama.cpp/conversion/*' '*/vendor/llama.cpp/gguf-py/*'
	rm $(LLAMA_SRC)/*.tar.gz
	touch $@

llama-converter: $(LLAMA_SRC)/llama.cpp/convert_hf_to_gguf.py

serve: $(VENV)/.base
	$(VENV)/bin/rag serve --host $(HOST) --port $(PORT)

# RAG_REQUIRE_BROWSER=1 and RAG_REQUIRE_PROMETHEUS=1: the browser and Prometheus tests fail, not
# skip, without Chromium or Prometheus, so a green `make test` means the whole suite ran, as on CI.
test: $(VENV)/.dev browser prometheus llama-converter
	RAG_REQUIRE_BROWSER=1 RAG_REQUIRE_PROMETHEUS=1 $(PY) -m pytest -q

test-all: $(VENV)/.dev browser prometheus llama-converter
	RAG_REQUIRE_BROWSER=1 RAG_REQUIRE_PROMETHEUS=1 $(PY) -m pytest -q -m ''

# Installs Debian's Chromium when it is missing and apt can (root); otherwise says what to run.
browser:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && apt-get install -y -q chromium; \
	  fi; \
	  test -x $(CHROMIUM) || { \
	    echo "make test drives Chromium at $(CHROMIUM) for the web page tests; install Debian's package:" \
	      "sudo apt-get install -y chromium (or run the rest alone: $(PY) -m pytest -q)"; \
	    exit 1; }; }

# Installs Debian's Prometheus server when it is missing and apt can (root); otherwise says what to run.
prometheus:
	@test -x $(PROMETHEUS) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && apt-get install -y -q --no-install-recommends prometheus; \
	  fi; \
	  test -x $(PROMETHEUS) || { \
	    echo "make test scrapes a live server with Prometheus at $(PROMETHEUS); install Debian's package:" \
	      "sudo apt-get install -y prometheus (or run the rest alone: $(PY) -m pytest -q)"; \
	    exit 1; }; }

eval: $(VENV)/.dev
	$(VENV)/bin/rag eval

bench: $(VENV)/.dev
	$(PY) -m eval.bench

bench-observe: $(VENV)/.dev
	$(PY) -m eval.bench_observe

bench-index: $(VENV)/.dev
	$(PY) -m eval.bench_index

bench-txtai: $(VENV)/.dev
	$(INSTALL) -e '.[bench]'
	$(PY) -m eval.bench_txtai

# `make lock` rewrites constraints.txt from .venv: every package installed there (the versions the
# suite passed with; local labels such as torch's +cpu dropped, so PyPI's 2.13.0 matches where the
# CPU wheel is absent) plus what the qwen and bench extras would add, resolved but not installed.
# To move a pin deliberately: install the new version into .venv (`.venv/bin/pip install -U X`),
# run `make test` (tests/embedding/test_export_checksum.py says what to re-record when torch, onnx
# or onnxruntime moved), then `make lock`, and commit constraints.txt with the change.
define LOCK_PY
import json, re, subprocess, sys, tempfile
HEADER = """
# Exact versions for every install (the Makefile passes -c constraints.txt to pip): `make test`'s
# packages (extras dev, llm, eval, ray) and the qwen and bench extras; Python 3.11, Linux x86-64.
# Generated by `make lock` from .venv; see the Makefile before editing by hand.
"""
pip = [sys.executable, "-m", "pip"]
key = lambda name: re.sub(r"[-_.]+", "-", name).lower()
pins = {}
frozen = subprocess.run([*pip, "freeze", "--all", "--exclude-editable"], check=True, capture_output=True, text=True)
for line in frozen.stdout.splitlines():
    if "==" in line and " @ " not in line:
        name, ver = line.split("==", 1)
        pins[key(name)] = (name, ver.split("+")[0])
with tempfile.NamedTemporaryFile(suffix=".json") as report:
    extras = ".[dev,llm,eval,ray,qwen,bench]"
    subprocess.run([*pip, "install", "-q", "--dry-run", "--report", report.name, "-e", extras], check=True)
    adds = json.load(open(report.name))["install"]
for item in adds:
    name, ver = item["metadata"]["name"], item["metadata"]["version"].split("+")[0]
    if item.get("is_direct"):
        continue
    if key(name) in pins:
        sys.exit(f"the extras need {name}=={ver}, .venv has {pins[key(name)][1]}: install it, make test, make lock")
    pins[key(name)] = (name, ver)
lines = [f"{name}=={ver}" for _, (name, ver) in sorted(pins.items())]
open("constraints.txt", "w").write(HEADER.lstrip() + "\n".join(lines) + "\n")
print(f"constraints.txt: {len(lines)} pins")
endef
export LOCK_PY

lock:
	@test -x $(PY) || { echo "no $(PY): run make venv first"; exit 1; }
	$(PY) -c "$$LOCK_PY"

clean-index:
	rm -rf index/*.faiss index/*.sqlite* index/manifest.json
