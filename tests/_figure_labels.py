"""The figure labels of the code: every string literal passed to ``tr(...)``.

``solutions.language.tr`` translates a figure's words from the catalogue
``locales/zh_CN/LC_MESSAGES/figures.po``. This module finds the labels that catalogue must hold by
reading the code, not by running it: the Python files of ``solutions/`` and ``book/figures/`` and
the code cells of the pages ``book/*/*.md``, each parsed with :mod:`ast`.

    python tests/_figure_labels.py    # the labels that the zh_CN catalogue lacks, one a line
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("solutions/**/*.py", "book/figures/*.py")
PAGES = "book/*/*.md"


@dataclass(frozen=True)
class Call:
    """One ``tr(...)`` call: where it is, and its label (None if not a string literal)."""

    where: str  # "path:line"
    label: str | None


def python_sources() -> dict[str, str]:
    """Path (relative to the repository) -> code, of every Python file and page code cell."""
    sources = {}
    for pattern in SOURCES:
        for path in sorted(ROOT.glob(pattern)):
            sources[str(path.relative_to(ROOT))] = path.read_text(encoding="utf-8")
    for path in sorted(ROOT.glob(PAGES)):
        notebook = jupytext.read(path)
        if notebook.metadata.get("kernelspec") is None:
            continue  # a page without code
        for k, cell in enumerate(notebook.cells):
            if cell.cell_type == "code":
                # IPython magics and shell escapes are not Python: blank them out
                code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                                 for line in cell.source.splitlines())
                sources[f"{path.relative_to(ROOT)}[cell {k}]"] = code
    return sources


def tr_calls(code: str, name: str) -> list[Call]:
    """The ``tr(...)`` calls in ``code`` (``name`` locates them in messages)."""
    calls = []
    for node in ast.walk(ast.parse(code, filename=name)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "tr"):
            continue
        arg = node.args[0] if len(node.args) == 1 and not node.keywords else None
        literal = isinstance(arg, ast.Constant) and isinstance(arg.value, str)
        calls.append(Call(f"{name}:{node.lineno}", arg.value if literal else None))
    return calls


def all_tr_calls() -> list[Call]:
    return [call for name, code in python_sources().items() for call in tr_calls(code, name)]


def msgids() -> set[str]:
    """Every label that the code passes to ``tr`` as a literal."""
    return {call.label for call in all_tr_calls() if call.label is not None}


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    from solutions.language import catalogue

    missing = sorted(msgids() - set(catalogue("zh_CN")))
    for label in missing:
        print(repr(label))
    sys.exit(1 if missing else 0)
