# vmkeeper: `make demo` and `make test` set themselves up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY_OK  := $(VENV)/.installed
NODE_OK := node_modules/.installed
CHROMIUM := /usr/bin/chromium
BROWSER_OK := node_modules/.chromium
WHEELS     := $(VENV)/arm-sdk-wheels
WHEELS_OK  := $(WHEELS)/.downloaded

.PHONY: setup test soak demo up down bench lint format clean

setup: $(PY_OK) $(NODE_OK) $(BROWSER_OK) $(WHEELS_OK)

$(PY_OK): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt -e ".[dev]"
	touch $@

$(NODE_OK): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The resource provider schemas tests/infra/test_whatif.py checks infra/ against: azure-mgmt-* wheels,
# downloaded (one pin at a time: some packages are pinned twice, at two api-versions) and never installed.
$(WHEELS_OK): devtools/whatif/sdk-wheels.txt | $(PY_OK)
	sed 's/#.*//' devtools/whatif/sdk-wheels.txt | xargs -n1 $(BIN)/pip download --quiet --disable-pip-version-check \
	  --no-deps --only-binary=:all: -d $(WHEELS)
	touch $@

# Debian's chromium, which playwright-core drives in the report page's browser test (Playwright's own
# browser download is not used). Installed only when missing, and only root can.
$(BROWSER_OK): $(NODE_OK)
	test -x $(CHROMIUM) || { \
	  test "$$(id -u)" = 0 || { echo "$(CHROMIUM) is missing: run 'make setup' as root to apt-get install chromium" >&2; exit 1; }; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }
	touch $@

lint: $(PY_OK)
	$(BIN)/ruff check .

test: setup lint
	$(BIN)/pytest

soak: setup
	$(BIN)/pytest -m slow -s

demo: setup
	$(BIN)/python -m scripts.demo

# The local stack, in the foreground until Ctrl-C (`make down` from another terminal stops it too); PORT=7072 to
# serve the app elsewhere than 7071.
up: setup
	$(BIN)/python -m scripts.stack up $(if $(PORT),--port $(PORT))

down:
	$(BIN)/python -m scripts.stack down

bench: setup
	$(BIN)/python -m bench

format: $(PY_OK)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache .hypothesis
