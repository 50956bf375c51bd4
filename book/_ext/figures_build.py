"""Sphinx extension: draws the book's figures at the start of every build, and ships the CTC
lattice explorer with the reference numbers it is tested against.

- ``builder-inited``: every figure of ``book/figures`` is drawn into the git-ignored
  ``book/figures/_generated/<name>.svg`` (rewritten only when it changed), before any page is
  read, so the pages' ``{figure}`` blocks find them.
- ``html-page-context``: a page that holds the explorer (``<div class="ctc-explorer">``) gets its
  script and style sheet; no other page loads them.
- ``build-finished``: the explorer's reference cases, computed with ``solutions``, are written
  beside the script as ``_static/ctc-explorer-cases.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sphinx.util import logging

BOOK = Path(__file__).resolve().parents[1]
logger = logging.getLogger(__name__)


def _figures():
    if str(BOOK) not in sys.path:
        sys.path.insert(0, str(BOOK))
    import figures

    return figures


def draw_figures(app) -> None:
    figures = _figures()
    changed = figures.write_all(figures.GENERATED)
    logger.info(f"figures: drew {len(figures.FIGURES)} figures into {figures.GENERATED} "
                f"({len(changed)} changed)")


def add_explorer_assets(app, pagename, templatename, context, doctree) -> None:
    if 'class="ctc-explorer"' in context.get("body", ""):
        app.add_js_file("ctc-explorer.js")
        app.add_css_file("ctc-explorer.css")


def write_explorer_cases(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    from figures.explorer import cases

    static = Path(app.outdir) / "_static"
    static.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"cases": cases()}, indent=1)
    (static / "ctc-explorer-cases.json").write_text(text, encoding="utf-8")


def setup(app):
    app.connect("builder-inited", draw_figures)
    app.connect("html-page-context", add_explorer_assets)
    app.connect("build-finished", write_explorer_cases)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
