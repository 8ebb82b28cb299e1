# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON_BOOT ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test test-fast lint bench browser clean

$(STAMP): pyproject.toml $(wildcard package-lock.json)
	test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,embedded,bench]'
	if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --silent; fi
	touch $(STAMP)

install: $(STAMP)

# Debian's chromium for the browser tests (never `playwright install`: no internet). As root (CI) directly,
# otherwise through sudo.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "installing Debian's chromium for the browser tests"; \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@command -v chromium >/dev/null 2>&1 || { echo "chromium is still missing: install Debian's chromium package" >&2; exit 1; }

# `--dev`: the demo's vendor picker (GET /api/dev/token hands a token for ANY vendor, without authentication);
# `up` prints a warning while it is on. Plain `ledger-sync up` keeps those routes off.
run: install
	$(VENV)/bin/ledger-sync up --dev --watch

# ruff and mypy first: a finding fails the run before any test starts.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: lint browser
	$(PY) -m pytest -q -p no:cacheprovider

test-fast: lint
	$(PY) -m pytest -q -p no:cacheprovider -m "not browser and not scaleout"

bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) node_modules .ledger-sync artifacts
