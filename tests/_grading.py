"""Helpers of tests/test_assignments.py: real nbgrader autograding in a temporary course, and
in-process grading of a namespace with the Check machinery."""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from autograder.checks import (
    CHECKS,
    compare,
    evaluate,
    get_check,
    reference_namespace,
    run_case,
)
from autograder.release import HERE as AUTOGRADER
from autograder.release import nbgrader_env


@dataclass
class Graded:
    """The scores of one autograded submission: grade_id -> (score, max_score)."""

    scores: dict[str, tuple[float, float]]
    seconds: float  # wall time of the autograde run divided by the submissions it graded

    @property
    def total(self) -> float:
        return sum(score for score, _ in self.scores.values())

    @property
    def max_total(self) -> float:
        return sum(maximum for _, maximum in self.scores.values())


def autograde(assignment: str, submissions: Mapping[str, Path], course: Path) -> dict[str, Graded]:
    """Autograde notebooks with nbgrader, as the course would, in the empty folder ``course``.

    ``submissions`` maps a student id to the notebook that student submits; the submission folder
    also gets the files released with the assignment (fixtures, gradcheck.py). One
    ``generate_assignment`` (to fill the gradebook) and one ``autograde`` run for all students.
    """
    shutil.copyfile(AUTOGRADER / "nbgrader_config.py", course / "nbgrader_config.py")
    source = AUTOGRADER / "source" / assignment
    shutil.copytree(source, course / "source" / assignment)
    run = [sys.executable, "-m", "nbgrader"]
    env = nbgrader_env()
    subprocess.run([*run, "generate_assignment", assignment, "--force"], cwd=course, env=env,
                   check=True, capture_output=True)
    for student, notebook in submissions.items():
        folder = course / "submitted" / student / assignment
        shutil.copytree(course / "release" / assignment, folder)
        shutil.copyfile(notebook, folder / f"{assignment}.ipynb")
    start = time.perf_counter()
    result = subprocess.run([*run, "autograde", assignment, "--force"], cwd=course, env=env,
                            capture_output=True, text=True, check=False)
    seconds = (time.perf_counter() - start) / len(submissions)
    if result.returncode != 0:
        raise RuntimeError(f"nbgrader autograde failed:\n{result.stdout}\n{result.stderr}")

    from nbgrader.api import Gradebook

    graded = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "sequence-models") as gradebook:
        for student in submissions:
            notebook = gradebook.find_submission_notebook(assignment, assignment, student)
            scores = {g.name: (float(g.score), float(g.max_score)) for g in notebook.grades
                      if g.max_score}
            graded[student] = Graded(scores, seconds)
    return graded


def solution_source(notebook: Path) -> str:
    """The source of the solution cells of a notebook, as the grading pipeline extracts it."""
    nb = nbformat.read(notebook, as_version=4)
    return "\n\n".join(c.source for c in nb.cells
                       if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution"))


def grade_namespace(assignment: str, namespace: Mapping[str, Any],
                    source: str | None = None) -> dict[str, str | None]:
    """In-process grading: check name -> None (full points) or the reason it fails."""
    reference = reference_namespace(assignment)
    return {check.name: evaluate(assignment, check.name, namespace, reference, source)
            for check in CHECKS[assignment]}


@functools.cache
def reference_outputs(assignment: str, name: str) -> tuple[list[dict], list[dict]]:
    """The cases of one check and the reference's outputs on them (computed once per session)."""
    check = get_check(assignment, name)
    reference = reference_namespace(assignment)
    cases = check.make_cases()
    outputs = []
    for case in cases:
        out, error = run_case(check, reference, case)
        assert error is None, f"the reference fails on {name}: {error}"
        outputs.append(out)
    return cases, outputs


def grade_checks(assignment: str, namespace: Mapping[str, Any], names) -> dict[str, str | None]:
    """Grade ``namespace`` on the checks ``names`` against cached reference outputs."""
    results = {}
    for name in names:
        check = get_check(assignment, name)
        cases, expected = reference_outputs(assignment, name)
        reason = None
        for case, ref in zip(cases, expected, strict=True):
            got, reason = run_case(check, namespace, case)
            if reason is None:
                reason = compare(name, got, ref, check, case)
            if reason is not None:
                break
        results[name] = reason
    return results
