# Everything runs from the project's own virtual environment; `make demo` and `make test` set it up.
# The first install compiles llama.cpp inside llama-cpp-python (~9 min on 2 cores); pip caches the wheel.
VENV ?= .venv
PY := $(VENV)/bin/python
GGUFPROF := $(VENV)/bin/ggufprof
DEMO_MODEL ?= fixtures/gemma3-swa.gguf

.PHONY: install dist browser nginx archs demo test fixtures bench-metadata clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

# A wheel in dist/ for `pip install dist/ggufprof-*.whl` or `pipx install`: with `build` when it is
# installed, else pip's own wheel builder (the same setuptools backend, pyproject.toml).
dist:
	@if python3 -m build --version >/dev/null 2>&1; then python3 -m build --wheel --outdir dist .; \
	else python3 -m pip wheel . --no-deps --wheel-dir dist; fi

demo: install
	$(GGUFPROF) inspect $(DEMO_MODEL)
	$(GGUFPROF) sweep $(DEMO_MODEL) --out ggufprof-out/demo
	$(GGUFPROF) results ggufprof-out/demo
	$(GGUFPROF) report ggufprof-out/demo

# Debian's Chromium and ChromeDriver, for the test that opens the HTML report in a real browser.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

# Debian's nginx, the real web server (range requests, 304s, 401s) tests/test_remote.py starts on 127.0.0.1.
nginx:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; }

# llama.cpp's architecture suite (one tiny model per architecture) and llama-fit-params, built from the
# vendored llama.cpp outside the repo (~8 min the first time on 2 cores, then cached): the oracles of
# tests/test_archs_suite.py and of the footprint tests in tests/test_fit.py. ggml-rpc-server (rpc-server): the offload
# devices of the placement tests (tests/rpc_rig.py), on 127.0.0.1 only.
archs: install
	@command -v cmake >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake g++ >/dev/null; }
	scripts/archs_suite.sh
	scripts/build_llama_tools.sh llama-fit-params ggml-rpc-server

test: install browser nginx archs
	$(PY) -m pytest

fixtures: install
	$(PY) scripts/make_fixtures.py

bench-metadata: install
	$(PY) scripts/bench_metadata.py

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
