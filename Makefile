# Two commands do everything on a fresh machine: `make book` and `make test`.
# Each creates the virtual environment .venv on first use and reinstalls when requirements change.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Notebooks run in their own folders, so a relative data folder would point elsewhere in each.
ifdef NLCOURSE_DATA
export NLCOURSE_DATA := $(abspath $(NLCOURSE_DATA))
endif

# The book's executed pages depend on the package (its shipped weights too), the committed results
# and the budget, none of which Jupyter Book's cache sees (it keys on each page's own source): when
# this key changes, the cached executions and the labs' saved runs are dropped.
BOOK_KEY = $(shell cat $$(find nlcourse -name '*.py' | sort) nlcourse/weights/manifest.json $$(find results -name '*.json' -not -path '*/smoke/*' 2>/dev/null | sort) | sha1sum | cut -c1-16)-$(or $(NLCOURSE_BUDGET),auto)

.PHONY: test book venv sync exercises clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

book: $(STAMP)
	@mkdir -p _build
	@if [ "$$(cat _build/.book-key 2>/dev/null)" != "$(BOOK_KEY)" ]; then \
	  rm -rf _build/.jupyter_cache _build/jupyter_execute _build/.doctrees notebooks/runs \
	    results/*/smoke; \
	  echo "$(BOOK_KEY)" > _build/.book-key; fi
	$(BIN)/jupyter-book build . -W -n --keep-going

# The whole suite: the package's tests, every notebook under nbval, and the built site in a
# browser (so the site is built first).
test: book
	$(BIN)/python -m pytest

# After editing a notebook's .md, write its paired .ipynb (and the other way round). First, every
# address of the course (install cells, README links, package URLs) is rewritten from the one
# setting, _config.yml's `repository` (tools/course_setting.py). Last, the chapters' Colab
# notebooks (book/colab/) are regenerated from the chapters (tools/chapter_notebooks.py).
sync: $(STAMP)
	$(BIN)/python tools/course_setting.py --write
	$(BIN)/jupytext --sync notebooks/*.md notebooks/exercises/*.md
	$(BIN)/python tools/chapter_notebooks.py --write

# The exercises: pair each solution notebook, write nbgrader's cell metadata into its .ipynb
# (from the markers in the .md), and generate the student versions (commit the result).
exercises: $(STAMP)
	$(BIN)/jupytext --sync notebooks/exercises/*.md
	$(BIN)/python -m nlcourse.exercises.student notebooks/exercises

clean:
	rm -rf _build notebooks/runs results/*/smoke
