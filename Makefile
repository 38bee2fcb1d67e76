# The commands the README gives. Each sets itself up first, so a fresh clone needs only
# Python 3.11, Node 20 and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CHECKOV_VENV := .venv-checkov
PYTEST_ARGS ?=

.PHONY: setup test lint typecheck check demo bench simulate emulators clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# checkov pins pycep-parser 0.5 and packaging<24, which cannot live beside pytest 9 and
# pycep-parser 0.7 (needed for Bicep `extension`): it gets a venv of its own.
$(CHECKOV_VENV)/.installed:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet "checkov==3.3.30"
	$(CHECKOV_VENV)/bin/python -m pip install --quiet "pycep-parser==0.7.1"
	touch $@

setup: $(VENV)/.installed node_modules/.installed $(CHECKOV_VENV)/.installed

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy .

check: lint typecheck test

# The demo needs the venv and Azurite, not the checkov venv: a fresh clone starts faster.
demo: $(VENV)/.installed node_modules/.installed
	$(PY) -m demo

bench: setup
	$(PY) -m bench

simulate: setup
	$(PY) -m bench.simulate

emulators: setup
	$(PY) -m emulators

# A local sandbox for the CLI and `func start` (README: Try it locally): the emulators and Azurite,
# .sandbox.env and local.settings.json written for them. In the foreground until Ctrl-C;
# DETACH=1 runs it in the background, STOP=1 stops that one.
.PHONY: sandbox
sandbox: $(VENV)/.installed node_modules/.installed
	$(PY) -m devenv.sandbox $(if $(STOP),--stop,$(if $(DETACH),--detach))

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) node_modules .mypy_cache .pytest_cache .ruff_cache
