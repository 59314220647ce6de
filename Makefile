# Two commands do everything on a fresh machine: `make book` and `make test`.
# Each creates the virtual environment .venv on first use and reinstalls when requirements change.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test book venv clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

test: $(STAMP)
	$(BIN)/python -m pytest

book: $(STAMP)
	$(BIN)/jupyter-book build . -W -n --keep-going

clean:
	rm -rf _build
