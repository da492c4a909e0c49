# Two entry points for a fresh machine with Python 3.11+: `make serve` and `make test`.
# Each creates .venv and installs the project first (again only when pyproject.toml changes).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# `geo serve` runs uvicorn with bounded connections (503 past 1000), request heads (64 kB, 10 s) and
# idle keep-alive (5 s); see geo/cli.py. GEO_* settings bound bodies, downloads and caches.
serve: $(STAMP)
	-$(BIN)/geo data fetch
	$(BIN)/geo serve --host 127.0.0.1 --port 8000

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	bash scripts/system-deps.sh
	$(BIN)/pytest
