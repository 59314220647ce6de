# Two commands do everything on a fresh machine: `make book` and `make test`.
# Each creates the virtual environment .venv on first use and reinstalls when requirements change.
# `make check` runs the package's own tests only (a contributor's fast loop).
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# What the environment installs: the exact versions of the lock (Linux x86-64, Python 3.11: the
# machines CI runs on), written from requirements.txt by `make lock`. Elsewhere, or to try the
# newest releases: `make venv REQUIREMENTS=requirements.txt`.
REQUIREMENTS ?= requirements-lock.txt
STAMP := $(VENV)/.installed-$(notdir $(REQUIREMENTS))
# TORCH=cpu: PyTorch's CPU build is installed already (GitHub's runners, from PyTorch's own index),
# so the CUDA libraries that the lock pins for PyPI's build of the same version are left out.
TORCH ?=

# Notebooks run in their own folders, so a relative data folder would point elsewhere in each.
ifdef NLCOURSE_DATA
export NLCOURSE_DATA := $(abspath $(NLCOURSE_DATA))
endif

# The site reads the committed runs back where they exist (NLCOURSE_SOURCE=auto: the one switch
# that changes where the labs' trained models come from); a student's run of a lab trains.
# The book's executed pages depend on the package (its shipped weights too), the committed results
# and the budget, none of which Jupyter Book's cache sees (it keys on each page's own source): when
# this key changes, the cached executions and the labs' saved runs are dropped.
BOOK_KEY = $(shell cat $$(find nlcourse -name '*.py' | sort) nlcourse/weights/manifest.json $$(find results -name '*.json' -not -path '*/smoke/*' 2>/dev/null | sort) | sha1sum | cut -c1-16)-$(or $(NLCOURSE_BUDGET),auto)

.PHONY: test check colab book venv lock sync exercises feed otter clean

venv: $(STAMP)

$(STAMP): $(REQUIREMENTS) pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	if [ "$(TORCH)" = cpu ]; then grep -vE '^(nvidia-|cuda-|triton==)' $(REQUIREMENTS); \
	  else cat $(REQUIREMENTS); fi > $(VENV)/requirements-installed.txt
	$(BIN)/python -m pip install --quiet -r $(VENV)/requirements-installed.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed*
	touch $@

# Write requirements-lock.txt anew from requirements.txt: the newest releases its bounds allow
# today, with PyTorch held at the pair of tools/lock-torch.txt. uv resolves (a tool environment
# of its own, .venv-lock); commit the result, then `make venv` installs it.
LOCK_TOOLS := .venv-lock
lock:
	test -x $(LOCK_TOOLS)/bin/uv || { $(PYTHON) -m venv $(LOCK_TOOLS) && \
	  $(LOCK_TOOLS)/bin/python -m pip install --quiet uv; }
	$(LOCK_TOOLS)/bin/uv pip compile requirements.txt --constraint tools/lock-torch.txt \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --no-annotate \
	  --custom-compile-command "make lock" --output-file requirements-lock.txt --quiet

book: $(STAMP)
	@mkdir -p _build
	@if [ "$$(cat _build/.book-key 2>/dev/null)" != "$(BOOK_KEY)" ]; then \
	  rm -rf _build/.jupyter_cache _build/jupyter_execute _build/.doctrees notebooks/runs \
	    results/*/smoke; \
	  echo "$(BOOK_KEY)" > _build/.book-key; fi
	NLCOURSE_SOURCE=auto $(BIN)/jupyter-book build . -W -n --keep-going

# The whole suite: the package's tests, every notebook under nbval, and the built site in a
# browser (so the site is built first).
test: book
	$(BIN)/python -m pytest

# Labs 2 to 8 at the quick budget where Colab would run them: outside the repository, from their
# install cells, in an environment with Colab's packages (tests/test_colab.py); each must finish
# within 5 minutes besides the one model it trains. Times in _build/colab-times.txt.
colab: $(STAMP)
	@mkdir -p _build && rm -f _build/colab-times.txt
	NLCOURSE_COLAB_QUICK=1 $(BIN)/python -m pytest tests/test_colab.py -k every_lab -q -s
	@cat _build/colab-times.txt

# The package's unit tests alone: no book, no notebooks, no nbgrader or Otter, no browser (the
# tests marked slow). Minutes, for the loop of a change to nlcourse/; `make test` before pushing.
check: $(STAMP)
	$(BIN)/python -m pytest tests -m "not slow" -q

# After editing a notebook's .md, write its paired .ipynb (and the other way round). First, every
# address of the course (install cells, README links, package URLs) is rewritten from the one
# setting, _config.yml's `repository` (tools/course_setting.py). Then the chapters' Colab
# notebooks (book/colab/) are regenerated from the chapters (tools/chapter_notebooks.py), and the
# README's table of labs from the labs' declarations (tools/lab_table.py).
sync: $(STAMP)
	$(BIN)/python tools/course_setting.py --write
	$(BIN)/jupytext --sync notebooks/*.md notebooks/exercises/*.md
	$(BIN)/python tools/chapter_notebooks.py --write
	$(BIN)/python tools/lab_table.py --write

# The exercises: pair each solution notebook, write nbgrader's cell metadata into its .ipynb
# (from the markers in the .md), generate the student versions, and write the Otter Assign source
# notebooks (notebooks/exercises/otter/) from the same markers (commit the result).
exercises: $(STAMP)
	$(BIN)/jupytext --sync notebooks/exercises/*.md
	$(BIN)/python -m nlcourse.exercises.student notebooks/exercises

# The exercises' slow checks, beyond what `make test` runs: the feed of realistic answers at ten
# seeds of the random sizes (make test: two), and Otter's assign-and-grade round trip on all
# eleven exercises (make test: three).
feed: $(STAMP)
	NLCOURSE_FEED_SEEDS=10 $(BIN)/python -m pytest tests/test_exercise_feed.py -q -s

otter: $(STAMP)
	NLCOURSE_OTTER=all $(BIN)/python -m pytest tests/test_otter.py -q

clean:
	rm -rf _build notebooks/runs results/*/smoke
