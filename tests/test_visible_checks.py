"""The visible self-checks of the four assignments, run as a student would run them.

Specification: with the reference implementation filled in (the solution cells of the instructor's
notebook), every visible check cell passes, whatever the global random state (200 seeds of numpy,
torch and ``random``): each cell draws from its own seeded generator and its thresholds sit far
above the float64 error of a correct implementation. A correct implementation written differently
(``tests/_alternatives.py``) passes them too. Each plausible bug of ``tests/_alternatives.py`` fails
a visible check whose message names the buggy function. The two experiments show what their text
says: the CTC decoders read the word exactly at noise 0, and the ConvLSTM's kernel is large enough
for the speeds of its squares (k >= 2v + 1).

The notebook's code runs in-process: the cells are executed once into a namespace (no kernel), then
only the check cells run again per seed or per bug.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from _alternatives import BUGS, namespace
from _grading import grade_checks

from autograder.checks import ASSIGNMENTS, CHECKS
from autograder.release import SOURCE
from autograder.verify import CheckResult, note_wrong_dependencies

SEEDS = range(200)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    # The check cells run tiny tensors: threads only add contention on a busy 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass
class Notebook:
    """An instructor notebook executed in-process with its solutions and experiments skipped."""

    namespace: dict
    checks: list[tuple[str, str]]  # (grade_id, source) of every visible check cell
    folder: Path


def _is_visible_check(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return (cell.cell_type == "code" and not meta.get("solution") and not meta.get("grade")
            and "RUN_EXPERIMENTS" not in cell.source)


@contextlib.contextmanager
def _in_folder(folder: Path):
    """Run with ``folder`` as the working directory and first on ``sys.path`` (the notebook loads
    ``fixtures.npz`` and imports ``gradcheck`` from its own folder)."""
    previous = os.getcwd()
    os.chdir(folder)
    sys.path.insert(0, str(folder))
    sys.modules.pop("gradcheck", None)
    try:
        yield
    finally:
        sys.path.remove(str(folder))
        os.chdir(previous)


def _execute(notebook: Notebook, source: str, namespace_: dict) -> None:
    with _in_folder(notebook.folder), contextlib.redirect_stdout(io.StringIO()):
        exec(compile(source, f"<{notebook.folder.name} cell>", "exec"), namespace_)


_NOTEBOOKS: dict[str, Notebook] = {}


def executed(assignment: str) -> Notebook:
    """The instructor notebook of ``assignment``, executed once per session: setup, solutions and
    the definitions of the experiment cells (``RUN_EXPERIMENTS`` is false), not the hidden tests."""
    if assignment not in _NOTEBOOKS:
        folder = SOURCE / assignment
        nb = nbformat.read(folder / f"{assignment}.ipynb", as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        ns: dict = {"__name__": "__main__"}
        notebook = Notebook(ns, [], folder)
        os.environ["NBGRADER_EXECUTION"] = "autograde"
        try:
            for i, cell in enumerate(code):
                if cell.metadata.get("nbgrader", {}).get("grade"):
                    continue
                _execute(notebook, cell.source, ns)
                if i > 0 and _is_visible_check(cell):
                    notebook.checks.append((cell.metadata.nbgrader.grade_id, cell.source))
        finally:
            del os.environ["NBGRADER_EXECUTION"]
        _NOTEBOOKS[assignment] = notebook
    return _NOTEBOOKS[assignment]


def run_checks(notebook: Notebook, replacements: dict | None = None) -> dict[str, str | None]:
    """Run every check cell in a fresh copy of the namespace (with ``replacements``, e.g. a
    student's functions); grade_id -> None if it passes, else the exception's message."""
    results = {}
    for grade_id, source in notebook.checks:
        ns = {**notebook.namespace, **(replacements or {})}
        try:
            _execute(notebook, source, ns)
            results[grade_id] = None
        except Exception as error:  # noqa: BLE001 -- any failure of a check cell is a verdict
            results[grade_id] = f"{type(error).__name__}: {error}"
    return results


# ------------------------------------------------------------------------------------------------
# A correct implementation passes every check, under any global random state


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_visible_check_cells_draw_only_from_their_own_seeded_generator(assignment):
    notebook = executed(assignment)
    assert notebook.checks, "no visible check cells found"
    for _, source in notebook.checks:
        for global_call in ("np.random.seed", "np.random.normal", "np.random.rand",
                            "torch.manual_seed", "torch.randn(", "torch.rand(", "random.random"):
            assert global_call not in source, (global_call, source[:200])
        if "rng." in source:
            assert "rng = np.random.default_rng(" in source, source[:200]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_reference_passes_every_visible_check_under_200_global_seeds(assignment):
    notebook = executed(assignment)
    failures = {}
    for seed in SEEDS:
        np.random.seed(seed)  # noqa: NPY002 -- the global state is what this test varies
        torch.manual_seed(seed)
        random.seed(seed)
        for grade_id, message in run_checks(notebook).items():
            if message is not None:
                failures.setdefault(grade_id, (seed, message))
    assert failures == {}


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_correct_implementation_written_differently_passes_every_visible_check(assignment):
    results = run_checks(executed(assignment), namespace(assignment))
    assert {k: v for k, v in results.items() if v} == {}


# ------------------------------------------------------------------------------------------------
# Plausible bugs fail a visible check that names the function

ALL_BUGS = [(a, bug) for a in ASSIGNMENTS for bug in BUGS[a]]


@pytest.mark.parametrize(("assignment", "bug"), ALL_BUGS, ids=[b for _, b in ALL_BUGS])
def test_plausible_bug_fails_a_visible_check_that_names_the_function(assignment, bug):
    function = bug.split(":")[0]
    results = run_checks(executed(assignment), namespace(assignment, bug))
    messages = [m for m in results.values() if m]
    assert any(f"{function}:" in m for m in messages), (bug, messages)


def test_every_graded_function_has_at_least_two_bugs_caught_by_the_visible_checks():
    # The per-bug test above covers every bug; this states the minimum per function.
    for assignment in ASSIGNMENTS:
        counts = {check.name: 0 for check in CHECKS[assignment]}
        for bug in BUGS[assignment]:
            counts[bug.split(":")[0]] += 1
        assert min(counts.values()) >= 2, (assignment, counts)


def test_a_wrong_forward_is_explained_not_a_bare_assertion():
    results = run_checks(executed("rnn"), namespace("rnn", "rnn_step_forward:transposed Wh"))
    message = results["code-04"]
    assert message.startswith("AssertionError: rnn_step_forward: h_next differs")
    assert "relative error" in message and "threshold" in message and "Hint:" in message


def test_a_gradient_check_reports_every_wrong_gradient():
    results = run_checks(executed("rnn"), namespace("rnn", "rnn_step_backward:no tanh derivative"))
    message = results["code-06"]
    for gradient in ("dx", "dh_prev", "dWx", "dWh", "db"):
        assert f"{gradient} does not match the numerical gradient" in message, message


# ------------------------------------------------------------------------------------------------
# The experiments show what their text says


def test_ctc_experiment_reads_the_word_exactly_at_noise_zero():
    rates = executed("ctc").namespace["label_error_rates"](0.0)
    assert rates == {"greedy": 0.0, "beam": 0.0}


def test_convlstm_experiment_kernel_is_large_enough_for_its_speeds():
    ns = executed("convlstm").namespace
    k = ns["KERNEL_SIZE"]
    frames = ns["moving_squares"](64, 7, generator=np.random.default_rng(3)).numpy()[:, :, 0]
    rows = np.arange(frames.shape[-2])
    cols = np.arange(frames.shape[-1])
    # The square's top-left corner in every frame; the largest per-frame shift is the speed v.
    top = np.argmax(frames.any(axis=3), axis=2)
    left = np.argmax(frames.any(axis=2), axis=2)
    assert rows.size and cols.size
    v = max(np.abs(np.diff(top, axis=1)).max(), np.abs(np.diff(left, axis=1)).max())
    assert v == max(ns["SPEEDS"])
    assert k >= 2 * v + 1, (k, v)


# ------------------------------------------------------------------------------------------------
# The grader's reason says when a backward lost its points through the student's own forward


def test_grader_reason_of_a_backward_names_the_wrong_forward_it_ran():
    graded = grade_checks("rnn", namespace("rnn", "rnn_step_forward:transposed Wh"),
                          ["rnn_step_forward", "rnn_step_backward", "rnn_forward"])
    assert graded["rnn_step_forward"] and graded["rnn_step_backward"]
    assert graded["rnn_forward"] is None
    results = [CheckResult(name, 0 if reason else 3, 3, reason) for name, reason in graded.items()]
    results.append(CheckResult("rnn_backward", 0, 4, "dWh differs: max rel error 3e-01"))
    noted = {r.name: r.reason for r in note_wrong_dependencies("rnn", results)}
    assert noted["rnn_step_backward"].endswith(
        "; note: your rnn_step_forward is also wrong and rnn_step_backward runs it, fix it first")
    assert noted["rnn_step_forward"] == graded["rnn_step_forward"]  # its own reason only
    # rnn_backward runs rnn_forward, which passed: nothing to add.
    assert noted["rnn_backward"] == "dWh differs: max rel error 3e-01"
