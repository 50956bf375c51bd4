"""The assignment registry (``autograder/assignments.py``): one declaration per assignment.

Specification in short: every part of the grader (release, grading, the command line, these tests)
reads the ids, checks and points from the registry and from nowhere else; the checks package has
no import cycle (the shared machinery imports no assignment, an assignment's module imports only
the shared machinery); the files the release generates are marked as generated; and a new
assignment, declared once in a module of its own, is released and graded end to end without a
change anywhere else.
"""

from __future__ import annotations

import ast
import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder import assignments as registry
from autograder.assignments import ASSIGNMENTS, CHECKS, REGISTRY, Assignment, register
from autograder.checks.core import Check
from autograder.cli import build_parser
from autograder.feedback import mathjax_scripts
from autograder.release import NOTEBOOKS, SOURCE, extra_files, generated_header

ROOT = Path(__file__).resolve().parents[1]
CHECKS_DIR = ROOT / "autograder" / "checks"
# The modules every assignment shares; the others of autograder/checks/ are one per assignment.
SHARED = {"__init__", "core", "fixtures"}
ASSIGNMENT_MODULES = sorted(p.stem for p in CHECKS_DIR.glob("*.py") if p.stem not in SHARED)


def _imported_modules(path: Path) -> set[str]:
    """The absolute module names ``path`` imports (``from a import b`` counts ``a`` and ``a.b``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


# ------------------------------------------------------------------------------------------------
# The registry and its views


def test_every_assignment_module_is_registered_once_in_the_books_order():
    assert ASSIGNMENT_MODULES and sorted(ASSIGNMENTS) == ASSIGNMENT_MODULES
    assert list(ASSIGNMENTS) == list(REGISTRY)
    for assignment_id, assignment in REGISTRY.items():
        assert assignment.id == assignment_id and assignment.title
        assert CHECKS[assignment_id] == list(assignment.checks)
        assert assignment.points == sum(check.points for check in CHECKS[assignment_id])


def test_checks_package_exports_the_registrys_views():
    from autograder import checks

    assert checks.ASSIGNMENTS is ASSIGNMENTS and checks.CHECKS is CHECKS
    assert checks.get_check is registry.get_check
    assert checks.reference_namespace is registry.reference_namespace


def test_command_line_offers_exactly_the_registered_ids():
    for command in ("grade", "feedback", "export"):
        for assignment_id in ASSIGNMENTS:
            args = ["grade", assignment_id, "folder"] if command == "grade" else [command,
                                                                                  assignment_id]
            assert build_parser().parse_args(args).id == assignment_id


def test_no_other_list_of_assignment_ids_in_the_grader():
    """A literal tuple, list or set naming two or more assignments would be a second registry."""
    ids = set(ASSIGNMENTS)
    sources = [*(ROOT / "autograder").rglob("*.py"), *(ROOT / "book" / "_ext").glob("*.py")]
    found = []
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                named = {e.value for e in node.elts if isinstance(e, ast.Constant)} & ids
                if len(named) >= 2:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


def test_a_declaration_is_checked_when_it_is_made():
    check = Check("f", 1, ("f",), lambda rng: [], lambda ns, case: {}, 0.0, 0.0)
    with pytest.raises(ValueError, match="Assignment id: expected a Python identifier"):
        Assignment("not an id", "t", (), (check,))
    with pytest.raises(ValueError, match="at least one check"):
        Assignment("empty", "t", (), ())
    with pytest.raises(ValueError, match="check names must be unique"):
        Assignment("twice", "t", (), (check, check))
    with pytest.raises(ValueError, match="already registered"):
        register(Assignment("rnn", "another rnn", (), (check,)))
    with pytest.raises(TypeError, match="expected an Assignment"):
        register("rnn")
    with pytest.raises(KeyError, match="expected one of"):
        registry.get("rnnn")


# ------------------------------------------------------------------------------------------------
# No import cycle in autograder/checks


@pytest.mark.parametrize("module", sorted(SHARED - {"__init__"}))
def test_shared_checks_modules_import_no_assignment_and_not_the_registry(module):
    imported = _imported_modules(CHECKS_DIR / f"{module}.py")
    forbidden = {"autograder.assignments", "autograder.checks",
                 *(f"autograder.checks.{m}" for m in ASSIGNMENT_MODULES)}
    assert imported & forbidden == set()


@pytest.mark.parametrize("module", ASSIGNMENT_MODULES)
def test_an_assignments_checks_import_only_the_shared_machinery(module):
    shared = ("autograder.checks.core", "autograder.checks.fixtures")
    ours = {m for m in _imported_modules(CHECKS_DIR / f"{module}.py") if m.startswith("autograder")}
    assert {m for m in ours if not m.startswith(shared)} == set()


FRESH_IMPORTS = ["autograder.assignments", "autograder.checks",
                 *(f"autograder.checks.{m}" for m in sorted(SHARED - {"__init__"})),
                 *(f"autograder.checks.{m}" for m in ASSIGNMENT_MODULES)]


@pytest.mark.parametrize("module", FRESH_IMPORTS)
def test_each_module_imports_first_in_a_fresh_interpreter(module):
    code = f"import {module}, autograder.checks as c; print(len(c.CHECKS))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         timeout=120, env={**os.environ, registry.EXTRA_ASSIGNMENTS_ENV: ""})
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == str(len(ASSIGNMENTS))


# ------------------------------------------------------------------------------------------------
# Generated files are marked


def _generated_paths() -> list[str]:
    paths = []
    for assignment_id in ASSIGNMENTS:
        paths.append(f"notebooks/{assignment_id}/{assignment_id}.ipynb")
        for name in extra_files(assignment_id):
            paths += [f"notebooks/{assignment_id}/{name}",
                      f"autograder/source/{assignment_id}/{name}"]
    return paths


def test_every_generated_file_is_marked_as_generated_for_git():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and the repository's .git")
    run = subprocess.run(["git", "check-attr", "linguist-generated", "--", *_generated_paths()],
                         capture_output=True, text=True, cwd=ROOT, check=True)
    unmarked = [line for line in run.stdout.splitlines() if not line.endswith(": true")]
    assert unmarked == []


def test_released_python_files_say_they_are_generated_and_from_what():
    for assignment_id in ASSIGNMENTS:
        for source in REGISTRY[assignment_id].released_files:
            if source.endswith(".py"):
                for folder in (NOTEBOOKS, SOURCE):
                    text = (folder / assignment_id / Path(source).name).read_text()
                    assert text.startswith(generated_header(source))
                    assert "do not edit" in text.splitlines()[0] and source in text.splitlines()[0]


# ------------------------------------------------------------------------------------------------
# A fifth assignment, declared once, graded end to end through the command line

# The grader imports the reference module (by name, from PYTHONPATH); the declaration module is
# named in AUTOGRADER_EXTRA_ASSIGNMENTS, so every grader process (and the sandbox) registers it.
SCALE_REFERENCE = '''
def scale(x, a):
    return a * x


def shift(x, b):
    return x + b
'''

SCALE_DECLARATION = '''
import numpy as np

from autograder.assignments import Assignment
from autograder.checks.core import Check


def _cases(rng):
    return [{"x": rng.normal(size=(int(rng.integers(1, 4)), 3)), "a": float(rng.normal())}
            for _ in range(20)]


def _run_scale(ns, case):
    return {"y": np.asarray(ns["scale"](case["x"], case["a"]), dtype=np.float64)}


def _run_shift(ns, case):
    return {"y": np.asarray(ns["shift"](case["x"], case["a"]), dtype=np.float64)}


ASSIGNMENT = Assignment(
    "scale", "Scaling and shifting", ("scale_reference",),
    (Check("scale", 2, ("scale",), _cases, _run_scale, 1e-12, 1e-12, ("torch",)),
     Check("shift", 3, ("shift",), _cases, _run_shift, 1e-12, 1e-12, ("torch",))))
'''

SOLUTIONS = {
    "scale": "def scale(x, a):\n    ### BEGIN SOLUTION\n    return a * x\n    ### END SOLUTION",
    "shift": "def shift(x, b):\n    ### BEGIN SOLUTION\n    return x + b\n    ### END SOLUTION",
}
# (function, points) of the fifth assignment's checks, as its declaration gives them.
SCALE_POINTS = [("scale", 2), ("shift", 3)]
# The visible checks of the notebook: known values, no fixtures needed.
VISIBLE = {
    "scale": "y = scale(np.array([1.0, -2.0]), 3.0)\nassert np.allclose(y, [3.0, -6.0]), y",
    "shift": "y = shift(np.array([1.0, -2.0]), 3.0)\nassert np.allclose(y, [4.0, 1.0]), y",
}


def _nbgrader(grade_id: str, *, solution=False, points=None) -> dict:
    meta = {"grade": points is not None, "grade_id": grade_id, "locked": not solution,
            "schema_version": 3, "solution": solution}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def scale_source_notebook() -> nbformat.NotebookNode:
    """The instructor's notebook of the fifth assignment: per function a solution cell, a visible
    check and a hidden test cell."""
    new_code, new_markdown = nbformat.v4.new_code_cell, nbformat.v4.new_markdown_cell
    nb = nbformat.v4.new_notebook()
    nb.cells = [new_markdown("# Scaling\n\nWrite $y = a x$ and $y = x + b$.",
                            metadata=_nbgrader("intro")),
                new_code("import numpy as np", metadata=_nbgrader("setup"))]
    for name, points in SCALE_POINTS:
        nb.cells += [
            new_code(SOLUTIONS[name], metadata=_nbgrader(f"solution_{name}", solution=True)),
            new_code(VISIBLE[name], metadata=_nbgrader(f"visible_{name}")),
            new_code(f'### BEGIN HIDDEN TESTS\nfrom autograder.checks import run_check\n'
                     f'run_check("scale", "{name}", globals())\n### END HIDDEN TESTS',
                     metadata=_nbgrader(f"test_{name}", points=points)),
        ]
    return nb


@pytest.mark.grading
@pytest.mark.slow
def test_a_fifth_assignment_declared_once_is_graded_end_to_end(tmp_path):
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "scale_reference.py").write_text(SCALE_REFERENCE)
    (modules / "scale_assignment.py").write_text(SCALE_DECLARATION)
    source = tmp_path / "source" / "scale"
    source.mkdir(parents=True)
    nb = scale_source_notebook()
    nbformat.write(nb, source / "scale.ipynb")

    submissions = tmp_path / "submissions"
    submissions.mkdir()
    nbformat.write(nb, submissions / "alice.ipynb")
    wrong = nbformat.from_dict(nb)
    for cell in wrong.cells:
        if cell.metadata["nbgrader"]["grade_id"] == "solution_shift":
            cell.source = "def shift(x, b):\n    return x - b"
    nbformat.write(wrong, submissions / "bob.ipynb")

    env = {**os.environ, registry.EXTRA_ASSIGNMENTS_ENV: "scale_assignment",
           "PYTHONPATH": os.pathsep.join([str(modules), str(ROOT)])}
    grades = tmp_path / "grades.csv"
    run = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", "scale", str(submissions),
         "--course-dir", str(tmp_path / "course"), "--source-dir", str(tmp_path / "source"),
         "--output", str(grades), "--jobs", "2", "--no-progress"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    with open(grades) as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    assert float(rows["alice"]["total"]) == 5, rows["alice"]
    assert float(rows["bob"]["total"]) == 2, rows["bob"]
    assert float(rows["bob"]["scale"]) == 2 and float(rows["bob"]["shift"]) == 0, rows["bob"]
    # Nothing of the course's own assignments was touched to add this one.
    assert "scale" not in ASSIGNMENTS
    # Its feedback, like every assignment's, typesets the notebook's math offline.
    page = (tmp_path / "course" / "feedback" / "alice" / "scale" / "scale.html").read_text()
    assert mathjax_scripts() in page and "Content-Security-Policy" in page
