"""The book's two editions and its assignment downloads.

The public book (``make book``) must not show the code of any graded function, or a student could
copy the answer; the instructor edition (``make book-instructor``) shows all of it. The graded
functions come from the grader's registry (``autograder.checks``): every name a check needs, plus
the helpers of the same module that it calls (``rnn_step_forward`` is a shape check around
``_rnn_step``, which is the answer), transitively.

A function's code counts as shown when one of its statements appears in the page's text as the
same sequence of tokens: whitespace, line breaks and comments do not matter, so reformatting the
code does not hide it. Docstrings, ``def``/``class`` lines (the assignment gives the signatures),
loop headers and statements too short to be specific (``return h``, ``else:``, ``caches = []``)
are not compared.

Every exercises page offers its assignment as one archive, ``<id>.zip``, built at book-build time
from ``notebooks/<id>/`` (``book/_ext/editions.py``), and lists every graded item with its points.
"""

from __future__ import annotations

import ast
import html
import inspect
import re
import zipfile
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import nbformat
import pytest

from autograder.checks import ASSIGNMENTS, CHECKS, reference_namespace
from autograder.release import extra_files

ROOT = Path(__file__).resolve().parents[1]
# A statement shorter than this many tokens is too generic to identify a function: demos
# write `T, C = log_probs.shape` and `super().__init__()` (7 tokens each) too.
MIN_TOKENS = 8
# Python's multi-character operators first, then words and numbers, then any other character.
TOKEN = re.compile(r"\*\*=?|//=?|->|<<=?|>>=?|[-+*/@%&|^<>!=:]=|\w+|\S")
COMMENT = re.compile(r"#[^\n]*")
TAG = re.compile(r"<[^>]*>")
# Folders of the built HTML that are the theme's and MathJax's, not the book's.
THIRD_PARTY = ("_static",)


# ----------------------------------------------------------------------- the graded code


def tokens(code: str) -> list[str]:
    """``code`` as a list of tokens, comments dropped: the same for any layout of the same code."""
    return TOKEN.findall(COMMENT.sub("", code))


def _statement_texts(node: ast.AST, lines: list[str]) -> Iterable[str]:
    """The source text of every statement inside ``node``: a compound statement contributes its
    header (``if total_norm > max_norm:``), a simple statement its whole text; docstrings, the
    ``def``/``class`` lines and loop headers are left out."""
    for child in ast.walk(node):
        if not isinstance(child, ast.stmt):
            continue
        # Signatures are given to the student; loop headers (`for t in range(T):`) are in every
        # demo.
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.For,
                              ast.While)):
            continue
        if isinstance(child, ast.Expr) and isinstance(child.value, ast.Constant) and isinstance(
                child.value.value, str):
            continue
        body = getattr(child, "body", None)
        if isinstance(body, list) and body:
            end = max(body[0].lineno - 1, child.lineno)
            yield "\n".join(lines[child.lineno - 1:end])
        else:
            yield "\n".join(lines[child.lineno - 1:child.end_lineno])


