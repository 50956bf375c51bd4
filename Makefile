# The two commands a newcomer runs (see README.md): `make book` and `make test`.
# Both create .venv and install requirements.txt plus this package (editable) on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: book book-instructor test lint release twins clean

$(BIN)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -e .
	touch $@

book: $(BIN)/.installed
	COURSE_EDITION=public $(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going

# The instructor edition: the public book plus the reference code of the graded functions
# (book/_ext/editions.py), into _build/html-instructor. It shares make book's execution cache
# (the code cells are the same), so after `make book` it executes no notebook.
book-instructor: $(BIN)/.installed
	mkdir -p _build/.jupyter_cache _build/instructor/_build
	ln -sfn ../../.jupyter_cache _build/instructor/_build/.jupyter_cache
	COURSE_EDITION=instructor $(BIN)/jupyter-book build . --path-output _build/instructor \
		--warningiserror --nitpick --keep-going
	ln -sfn instructor/_build/html _build/html-instructor

test: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

release: $(BIN)/.installed
	$(BIN)/python -m autograder release

# the .ipynb twins of the demo pages, for the book's launch buttons (after editing a page)
twins: $(BIN)/.installed
	$(BIN)/python book/notebooks.py

clean:
	rm -rf _build
