"""The grader against broken and hostile submissions of the real ``rnn`` assignment.

Every crafted submission is generated here from the instructor's notebook (the correct answers)
and the student version, put in one export folder, and graded by ONE ``python -m autograder grade``
run (``--jobs 2``). Each test then reads that student's row: a grade and a clear reason, and the
other students unharmed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.sandbox import probe

pytestmark = [pytest.mark.grading, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "autograder" / "source" / "rnn" / "rnn.ipynb"
RELEASE = ROOT / "notebooks" / "rnn" / "rnn.ipynb"
MAX = {"rnn_step_forward": 2, "rnn_step_backward": 3, "rnn_forward": 2, "rnn_backward": 4,
       "clip_grad_norm": 2, "birnn_forward": 2}
TIMEOUT = 8  # seconds per cell / per check: short, so that the infinite loops end quickly
ISOLATION = probe()

def solved_notebook(extra: dict[str, str] | None = None, drop_tests: bool = False):
    """The student version with every solution filled in; ``extra`` appends code to a solution
    cell (by function name), e.g. a redefinition that breaks it."""
    source = nbformat.read(SOURCE, as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    nb = nbformat.read(RELEASE, as_version=4)
    cells = []
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        if grade_id in answers:
            cell.source = answers[grade_id]
            name = grade_id.removeprefix("solution_")
            if extra and name in extra:
                cell.source += "\n\n" + extra[name]
        if drop_tests and grade_id.startswith("test_") and grade_id != "test_rnn_forward":
            continue
        if drop_tests and grade_id == "test_rnn_forward":
            cell.source = "pass  # the student emptied this test cell"
        cells.append(cell)
    nb.cells = cells
    return nb


def with_cell(nb, source: str):
    nb.cells.append(nbformat.v4.new_code_cell(source))
    return nb


def _write(folder: Path, name: str, nb) -> None:
    nbformat.write(nb, folder / name)


def make_submissions(folder: Path, course: Path, sentinel: Path) -> dict[str, str]:
    """Write every crafted submission; returns student -> what it does."""
    folder.mkdir()
    cases = {}

    def add(student: str, nb, what: str) -> None:
        _write(folder, f"{student}.ipynb", nb)
        cases[student] = what

    add("correct", solved_notebook(), "the reference answers")
    add("loop", solved_notebook({"rnn_forward": "def rnn_forward(*args):\n    while True:\n"
                                                "        pass"}), "infinite loop")
    add("exit", solved_notebook({"rnn_backward": "def rnn_backward(*args):\n    import os\n"
                                                 "    os._exit(1)"}), "the process dies (os._exit)")
    add("segfault", solved_notebook({"birnn_forward": "def birnn_forward(*args):\n"
                                                      "    import ctypes\n"
                                                      "    ctypes.string_at(0)"}), "segfault")
    add("memory", solved_notebook({"clip_grad_norm": (
        "def clip_grad_norm(grads, max_norm):\n    hog = []\n    while True:\n"
        "        hog.append(bytearray(50_000_000))")}), "memory exhaustion")
    add("output", with_cell(solved_notebook(), "for _ in range(100_000):\n"
                                               "    print('x' * 100_000)"),
        "gigabytes of output")
    add("warnings", solved_notebook({"rnn_step_forward": (
        "_rnn_step_forward = rnn_step_forward\n"
        "def rnn_step_forward(*args):\n    import sys, warnings\n    import numpy as np\n"
        "    import torch\n    np.log(np.zeros(1))\n"
        "    warnings.warn('deprecated thing', DeprecationWarning)\n"
        "    print('UserWarning: noisy library', file=sys.stderr)\n"
        "    return _rnn_step_forward(*args)")}), "warnings on stderr")
    syntax = solved_notebook()
    for cell in syntax.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "solution_rnn_backward":
            cell.source = cell.source.replace("def rnn_backward(dh, cache):",
                                              "def rnn_backward(dh, cache)")
    add("syntax", syntax, "syntax error in rnn_backward")
    missing = solved_notebook()
    for cell in missing.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "solution_birnn_forward":
            cell.source = "# I did not get to this one"
    add("missing", missing, "birnn_forward missing")
    add("shape", solved_notebook({"rnn_forward": (
        "_rnn_forward = rnn_forward\n"
        "def rnn_forward(*args):\n    h, cache = _rnn_forward(*args)\n"
        "    return h.transpose(1, 0, 2), cache")}), "wrong shape")
    add("nan", solved_notebook({"rnn_step_forward": (
        "_rnn_step_forward = rnn_step_forward\n"
        "def rnn_step_forward(*args):\n    h, cache = _rnn_step_forward(*args)\n"
        "    return h * float('nan'), cache")}), "NaN results")
    add("tests_edited", solved_notebook(drop_tests=True), "test cells deleted or emptied")
    # The patches run in the first solution cell, before any hidden test.
    add("monkeypatch", solved_notebook({
        "rnn_step_forward": (
            # A computed module name: an `import autograder` would be caught by the AST scan.
            "import numpy.testing\n"
            "checks = __import__('auto' + 'grader.checks', fromlist=['run_check'])\n"
            "checks.run_check = lambda *args, **kwargs: None\n"
            "checks.evaluate = lambda *args, **kwargs: None\n"
            "checks.compare = lambda *args, **kwargs: None\n"
            "numpy.testing.assert_allclose = lambda *args, **kwargs: None"),
        "rnn_backward": "def rnn_backward(dh, cache):\n    raise NotImplementedError"}),
        "monkeypatched grader helpers")
    steal = (f"exec(open({str(ROOT / 'solutions' / 'rnn.py')!r}).read()"
             ".replace('from solutions._validate import check_array', "
             "'check_array = lambda *a, **k: None'))")
    copy = solved_notebook()
    for cell in copy.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = "pass"
    add("copier", with_cell(copy, steal), "reads the reference solution's files")
    if ISOLATION.drop_privileges:
        # Only with an unprivileged sandbox: without one this code would really delete files.
        add("vandal", with_cell(solved_notebook(), (
            "import os, shutil\n"
            f"for target in [{str(course)!r}, {str(sentinel)!r}, {str(folder)!r}]:\n"
            "    try:\n        shutil.rmtree(target)\n    except Exception:\n        pass\n"
            "    try:\n        os.remove(target)\n    except Exception:\n        pass\n"
            f"try:\n    open({str(sentinel)!r}, 'w').write('owned')\nexcept Exception:\n"
            "    pass\n")), "deletes the gradebook and other files")
    (folder / "broken.ipynb").write_text('{"cells": [ {"cell_type": "code", "sou')
    cases["broken"] = "not valid JSON"
    (folder / "empty.ipynb").write_bytes(b"")
    cases["empty"] = "empty file"
    (folder / "renamed").mkdir()
    _write(folder / "renamed", "my_homework.ipynb", solved_notebook())
    cases["renamed"] = "folder with a wrongly named notebook"
    with zipfile.ZipFile(folder / "zipped.zip", "w") as zf:
        zf.writestr("rnn/rnn.ipynb", nbformat.writes(solved_notebook()))
    cases["zipped"] = "zip file"
    other = nbformat.v4.new_notebook()
    other.cells = [nbformat.v4.new_code_cell("def ctc_forward(): pass", metadata={
        "nbgrader": {"grade_id": "solution_ctc_forward", "solution": True, "grade": False,
                     "locked": False, "schema_version": 3}})]
    _write(folder, "other.ipynb", other)
    cases["other"] = "another assignment's notebook"
    (folder / "wrongtype.pdf").write_bytes(b"%PDF-1.4")
    cases["wrongtype"] = "not a notebook"
    return cases


@pytest.fixture(scope="session")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("robustness")
    course, sentinel = base / "course", base / "sentinel.txt"
    sentinel.write_text("course file")
    cases = make_submissions(base / "export", course, sentinel)
    command = [sys.executable, "-m", "autograder", "grade", "rnn", str(base / "export"),
               "--course-dir", str(course), "--jobs", "2", "--timeout", str(TIMEOUT),
               "--memory-mb", "1536", "--no-progress"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=1200, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    with open(course / "grades-rnn.csv") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    return {"rows": rows, "cases": cases, "course": course, "sentinel": sentinel,
            "stdout": run.stdout, "base": base}


def row(graded, student):
    return graded["rows"][student]


def points(graded, student) -> dict[str, float]:
    return {name: float(row(graded, student)[name]) for name in MAX}


def feedback(graded, student) -> str:
    return (graded["course"] / "feedback" / student / "rnn" / "rnn.html").read_text()


def test_every_submission_gets_a_row(graded):
    assert set(graded["rows"]) == set(graded["cases"])


def test_correct_submission_gets_full_marks(graded):
    assert points(graded, "correct") == MAX
    assert row(graded, "correct")["status"] == "full marks"


@pytest.mark.parametrize("student, broken, why", [
    ("loop", "rnn_forward", "longer than"),
    ("exit", "rnn_backward", "exited with status 1"),
    ("segfault", "birnn_forward", "SIGSEGV"),
    ("memory", "clip_grad_norm", "MemoryError"),
    ("syntax", "rnn_backward", "not defined"),
    ("missing", "birnn_forward", "birnn_forward not defined"),
    ("shape", "rnn_forward", "shape"),
    ("nan", "rnn_step_forward", "NaN"),
    ("monkeypatch", "rnn_backward", "not implemented"),
])
def test_broken_function_loses_its_points_only(graded, student, broken, why):
    got = points(graded, student)
    # rnn_step_backward and rnn_backward call the forward functions they depend on.
    depends = {"rnn_step_forward": {"rnn_step_backward", "rnn_forward", "rnn_backward",
                                    "birnn_forward"},
               "rnn_forward": {"rnn_backward", "birnn_forward"}}.get(broken, set())
    assert got[broken] == 0
    for name, full in MAX.items():
        if name != broken and name not in depends:
            assert got[name] == full, (name, row(graded, student)["reason"])
    reason = row(graded, student)["reason"]
    assert f"{broken}:" in reason and why in reason
    assert broken in feedback(graded, student) and "FAILED" in feedback(graded, student)


@pytest.mark.parametrize("student", ["output", "warnings", "tests_edited", "renamed", "zipped"])
def test_harmless_oddities_keep_full_marks(graded, student):
    assert points(graded, student) == MAX, row(graded, student)["reason"]


def test_renamed_notebook_is_noted(graded):
    assert "my_homework.ipynb" in row(graded, "renamed")["reason"]


def test_huge_output_is_truncated_in_the_autograded_notebook(graded):
    path = graded["course"] / "autograded" / "output" / "rnn" / "rnn.ipynb"
    assert path.stat().st_size < 5_000_000
    # The cap per cell (1024 kB, the default).
    assert "[output truncated: more than 1024 kB]" in path.read_text()


def test_monkeypatching_is_caught_by_the_trusted_check(graded):
    result = json.loads((graded["course"] / "results" / "rnn" / "monkeypatch.json").read_text())
    backward = next(c for c in result["checks"] if c["name"] == "rnn_backward")
    # The checks are not there while the notebook runs, and the outputs are compared with the
    # reference outside the sandbox: the patches change nothing.
    assert backward["points"] == 0 and "not implemented" in backward["reason"]


def test_copying_the_reference_files_fails(graded):
    if not ISOLATION.hide_files:
        pytest.skip("no mount namespace here: solutions/ is readable by student code")
    assert sum(points(graded, "copier").values()) == 0


def test_vandalism_changes_nothing(graded):
    if not ISOLATION.drop_privileges:
        pytest.skip("the grader is not root: no unprivileged sandbox user")
    assert graded["sentinel"].read_text() == "course file"
    assert (graded["course"] / "gradebook.db").exists()
    assert (graded["base"] / "export" / "correct.ipynb").exists()
    assert points(graded, "vandal") == MAX


@pytest.mark.parametrize("student, reason", [
    ("broken", "broken JSON"),
    ("empty", "empty"),
    ("other", "rnn"),
    ("wrongtype", "not a notebook"),
])
def test_invalid_submissions_get_zero_and_a_reason(graded, student, reason):
    assert row(graded, student)["status"] == "invalid"
    assert float(row(graded, student)["total"]) == 0
    assert reason in row(graded, student)["reason"]
    assert reason.split()[0] in feedback(graded, student)


def test_feedback_hides_the_hidden_tests(graded):
    for student in ("correct", "nan"):
        page = feedback(graded, student)
        assert "run_check" not in page and "BEGIN HIDDEN TESTS" not in page


def test_summary_lists_the_failures(graded):
    assert "points lost:" in graded["stdout"]
    assert "loop:" in graded["stdout"] and "isolation:" in graded["stdout"]


def test_rerun_skips_unchanged_and_keeps_history(graded):
    base, course = graded["base"], graded["course"]
    fixed = base / "rerun"
    fixed.mkdir()
    nbformat.write(solved_notebook(), fixed / "nan.ipynb")
    shutil.copy(base / "export" / "correct.ipynb", fixed / "correct.ipynb")
    digest = hashlib.sha256((course / "grades-rnn.csv").read_bytes()).hexdigest()
    run = subprocess.run([sys.executable, "-m", "autograder", "grade", "rnn", str(fixed),
                          "--course-dir", str(course), "--jobs", "2", "--timeout", str(TIMEOUT),
                          "--no-progress"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "graded 1 submission(s), skipped 1 unchanged" in run.stdout
    with open(course / "grades-rnn.csv") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    assert float(rows["nan"]["total"]) == sum(MAX.values())
    assert hashlib.sha256((course / "grades-rnn.csv").read_bytes()).hexdigest() != digest
    from autograder.gradebook import History

    history = History(f"sqlite:///{course / 'gradebook.db'}", "sequence-models")
    rows = history.all_rows("rnn", "nan")
    history.close()
    assert [r["superseded"] for r in rows] == [True, False]
    assert rows[0]["total"] < rows[1]["total"]
    assert any((course / "history" / "nan" / "rnn").iterdir())
