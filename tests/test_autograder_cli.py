"""``python -m autograder``: its command line, reading an LMS export, and the separate steps."""

from __future__ import annotations

import csv
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.cli import build_parser
from autograder.feedback import hide_tests
from autograder.submissions import collect, load_one

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "autograder" / "source" / "rnn" / "rnn.ipynb"
SUBCOMMANDS = ["release", "grade", "feedback", "export", "selfcheck"]


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: python -m autograder " + command in capsys.readouterr().out


def test_grade_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["grade", "--help"])
    text = capsys.readouterr().out
    for option in ("--jobs", "--db", "--course-dir", "--timeout", "--memory-mb", "--force"):
        assert option in text


def test_unknown_assignment_is_refused_with_the_choices(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["grade", "rnnn", "folder"])
    assert exit_info.value.code == 2
    assert "rnnn" in capsys.readouterr().err


def test_jobs_must_be_positive(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["grade", "rnn", "folder", "--jobs", "0"])
    assert "positive" in capsys.readouterr().err


def _notebook_bytes(grade_id="solution_rnn_forward") -> bytes:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1", metadata={
        "nbgrader": {"grade_id": grade_id, "solution": True, "grade": False, "locked": False,
                     "schema_version": 3}})]
    return nbformat.writes(nb).encode()


KNOWN = {"rnn": {"solution_rnn_forward", "test_rnn_forward"}, "ctc": {"solution_ctc_forward"}}


@pytest.mark.parametrize("content, reason", [
    (b"", "empty"),
    (b"   \n", "empty"),
    (b'{"cells": [', "broken JSON"),
    (b"\xff\xfe\x00garbage", "not UTF-8"),
    (b'{"cells": 3}', "no list of cells"),
    (b"[1, 2]", "no list of cells"),
])
def test_unreadable_notebooks_get_a_reason(tmp_path, content, reason):
    path = tmp_path / "alice.ipynb"
    path.write_bytes(content)
    submission = load_one(str(path), "rnn", KNOWN)
    assert submission.notebook is None and reason in submission.problem


def test_another_assignments_notebook_is_named(tmp_path):
    (tmp_path / "bob.ipynb").write_bytes(_notebook_bytes("solution_ctc_forward"))
    submission = load_one(str(tmp_path / "bob.ipynb"), "rnn", KNOWN)
    assert submission.problem == "this is the notebook of assignment 'ctc', not 'rnn'"


def test_zip_is_read_in_memory_and_prefers_the_assignment_name(tmp_path):
    with zipfile.ZipFile(tmp_path / "carol.zip", "w") as zf:
        zf.writestr("../../evil.ipynb", _notebook_bytes())
        zf.writestr("__MACOSX/rnn.ipynb", b"junk")
        zf.writestr("work/rnn.ipynb", _notebook_bytes())
    submission = load_one(str(tmp_path / "carol.zip"), "rnn", KNOWN)
    assert submission.student == "carol" and submission.problem is None
    assert not (tmp_path.parent / "evil.ipynb").exists()


def test_folder_with_several_unnamed_notebooks_is_ambiguous(tmp_path):
    folder = tmp_path / "dave"
    folder.mkdir()
    (folder / "a.ipynb").write_bytes(_notebook_bytes())
    (folder / "b.ipynb").write_bytes(_notebook_bytes())
    submission = load_one(str(folder), "rnn", KNOWN)
    assert "2 notebooks" in submission.problem and "none named 'rnn.ipynb'" in submission.problem


def test_collect_keeps_one_submission_per_student_with_safe_ids(tmp_path):
    (tmp_path / "Eve Smith.ipynb").write_bytes(_notebook_bytes())
    (tmp_path / "eve.pdf").write_bytes(b"%PDF")
    (tmp_path / ".DS_Store").write_bytes(b"")
    found = {s.student: s for s in collect(str(tmp_path), "rnn", KNOWN)}
    # The space is not safe in a folder name: the id says so with a hash of the original name.
    assert set(found) == {"Eve_Smith-277ff67a", "eve"}
    assert "not a notebook" in found["eve"].problem


def test_hidden_test_blocks_are_removed_from_feedback_source():
    source = "# visible\n### BEGIN HIDDEN TESTS\nsecret()\n### END HIDDEN TESTS\nafter()"
    assert hide_tests(source) == "# visible\n# (hidden tests: not shown)\nafter()"
    assert "secret" not in hide_tests("x = 1\n### BEGIN HIDDEN TESTS\nsecret()")


def _run(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "autograder", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


@pytest.mark.grading
@pytest.mark.slow
def test_selfcheck_gives_the_solution_full_marks_and_the_stub_zero():
    run = _run("selfcheck", "rnn", "--jobs", "2", "--no-progress")
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert "rnn: solution: 15/15" in run.stdout and "rnn: student-version: 0/15" in run.stdout


@pytest.mark.grading
@pytest.mark.slow
def test_grade_export_and_feedback_with_another_database(tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    (export / "frank.ipynb").write_bytes(SOURCE.read_bytes())
    db = tmp_path / "shared.db"
    common = ["--course-dir", str(tmp_path / "course"), "--db", f"sqlite:///{db}"]
    run = _run("grade", "rnn", str(export), *common, "--no-progress")
    assert run.returncode == 0, run.stderr[-3000:]
    assert not (tmp_path / "course" / "gradebook.db").exists()
    with sqlite3.connect(db) as conn:
        (total,) = conn.execute("select total from autograder_history").fetchone()
        scores = conn.execute("select manual_score from grade").fetchall()
    assert total == 15 and sorted(s for (s,) in scores) == [2, 2, 2, 2, 3, 4]

    csv_path = tmp_path / "grades.csv"
    assert _run("export", "rnn", "-o", str(csv_path), *common).returncode == 0
    with open(csv_path) as f:
        (row,) = list(csv.DictReader(f))
    assert row["student"] == "frank" and row["total"] == "15" and row["rnn_backward"] == "4"

    page = tmp_path / "course" / "feedback" / "frank" / "rnn" / "rnn.html"
    page.unlink()
    run = _run("feedback", "rnn", *common)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "15 / 15 points" in page.read_text() and "run_check" not in page.read_text()
