# The few verbs people use. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The browser tests (tests/web) drive Debian's Chromium; Playwright never downloads one.
CHROMIUM := /usr/bin/chromium
# The terminal chat's tests (tests/client/test_chat.py) drive it in tmux.
TMUX := /usr/bin/tmux

# Test processes: the suite mostly waits (servers, leases, sockets), so three share two cores.
WORKERS ?= 3
# The fast tier: no PostgreSQL, Redis, netra processes or browser; SQLite and in-thread servers.
FAST := tests/test_layers.py tests/foundation tests/db tests/events tests/realtime tests/engine \
	tests/models tests/agents tests/tools

.PHONY: run test test-fast lint format bench compare clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: install into .venv and start the server on http://127.0.0.1:8000 (SQLite, offline model)
run: $(STAMP)
	$(BIN)/netra serve $(ARGS)

# Debian's Chromium for the browser tests, installed when missing (as root, like CI).
$(CHROMIUM):
	apt-get update
	apt-get install -y --no-install-recommends chromium

# Debian's tmux for the terminal chat's tests, installed when missing.
$(TMUX):
	apt-get update
	apt-get install -y --no-install-recommends tmux

## test: install (Chromium and tmux too), lint, type-check and run the whole test suite
test: $(STAMP) $(CHROMIUM) $(TMUX)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy
	$(BIN)/pytest -n $(WORKERS) $(PYTEST_ARGS)

## test-fast: the engine, frames, repositories, models and tools on SQLite, in under a minute
test-fast: $(STAMP)
	$(BIN)/pytest -n $(WORKERS) -m "not postgres and not redis" $(FAST) $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests bench examples
	$(BIN)/ruff check --fix src tests bench examples

## bench: load benchmark against a real server; prints JSON
bench: $(STAMP)
	$(BIN)/python bench/load.py $(ARGS)

## compare: Netra beside the LangGraph dev server and a raw uvicorn server (bench/README.md); JSON
compare: $(STAMP)
	$(BIN)/python bench/compare.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
