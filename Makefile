# The two commands a newcomer runs (see README.md): `make book` and `make test`.
# Both create .venv and install requirements.txt plus this package (editable) on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: book test lint release twins clean

$(BIN)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -e .
	touch $@

book: $(BIN)/.installed
	$(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going

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
