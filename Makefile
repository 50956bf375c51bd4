# The two commands a newcomer runs (see README.md): `make book` and `make test`.
# Both create .venv and install requirements.txt plus this package (editable) on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

# Where the books go: $(OUT)/_build/html (English), $(OUT)/_build/html-zh (Chinese),
# $(OUT)/_build/site (both, as published). The tests build into temporary folders with OUT=...
OUT ?= .
JB_FLAGS := --warningiserror --nitpick --keep-going

.PHONY: book book-instructor book-zh site pot po system-setup test lint release twins clean

# Debian/Ubuntu packages the tests and the Chinese edition need (CI and the publish workflow run
# this): Chromium and its driver (browser tests), bubblewrap (the grader's sandbox), a CJK font.
# A package the distribution lacks is named and skipped. Ubuntu 24.04 keeps unprivileged user
# namespaces from programs without an AppArmor profile; the sandbox needs them.
SYSTEM_PACKAGES := chromium chromium-driver bubblewrap fonts-noto-cjk
system-setup:
	@if ! command -v apt-get >/dev/null; then \
		echo "install with your system's package manager: $(SYSTEM_PACKAGES)"; exit 0; fi; \
	SUDO=$$([ "$$(id -u)" -ne 0 ] && echo sudo); \
	$$SUDO apt-get update -qq; \
	available=$$(for p in $(SYSTEM_PACKAGES); do apt-cache show $$p >/dev/null 2>&1 && echo $$p; done); \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$available >/dev/null; \
	for p in $(SYSTEM_PACKAGES); do echo "$$available" | grep -qx $$p || echo "not available: $$p"; done; \
	if [ "$$(sysctl -n kernel.apparmor_restrict_unprivileged_userns 2>/dev/null)" = 1 ]; then \
		$$SUDO sysctl -qw kernel.apparmor_restrict_unprivileged_userns=0; fi

$(BIN)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -e .
	touch $@

book: $(BIN)/.installed
	COURSE_EDITION=public COURSE_LANGUAGE=en $(BIN)/jupyter-book build . --path-output $(OUT) \
		$(JB_FLAGS)

# The instructor edition: the public book plus the reference code of the graded functions
# (book/_ext/editions.py), into _build/html-instructor. It shares make book's execution cache
# (the code cells are the same), so after `make book` it executes no notebook.
book-instructor: $(BIN)/.installed
	mkdir -p $(OUT)/_build/.jupyter_cache $(OUT)/_build/instructor/_build
	ln -sfn ../../.jupyter_cache $(OUT)/_build/instructor/_build/.jupyter_cache
	COURSE_EDITION=instructor COURSE_LANGUAGE=en $(BIN)/jupyter-book build . \
		--path-output $(OUT)/_build/instructor $(JB_FLAGS)
	ln -sfn instructor/_build/html $(OUT)/_build/html-instructor

# The Chinese edition (中文版): the same pages, each paragraph replaced by its translation from
# locales/zh_CN/LC_MESSAGES/<page>.po (book/_ext/editions.py), into $(OUT)/_build/html-zh. Its
# notebooks run with COURSE_LANGUAGE=zh_CN and draw Chinese labels, so it has an execution cache of
# its own. Needs a CJK font (fonts-noto-cjk; see README.md).
book-zh: $(BIN)/.installed
	COURSE_EDITION=public COURSE_LANGUAGE=zh_CN $(BIN)/jupyter-book build . \
		--path-output $(OUT)/_build/zh $(JB_FLAGS)
	ln -sfn zh/_build/html $(OUT)/_build/html-zh

# The site as published (GitHub Pages): English at the root, Chinese under zh/. Run after
# `make book` and `make book-zh`.
site:
	test -f $(OUT)/_build/html/index.html -a -f $(OUT)/_build/html-zh/index.html
	rm -rf $(OUT)/_build/site
	mkdir -p $(OUT)/_build/site
	cp -R $(OUT)/_build/html/. $(OUT)/_build/site/
	cp -R $(OUT)/_build/html-zh/. $(OUT)/_build/site/zh/
	touch $(OUT)/_build/site/.nojekyll

# The English messages of every page (gettext templates, $(OUT)/_build/gettext/_build/gettext),
# from make book's execution cache.
pot: $(BIN)/.installed
	mkdir -p $(OUT)/_build/.jupyter_cache $(OUT)/_build/gettext/_build
	ln -sfn ../../.jupyter_cache $(OUT)/_build/gettext/_build/.jupyter_cache
	COURSE_EDITION=public COURSE_LANGUAGE=en $(BIN)/jupyter-book build . \
		--path-output $(OUT)/_build/gettext --builder custom --custom-builder gettext

# After changing English text: update the Chinese catalogues of the pages and of the assignments
# (new messages come in empty, changed ones marked fuzzy; tests/test_translation.py lists both).
po: pot
	$(BIN)/sphinx-intl update --pot-dir $(OUT)/_build/gettext/_build/gettext \
		--locale-dir locales --language zh_CN --line-width -1
	$(BIN)/python -m autograder.translation update

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
