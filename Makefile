# vmkeeper: `make demo` and `make test` set themselves up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY_OK  := $(VENV)/.installed
NODE_OK := node_modules/.installed

.PHONY: setup test soak demo bench lint format clean

setup: $(PY_OK) $(NODE_OK)

$(PY_OK): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt -e ".[dev]"
	touch $@

$(NODE_OK): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

lint: $(PY_OK)
	$(BIN)/ruff check .

test: setup lint
	$(BIN)/pytest

soak: setup
	$(BIN)/pytest -m slow -s

demo: setup
	$(BIN)/python -m scripts.demo

bench: setup
	$(BIN)/python -m bench

format: $(PY_OK)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache .hypothesis
