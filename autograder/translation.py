"""The assignments in Chinese: a twin of each student notebook with its instructions translated.

``notebooks/<id>/<id>.zh_CN.ipynb`` is the released notebook ``notebooks/<id>/<id>.ipynb`` with
every paragraph of its Markdown cells replaced by the translation in
``locales/zh_CN/LC_MESSAGES/assignments/<id>.po``; its code cells (stubs, set-up, visible checks)
and every cell's nbgrader metadata are the English notebook's, so the same checks grade both and the
grader accepts either file name (:mod:`autograder.submissions`).

The catalogues use gettext's format, like the book's (``make po`` updates both): a paragraph is a
block of a Markdown cell between blank lines, a displayed equation (``$$ ... $$``) or a code fence
being one block whatever it holds.

    python -m autograder.translation update  # new paragraphs into the catalogues, changed as fuzzy
    python -m autograder.translation check   # list every paragraph lacking a translation (exit 1)
    python -m autograder.translation twins   # write the translated notebooks
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from collections.abc import Iterable
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
LOCALES = ROOT / "locales"
NOTEBOOKS = ROOT / "notebooks"
TRANSLATED_LANGUAGES = ("zh_CN",)
_FENCE = re.compile(r"^\s*(```|~~~)")


def twin_name(assignment: str, lang: str) -> str:
    """The file name of the ``lang`` twin of an assignment's notebook."""
    return f"{assignment}.{lang}.ipynb"


def catalogue_path(assignment: str, lang: str) -> Path:
    return LOCALES / lang / "LC_MESSAGES" / "assignments" / f"{assignment}.po"


def paragraphs(markdown: str) -> list[str]:
    """The blocks of a Markdown text between blank lines, keeping fences and ``$$`` blocks whole."""
    blocks, current, in_fence, in_math = [], [], False, False
    for line in markdown.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and line.count("$$") % 2 == 1:
            in_math = not in_math
        if not line.strip() and not in_fence and not in_math:
            if current:
                blocks.append("\n".join(current))
                current = []
        else:
            current.append(line)
    if current:
        blocks.append("\n".join(current))
    return blocks


def needs_translation(block: str) -> bool:
    """A block of only a formula or code reads the same in every language."""
    stripped = block.strip()
    return not (stripped.startswith("$$") or _FENCE.match(stripped))


def notebook_messages(nb) -> list[str]:
    """The paragraphs of ``nb``'s Markdown cells that need a translation, in order, once each."""
    seen: dict[str, None] = {}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for block in paragraphs(cell.source):
                if needs_translation(block):
                    seen.setdefault(block, None)
    return list(seen)


def read_catalogue(path: Path):
    from babel.messages.pofile import read_po

    with open(path, "rb") as f:
        return read_po(f)


def translations(path: Path) -> dict[str, str]:
    """msgid -> msgstr of the finished entries (translated, not fuzzy) of a catalogue."""
    return {m.id: m.string for m in read_catalogue(path)
            if m.id and isinstance(m.id, str) and m.string and not m.fuzzy}


class MissingTranslation(KeyError):
    """Paragraphs of a notebook that its catalogue does not translate."""


def translate_notebook(nb, table: dict[str, str], where: str = "the catalogue"):
    """A copy of ``nb`` with every Markdown paragraph replaced by its translation in ``table``;
    ``MissingTranslation`` listing the untranslated paragraphs if any."""
    from nbgrader.utils import compute_checksum

    missing = [m for m in notebook_messages(nb) if m not in table]
    if missing:
        raise MissingTranslation(f"{len(missing)} paragraph(s) have no translation in {where}: "
                                 + "; ".join(repr(m[:70]) for m in missing[:5]))
    twin = copy.deepcopy(nb)
    for cell in twin.cells:
        if cell.cell_type != "markdown":
            continue
        cell.source = "\n\n".join(table[b] if needs_translation(b) else b
                                  for b in paragraphs(cell.source))
        grading = cell.metadata.get("nbgrader", {})
        if "checksum" in grading:
            # nbgrader validate compares a read-only cell with its checksum: the twin's own text.
            grading["checksum"] = compute_checksum(cell)
    return twin


def write_twins(assignments: Iterable[str], folder: Path = NOTEBOOKS) -> list[Path]:
    """Write ``<folder>/<id>/<id>.<lang>.ipynb`` for every assignment and translated language."""
    written = []
    for assignment in assignments:
        nb = nbformat.read(folder / assignment / f"{assignment}.ipynb", as_version=4)
        for lang in TRANSLATED_LANGUAGES:
            path = catalogue_path(assignment, lang)
            twin = translate_notebook(nb, translations(path), str(path.relative_to(ROOT)))
            twin.metadata["language"] = lang
            target = folder / assignment / twin_name(assignment, lang)
            nbformat.write(twin, target)
            written.append(target)
    return written


def update_catalogue(assignment: str, lang: str, folder: Path = NOTEBOOKS) -> tuple[int, int]:
    """Bring the catalogue in step with the English notebook: new paragraphs come in empty, a
    paragraph whose English changed keeps its old translation marked fuzzy, removed ones go.
    Returns (new, fuzzy) counts."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import write_po

    nb = nbformat.read(folder / assignment / f"{assignment}.ipynb", as_version=4)
    path = catalogue_path(assignment, lang)
    template = Catalog(locale=lang, project=f"Sequence Models: assignment {assignment}")
    for message in notebook_messages(nb):
        template.add(message)
    catalogue = read_catalogue(path) if path.is_file() else Catalog(
        locale=lang, project=template.project)
    before = {m.id for m in catalogue if m.id}
    catalogue.update(template, no_fuzzy_matching=False)
    catalogue.obsolete.clear()
    new = sum(1 for m in catalogue if m.id and m.id not in before and not m.fuzzy)
    fuzzy = sum(1 for m in catalogue if m.id and m.fuzzy)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        write_po(f, catalogue, width=0, omit_header=False, sort_output=False)
    return new, fuzzy


def untranslated(assignment: str, lang: str, folder: Path = NOTEBOOKS) -> list[str]:
    """The paragraphs of the English notebook that the catalogue lacks or marks fuzzy."""
    nb = nbformat.read(folder / assignment / f"{assignment}.ipynb", as_version=4)
    path = catalogue_path(assignment, lang)
    table = translations(path) if path.is_file() else {}
    return [m for m in notebook_messages(nb) if m not in table]


def main(argv: list[str] | None = None) -> int:
    from autograder.checks import ASSIGNMENTS

    parser = argparse.ArgumentParser(prog="python -m autograder.translation",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("update", "check", "twins"))
    args = parser.parse_args(argv)
    problems = 0
    for assignment in ASSIGNMENTS:
        for lang in TRANSLATED_LANGUAGES:
            if args.action == "update":
                new, fuzzy = update_catalogue(assignment, lang)
                print(f"{catalogue_path(assignment, lang).relative_to(ROOT)}: {new} new, "
                      f"{fuzzy} fuzzy")
            elif args.action == "check":
                for message in untranslated(assignment, lang):
                    problems += 1
                    print(f"{assignment} ({lang}): untranslated: {message[:100]!r}")
    if args.action == "twins":
        for path in write_twins(ASSIGNMENTS):
            print(f"wrote {path.relative_to(ROOT)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