@cache
def _module_definitions(path: Path) -> tuple[list[str], dict[str, ast.AST]]:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    definitions = {node.name: node for node in tree.body
                   if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    return source.splitlines(), definitions


@cache
def graded_code() -> dict[str, list[tuple[str, ...]]]:
    """``{"solutions/rnn.py:_rnn_step": [statement tokens, ...], ...}``: the specific statements of
    every graded object and of the helpers it calls in its own module."""
    graded: dict[str, list[tuple[str, ...]]] = {}
    for assignment in ASSIGNMENTS:
        namespace = reference_namespace(assignment)
        for check in CHECKS[assignment]:
            for name in check.needs:
                path = Path(inspect.getsourcefile(namespace[name]))
                lines, definitions = _module_definitions(path)
                todo = [namespace[name].__name__]
                while todo:
                    current = todo.pop()
                    key = f"{path.relative_to(ROOT).as_posix()}:{current}"
                    if key in graded:
                        continue
                    node = definitions[current]
                    statements = [tuple(tokens(text)) for text in _statement_texts(node, lines)]
                    graded[key] = [s for s in statements if len(s) >= MIN_TOKENS]
                    used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
                    todo += sorted(used & set(definitions) - {current})
    return graded


def test_graded_code_covers_every_check_of_the_registry():
    graded = graded_code()
    for assignment in ASSIGNMENTS:
        for check in CHECKS[assignment]:
            for name in check.needs:
                keys = [key for key in graded if key.endswith(f":{name}")]
                assert keys, f"{name} of check {check.name} not found in the reference package"
                # An object without a specific statement could be shown without the tests noticing.
                assert all(graded[key] for key in keys), f"{name}: no statement to look for"
    # The helpers that hold the answers are found through the functions that call them.
    assert "solutions/rnn.py:_rnn_step" in graded
    assert "solutions/lstm.py:_lstm_step_backward" in graded


# ----------------------------------------------------------------------- where code is shown


def text_of_html(page: str) -> str:
    """The text of an HTML page without its tags (a highlighted code block becomes its code)."""
    return html.unescape(TAG.sub("", page))


def text_of_notebook(path: Path) -> str:
    """Every cell's source and every text output of a notebook."""
    nb = nbformat.read(path, as_version=4)
    parts = []
    for cell in nb.cells:
        parts.append(cell.source)
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            for value in output.get("data", {}).values():
                parts.append(value if isinstance(value, str) else "")
    return "\n".join(parts)


def shown_statements(texts: dict[str, str]) -> dict[str, list[str]]:
    """For each graded object, the places (``file: statement``) where one of its statements
    appears in ``texts`` (name -> text)."""
    haystacks = {name: "\n" + "\n".join(tokens(text)) + "\n" for name, text in texts.items()}
    found: dict[str, list[str]] = {}
    for key, statements in graded_code().items():
        for statement in statements:
            needle = "\n" + "\n".join(statement) + "\n"
            for name, haystack in haystacks.items():
                if needle in haystack:
                    found.setdefault(key, []).append(f"{name}: {' '.join(statement)}")
    return found


def missing_statements(texts: dict[str, str]) -> dict[str, list[str]]:
    """For each graded object, its statements that appear nowhere in ``texts``."""
    everything = "\n" + "\n".join("\n".join(tokens(text)) for text in texts.values()) + "\n"
    missing: dict[str, list[str]] = {}
    for key, statements in graded_code().items():
        for statement in statements:
            if "\n" + "\n".join(statement) + "\n" not in everything:
                missing.setdefault(key, []).append(" ".join(statement))
    return missing


def html_texts(html_root: Path) -> dict[str, str]:
    """The text of every page and every copied source or notebook of a built book."""
    texts = {}
    for path in sorted(html_root.rglob("*")):
        rel = path.relative_to(html_root)
        if not path.is_file() or rel.parts[0] in THIRD_PARTY:
            continue
        if path.suffix == ".html":
            texts[str(rel)] = text_of_html(path.read_text(encoding="utf-8"))
        elif path.suffix == ".ipynb":
            texts[str(rel)] = text_of_notebook(path)
        elif path.suffix in (".txt", ".md", ".py"):
            texts[str(rel)] = path.read_text(encoding="utf-8", errors="replace")
    return texts


def launch_twins() -> list[Path]:
    """The .ipynb twins of the demo pages (``book/notebooks.py``)."""
    return sorted(p for p in (ROOT / "book").rglob("*.ipynb") if p.with_suffix(".md").exists())


def summary(found: dict[str, list[str]]) -> str:
    return "\n".join(f"{key}: {len(places)} statements, e.g. {places[0]}"
                     for key, places in sorted(found.items()))


def test_the_detector_sees_reformatted_code_and_ignores_prose():
    """The detector itself: the reference code, re-indented and re-wrapped, is found; the names
    of the functions in prose are not code."""
    source = inspect.getsource(reference_namespace("rnn")["rnn_forward"])
    rewrapped = source.replace(", ", ",\n        ").replace("    ", "  ")
    assert "solutions/rnn.py:rnn_forward" in shown_statements({"page": rewrapped})
    prose = "We implement rnn_forward by looping rnn_step_forward over t = 1, ..., T."
    assert not shown_statements({"page": prose})


@pytest.mark.book
@pytest.mark.slow
def test_public_book_shows_no_code_of_a_graded_function(built_book):
    found = shown_statements(html_texts(built_book.html))
    assert not found, "the public book shows graded code:\n" + summary(found)


def test_launch_twins_hold_no_code_of_a_graded_function():
    twins = launch_twins()
    assert twins, "no .ipynb twins found (python book/notebooks.py)"
    found = shown_statements({str(p.relative_to(ROOT)): text_of_notebook(p) for p in twins})
    assert not found, "the .ipynb twins show graded code:\n" + summary(found)


@pytest.mark.book
@pytest.mark.slow
def test_instructor_edition_shows_the_code_of_every_graded_function(built_book_instructor):
    missing = missing_statements(html_texts(built_book_instructor.html))
    assert not missing, "the instructor edition lacks graded code:\n" + "\n".join(
        f"{key}: {statements[:2]}" for key, statements in sorted(missing.items()))


@pytest.mark.book
@pytest.mark.slow
def test_instructor_edition_reused_the_execution_cache(built_book_instructor):
    assert "Executing notebook" not in built_book_instructor.log


# ----------------------------------------------------------------------- assignment downloads


def exercises_page(assignment: str) -> Path:
    pages = sorted((ROOT / "book" / assignment).glob("0?-exercises.md"))
    assert len(pages) == 1, f"expected one exercises page in book/{assignment}, found {pages}"
    return pages[0]


def student_files(assignment: str) -> dict[str, bytes]:
    """What the archive must hold: ``notebooks/<id>/`` as ``<id>/...``."""
    folder = ROOT / "notebooks" / assignment
    return {f"{assignment}/{p.relative_to(folder).as_posix()}": p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()
            and not {"__pycache__", ".ipynb_checkpoints"} & set(p.relative_to(folder).parts)}


@pytest.mark.book
@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_exercises_page_offers_the_assignment_as_one_archive(built_book, assignment):
    page = built_book.html / exercises_page(assignment).relative_to(ROOT).with_suffix(".html")
    links = re.findall(r'href="([^"]*\.zip)"', page.read_text(encoding="utf-8"))
    assert [Path(link).name for link in links] == [f"{assignment}.zip"], links
    archive = (page.parent / html.unescape(links[0])).resolve()
    assert archive.is_file(), f"{links[0]} is not in the built book"
    with zipfile.ZipFile(archive) as z:
        held = {name: z.read(name) for name in z.namelist()}
    expected = student_files(assignment)
    released = [f"{assignment}.ipynb", *extra_files(assignment)]
    assert {f"{assignment}/{name}" for name in released} <= set(expected)
    assert sorted(held) == sorted(expected)
    notebook = f"{assignment}/{assignment}.ipynb"
    assert held[notebook] == (ROOT / "notebooks" / assignment / f"{assignment}.ipynb").read_bytes()
    assert held == expected


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_exercises_page_lists_every_graded_item_with_its_points(assignment):
    """The page's points table (``| `name` | points |``) matches the grader's registry."""
    text = exercises_page(assignment).read_text(encoding="utf-8")
    table = dict(re.findall(r"^\|\s*`(\w+)`\s*\|\s*(\d+)\s*\|", text, flags=re.MULTILINE))
    expected = {check.name: str(check.points) for check in CHECKS[assignment]}
    assert table == expected
    total = sum(check.points for check in CHECKS[assignment])
    assert re.search(rf"^\|\s*\*\*total\*\*\s*\|\s*\*\*{total}\*\*\s*\|", text, flags=re.MULTILINE)
