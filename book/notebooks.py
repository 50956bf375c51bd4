"""The .ipynb twin of every demo page, for the book's Colab, Binder and JupyterHub buttons.

The demo pages are MyST Markdown notebooks (``book/<chapter>/<page>.md``). Binder and JupyterHub
could open those through jupytext, but Colab opens only ``.ipynb`` files, so each page has a
generated twin beside it, ``<page>.ipynb``, without outputs. The launch buttons use the twin when
it exists; the book itself is built from the ``.md`` files (``_config.yml`` excludes the twins).

Each twin starts with one extra cell that makes it run where it is opened: on Colab, which opens
the file alone, it clones the course repository and moves into the page's folder; on Binder it
puts the repository on ``sys.path``; in the course's own environment it does nothing.

    python book/notebooks.py           # write the twins
    python book/notebooks.py --check   # exit 1 if a twin is missing or out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jupytext
import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"

SETUP = '''\
# Set-up for running this page outside the course's environment (Colab, Binder). Where the
# course's package is installed (a clone with `pip install -e .`, the book's build) it does nothing.
import importlib.util
import os
import subprocess
import sys

REPOSITORY, BRANCH, PAGE_FOLDER = "{url}", "{branch}", "{page_dir}"
if importlib.util.find_spec("solutions") is None:
    root = os.path.abspath(os.path.join("..", ".."))
    if not os.path.isdir(os.path.join(root, "solutions")):  # Colab opened this file alone
        root = os.path.abspath(REPOSITORY.rstrip("/").rsplit("/", 1)[-1])
        if not os.path.isdir(root):
            subprocess.run(["git", "clone", "--quiet", "--depth", "1", "--branch", BRANCH,
                            REPOSITORY, root], check=True)
        os.chdir(os.path.join(root, PAGE_FOLDER))
    sys.path.insert(0, root)
if importlib.util.find_spec("myst_nb") is None:
    # The book records numbers for its text with myst_nb.glue; here they are simply shown.
    import types

    from IPython.display import display as _display

    sys.modules["myst_nb"] = types.SimpleNamespace(
        glue=lambda name, value, display=True: _display(value) if display else None)
'''


def repository() -> tuple[str, str]:
    """The repository URL and branch of ``_config.yml`` (the launch buttons use the same)."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    return config["repository"]["url"], config["repository"].get("branch", "main")


def demo_pages() -> list[Path]:
    """The MyST Markdown notebooks of the book: pages whose front matter has a kernelspec."""
    pages = []
    for page in sorted(BOOK.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        front_matter = text.split("\n---", 1)[0] if text.startswith("---") else ""
        if "kernelspec" in front_matter:
            pages.append(page)
    return pages


def twin(page: Path) -> str:
    """The text of ``page``'s .ipynb twin."""
    url, branch = repository()
    nb = jupytext.read(page)
    setup = SETUP.format(url=url, branch=branch, page_dir=page.parent.relative_to(ROOT).as_posix())
    nb.cells.insert(0, nbformat.v4.new_code_cell(setup))
    nb.metadata.pop("jupytext", None)
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i}"  # stable ids: regenerating gives the same file
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nbformat.writes(nb) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="only report missing or out-of-date twins; exit 1 if there are any")
    args = parser.parse_args(argv)
    stale = []
    for page in demo_pages():
        path, text = page.with_suffix(".ipynb"), twin(page)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path.relative_to(ROOT).as_posix())
        if not args.check:
            path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print("out of date (run `python book/notebooks.py`):\n  " + "\n  ".join(stale))
        return 1
    if not args.check:
        print(f"wrote {len(stale)} twin(s)" if stale else "every twin is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
