"""The four graded assignments: their checks, their notebooks and their student versions.

Specification in short: a correct submission gets full marks however it is written; each plausible
bug loses the points of the function it is in (and of the checks that call that function) and no
others; a submission that uses a library's implementation of what it is asked to write is caught;
the instructor's notebook autogrades to full marks with nbgrader and the released stub to zero; and
``notebooks/`` is what ``python -m autograder release`` generates.

The bug and alternative-implementation tests grade in-process with the Check machinery (cached
reference outputs), the way the trusted pipeline grades; only the notebook tests run nbgrader, once
per assignment for all the submissions of that assignment.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import nbformat
import numpy as np
import pytest
from _alternatives import BUGS, namespace
from _grading import autograde, grade_checks, reference_outputs, solution_source

from autograder import assignments as registry
from autograder.checks import (
    ASSIGNMENTS,
    CHECKS,
    Check,
    compare,
    evaluate,
    find_forbidden,
    get_check,
    reference_namespace,
    run_check,
)
from autograder.release import (
    NOTEBOOKS,
    SOURCE,
    check_release_up_to_date,
    generated_header,
    released_copy,
)

ALL_CHECKS = [(a, c.name) for a in ASSIGNMENTS for c in CHECKS[a]]
ALL_BUGS = [(a, bug) for a in ASSIGNMENTS for bug in BUGS[a]]


def _needers(assignment: str, name: str) -> set[str]:
    return {c.name for c in CHECKS[assignment] if name in c.needs}


# ------------------------------------------------------------------------------------------------
# The checks


def _graded_names(assignment: str) -> list[str]:
    return [check.name for check in CHECKS[assignment]]


def test_each_check_grades_a_function_it_needs_for_positive_points():
    # Which functions each assignment grades, in the notebook's order, is the registry's
    # (test_source_notebook_has_one_graded_hidden_test_per_function holds the notebooks to it).
    for assignment in ASSIGNMENTS:
        for check in CHECKS[assignment]:
            assert check.points > 0 and check.name in check.needs


@pytest.mark.parametrize(("assignment", "name"), ALL_CHECKS)
def test_check_cases_are_many_varied_deterministic_and_serialisable(assignment, name):
    check = get_check(assignment, name)
    cases = check.make_cases()
    assert len(cases) >= 20
    again = check.make_cases()
    for case, same in zip(cases, again, strict=True):
        assert case.keys() == same.keys()
        for key, value in case.items():
            assert isinstance(value, (np.ndarray, int, float, str, list)), (key, type(value))
            if isinstance(value, list):
                assert all(isinstance(v, int) for v in value), key
            if isinstance(value, np.ndarray):
                assert np.array_equal(value, same[key])
            else:
                assert value == same[key]
    # Every case can travel to the child process as an .npz (allow_pickle=False) and back.
    with tempfile.TemporaryFile() as f:
        np.savez(f, **{f"c{i}.{k}": np.asarray(v) for i, c in enumerate(cases)
                       for k, v in c.items()})
        f.seek(0)
        with np.load(f, allow_pickle=False) as loaded:
            assert len(loaded.files) == sum(len(c) for c in cases)


@pytest.mark.parametrize(("assignment", "name"), ALL_CHECKS)
def test_reference_outputs_are_float64_arrays(assignment, name):
    _, outputs = reference_outputs(assignment, name)
    for out in outputs:
        assert out and all(isinstance(v, np.ndarray) and v.dtype == np.float64
                           for v in out.values())


def test_edge_cases_are_in_the_hidden_cases():
    step = get_check("rnn", "rnn_backward").make_cases()
    assert any(c["N"] == 1 for c in step) and any(c["T"] == 1 for c in step)
    assert any(c["D"] != c["H"] for c in step)
    ctc = get_check("ctc", "ctc_loss").make_cases()
    losses = [c for c in ctc if c["labels"] == []]
    assert losses, "an empty labelling"
    assert any(c["T"] >= 300 for c in ctc), "a long sequence"
    assert any(c["blank"] != 0 for c in ctc), "a blank other than 0"
    assert any(len(set(c["labels"])) < len(c["labels"]) for c in ctc), "repeated labels"
    _, outputs = reference_outputs("ctc", "ctc_loss")
    assert any(np.isinf(o["loss"]) for o in outputs), "an impossible alignment"


def test_compare_explains_the_difference_in_a_short_sentence():
    check = Check("f", 1, ("f",), lambda rng: [], lambda ns, c: {}, 1e-7, 1e-10)
    ref = {"h": np.array([[1.0, 2.0]]), "loss": np.array(np.inf)}
    assert compare("f", dict(ref), ref, check) is None
    assert compare("f", {"h": ref["h"]}, ref, check) == "missing output 'loss'"
    assert "shape (2, 1), expected (1, 2)" in compare("f", {**ref, "h": ref["h"].T}, ref, check)
    assert compare("f", {**ref, "h": np.array([[1.0, np.nan]])}, ref, check) == "NaN in h"
    assert "expected inf" in compare("f", {**ref, "loss": np.array(3.0)}, ref, check)
    reason = compare("f", [{**ref, "h": ref["h"] * 1.1}], [ref], check, [{"N": 1, "T": 5}])
    assert reason.startswith("h differs: max rel error") and reason.endswith("case 0 (N=1, T=5)")
    assert compare("f", {**ref, "h": ref["h"] * (1 + 1e-9)}, ref, check) is None


def test_run_check_raises_an_assertion_error_that_names_the_function():
    ns = namespace("ctc", "greedy_decode:no merge")
    with pytest.raises(AssertionError, match=r"^greedy_decode: labelling is \[1, 1, 1, 2, 2\]"):
        run_check("ctc", "greedy_decode", ns)
    with pytest.raises(AssertionError, match="not defined"):
        run_check("ctc", "greedy_decode", {})
    with pytest.raises(AssertionError, match="not implemented"):
        run_check("ctc", "greedy_decode", {"greedy_decode": _not_implemented})


def _not_implemented(*args, **kwargs):
    raise NotImplementedError


# ------------------------------------------------------------------------------------------------
# Correct submissions get full marks; plausible bugs lose exactly their points


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_correct_implementation_written_differently_gets_full_marks(assignment):
    results = grade_checks(assignment, namespace(assignment), _graded_names(assignment))
    assert {name: reason for name, reason in results.items() if reason} == {}


def test_every_graded_function_has_at_least_two_plausible_bugs():
    for assignment in ASSIGNMENTS:
        counts = {name: 0 for name in _graded_names(assignment)}
        for bug in BUGS[assignment]:
            counts[bug.split(":")[0]] += 1
        assert min(counts.values()) >= 2, (assignment, counts)


@pytest.mark.parametrize(("assignment", "bug"), ALL_BUGS, ids=[b for _, b in ALL_BUGS])
def test_plausible_bug_loses_the_points_of_its_function_only(assignment, bug):
    name = bug.split(":")[0]
    affected = _needers(assignment, name)
    # Checks that do not call the buggy function run the same code as for the correct namespace.
    results = grade_checks(assignment, namespace(assignment, bug), sorted(affected))
    failing = {n for n, reason in results.items() if reason}
    assert name in failing, f"{bug} is not detected"
    assert failing <= affected
    reason = results[name]
    assert 0 < len(reason) < 300, reason


# ------------------------------------------------------------------------------------------------
# The "from scratch" rule


@pytest.mark.parametrize(("assignment", "name", "source", "found"), [
    ("ctc", "ctc_loss", "import torch.nn.functional as F\n"
     "def ctc_loss(lp, labels, blank=0):\n    return F.ctc_loss(lp, labels)",
     "torch.nn.functional.ctc_loss"),
    ("ctc", "ctc_grad", "from torch.nn.functional import ctc_loss as c\n"
     "def ctc_grad(lp, labels, blank=0):\n    return helper(lp)\n"
     "def helper(lp):\n    return c(lp)", "torch.nn.functional.ctc_loss"),
    ("ctc", "ctc_loss", "import torch\n"
     "def ctc_loss(lp, labels, blank=0):\n    return getattr(torch, 'ctc_loss')(lp)",
     "torch.ctc_loss"),
    ("ctc", "ctc_forward", "from solutions.ctc import ctc_forward", "solutions.ctc.ctc_forward"),
    ("ctc", "greedy_decode", "import importlib\n"
     "def greedy_decode(lp, blank=0):\n    return importlib.import_module('solutions').x",
     "solutions"),
    ("rnn", "rnn_step_forward", "from autograder.checks import reference_namespace\n"
     "rnn_step_forward = reference_namespace('rnn')['rnn_step_forward']",
     "autograder.checks.reference_namespace"),
    ("rnn", "rnn_backward", "import torch\ndef rnn_backward(dh, cache):\n"
     "    return torch.autograd.grad(cache, dh)", "torch.autograd.grad"),
    ("lstm_gru", "LSTMCell", "from torch import nn\nclass LSTMCell(nn.Module):\n"
     "    def __init__(self, d, h, bias=True):\n        super().__init__()\n"
     "        self.cell = nn.LSTMCell(d, h)", "torch.nn.LSTMCell"),
    ("lstm_gru", "LSTMCell", "import torch\nclass LSTMCell(torch.nn.Module):\n"
     "    def forward(self, x, state=None):\n        return torch.lstm_cell(x, state)",
     "torch.lstm_cell"),
    ("convlstm", "ConvLSTMCell", "import torch\nL = torch.nn.LSTMCell\n"
     "class ConvLSTMCell(torch.nn.Module):\n    def forward(self, x, state=None):\n"
     "        return L(1, 1)(x)", "torch.nn.LSTMCell"),
])
def test_forbidden_library_calls_are_found(assignment, name, source, found):
    check = get_check(assignment, name)
    names = find_forbidden(source, check)
    # the scan may name the attribute reached through the module (`solutions.x`)
    assert any(n == found or n.startswith(found + ".") for n in names), names
    reason = evaluate(assignment, name, reference_namespace(assignment), source=source)
    assert reason.startswith(f"{name} must be written from scratch: it uses")


def test_own_names_and_allowed_library_calls_are_not_forbidden():
    source = (
        "import numpy as np\nimport torch\nfrom torch import nn\n"
        "def ctc_loss(lp, labels, blank=0):\n    return -ctc_forward(lp, labels)[-1, -1]\n"
        "class ConvLSTMCell(nn.Module):\n    def __init__(self):\n"
        "        super(ConvLSTMCell, self).__init__()\n        self.conv = nn.Conv2d(2, 4, 3)\n"
        "class LSTMCell(nn.Module):\n    def forward(self, x, state=None):\n"
        "        return torch.sigmoid(x @ self.weight_ih.T)\n"
    )
    for assignment, name in [("ctc", "ctc_loss"), ("convlstm", "ConvLSTMCell"),
                             ("lstm_gru", "LSTMCell")]:
        assert find_forbidden(source, get_check(assignment, name)) == []


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_notebook_solutions_respect_the_from_scratch_rule(assignment):
    source = solution_source(SOURCE / assignment / f"{assignment}.ipynb")
    for check in CHECKS[assignment]:
        assert find_forbidden(source, check) == [], check.name


# ------------------------------------------------------------------------------------------------
# Notebooks


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_notebook_has_one_graded_hidden_test_per_function(assignment):
    nb = nbformat.read(SOURCE / assignment / f"{assignment}.ipynb", as_version=4)
    graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    checks = CHECKS[assignment]
    assert [c.metadata.nbgrader.grade_id for c in graded] == [c.grade_id for c in checks]
    for cell, check in zip(graded, checks, strict=True):
        meta = cell.metadata.nbgrader
        assert meta.points == check.points and meta.locked and meta.schema_version == 3
        assert (f'run_check("{assignment}", "{check.name}", globals())' in cell.source
                and "### BEGIN HIDDEN TESTS" in cell.source)
    for cell in nb.cells:
        meta = cell.metadata.nbgrader
        assert meta.solution or meta.locked, "every cell but the solutions is read-only"
        if cell.cell_type == "code" and "RUN_EXPERIMENTS:" in cell.source:
            assert cell.source.lstrip().startswith(("if RUN_EXPERIMENTS", "def ")), \
                "experiments run only outside grading"


@pytest.mark.slow
def test_notebooks_are_up_to_date_with_the_source_notebooks():
    problems = check_release_up_to_date()
    assert problems == [], "run python -m autograder release:\n" + "\n".join(problems)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_student_version_has_stubs_and_no_solutions_or_hidden_tests(assignment):
    nb = nbformat.read(NOTEBOOKS / assignment / f"{assignment}.ipynb", as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
    assert "run_check" not in text and "solutions" not in text.replace("solution_", "")
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    for name in _graded_names(assignment):
        assert f'NotImplementedError("{name}' in text, name
    for source in registry.get(assignment).released_files:
        copy = (NOTEBOOKS / assignment / Path(source).name).read_bytes()
        assert copy == released_copy(source)
        assert copy.startswith(generated_header(source).encode()), "marked as generated"


# ------------------------------------------------------------------------------------------------
# Real nbgrader autograding (one run per assignment, for all its submissions)

# A ctc submission written differently (ctc_forward with a scalar loop) with one bug (greedy
# decoding without merging repeats): it must lose exactly greedy_decode's point.
_CTC_VARIANT = {
    "solution_ctc_forward": '''
def ctc_forward(log_probs, labels, blank=0):
    ext = [blank]
    for label in labels:
        ext += [int(label), blank]
    T, S = log_probs.shape[0], len(ext)
    log_alpha = np.full((T, S), -np.inf)
    for t in range(T):
        for s in range(S):
            if t == 0:
                total = 0.0 if s < 2 else -np.inf
            else:
                terms = [log_alpha[t - 1, s]]
                if s >= 1:
                    terms.append(log_alpha[t - 1, s - 1])
                if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                    terms.append(log_alpha[t - 1, s - 2])
                total = np.logaddexp.reduce(terms)
            log_alpha[t, s] = total + log_probs[t, ext[s]]
    return log_alpha
''',
    "solution_greedy_decode": '''
def greedy_decode(log_probs, blank=0):
    return [int(k) for k in np.argmax(log_probs, axis=1) if k != blank]
''',
}


def _variant(source: Path, replacements: dict[str, str], dest: Path) -> Path:
    nb = nbformat.read(source, as_version=4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in replacements:
            cell.source = replacements[grade_id].strip()
    nbformat.write(nb, dest)
    return dest


@pytest.fixture(scope="session")
def autograded(tmp_path_factory):
    """assignment -> {student: Graded}; graded with nbgrader on first use."""
    results = {}

    def grade(assignment):
        if assignment not in results:
            course = tmp_path_factory.mktemp(f"course-{assignment}")
            submissions = {
                "instructor": SOURCE / assignment / f"{assignment}.ipynb",
                "blank": NOTEBOOKS / assignment / f"{assignment}.ipynb",
            }
            if assignment == "ctc":
                submissions["variant"] = _variant(submissions["instructor"], _CTC_VARIANT,
                                                  course.parent / "ctc-variant.ipynb")
            results[assignment] = (course, autograde(assignment, submissions, course))
        return results[assignment]

    return grade


@pytest.mark.slow
@pytest.mark.grading
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_notebook_autogrades_to_full_marks(autograded, assignment):
    _, graded = autograded(assignment)
    instructor = graded["instructor"]
    assert instructor.max_total == sum(c.points for c in CHECKS[assignment])
    assert instructor.total == instructor.max_total, instructor.scores
    # Goal: at most 60 s per submission on 2 cores (the experiments are skipped while grading).
    print(f"{assignment}: {instructor.seconds:.1f} s per submission")
    assert instructor.seconds < 180


@pytest.mark.slow
@pytest.mark.grading
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_student_version_autogrades_to_zero_with_every_graded_test_failing_cleanly(autograded,
                                                                                   assignment):
    course, graded = autograded(assignment)
    assert graded["blank"].total == 0, graded["blank"].scores
    nb = json.loads((course / "autograded" / "blank" / assignment /
                     f"{assignment}.ipynb").read_text())
    errors = {}
    for cell in nb["cells"]:
        meta = cell["metadata"].get("nbgrader", {})
        if meta.get("grade"):
            errors[meta["grade_id"]] = [(o["ename"], o["evalue"]) for o in cell["outputs"]
                                        if o["output_type"] == "error"]
    assert set(errors) == {c.grade_id for c in CHECKS[assignment]}
    for grade_id, outputs in errors.items():
        assert len(outputs) == 1, (grade_id, outputs)
        ename, evalue = outputs[0]
        assert ename == "AssertionError" and "not implemented" in evalue, (grade_id, evalue)


@pytest.mark.slow
@pytest.mark.grading
def test_variant_submission_loses_only_the_buggy_function_with_nbgrader(autograded):
    _, graded = autograded("ctc")
    lost = {grade_id: (score, maximum) for grade_id, (score, maximum)
            in graded["variant"].scores.items() if score < maximum}
    assert lost == {"test_greedy_decode": (0.0, 1.0)}
