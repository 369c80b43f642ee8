# Two commands on a fresh clone (Python 3.10+ with pip, package registries reachable):
#   make demo   set up .venv, then run the main job on the embedded default data
#   make test   set up .venv, then run the test suite
# Both are idempotent: the install step reruns only when pyproject.toml changes.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgecn-installed
TARGET ?= rpi5

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "edgecn needs Python 3.10 or newer (3.11 is what is tested)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# One resolver run for the whole stack: installing executorch in a second pip command breaks a pin.
	$(BIN)/python -m pip install -e ".[full,dev]"
	@touch $(STAMP)

demo: setup
	$(BIN)/edgecn demo --target $(TARGET)

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/run_all.py

clean:
	rm -rf build runs .pytest_cache
