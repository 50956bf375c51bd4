"""The notebook runs once (issue 14): the re-verification's run of a submission gives both the
notebook's outputs and the grades, and the checks reach the sandbox only after the notebook ran.

Each test calls :func:`autograder.verify.verify` on a ``ctc`` notebook, in the sandbox where one
can start (as root, under a leased uid), with the outputs of every cell kept.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _hostile import ROOT, release_notebook, solved_notebook, with_cells

from autograder import sandbox
from autograder.checks import CHECKS
from autograder.verify import prepare_reference, verify
from autograder.worker import _python, student_cells

pytestmark = pytest.mark.grading

ASSIGNMENT = "ctc"
MAX = {c.name: c.points for c in CHECKS[ASSIGNMENT]}
TIMEOUT = 10  # seconds per cell / per check
CAPTURE = 100_000
CONFINE = sandbox.probe().sandboxed
FIXTURES = [str(p) for p in (ROOT / "autograder" / "source" / ASSIGNMENT).iterdir()
            if p.is_file() and p.suffix != ".ipynb"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("reference")
    prepare_reference(ASSIGNMENT, str(folder))
    return str(folder)


def run(nb, reference: str, work: Path):
    """Verify ``nb`` as the worker does: the whole notebook once, outputs kept."""
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    lease = sandbox.lease_uid() if CONFINE and os.geteuid() == 0 else None
    try:
        verification = verify(
            ASSIGNMENT, student_cells(nb, release_notebook(ASSIGNMENT)), reference, str(work),
            uid=lease.uid if lease else None, confine=CONFINE, timeout=TIMEOUT,
            limits=sandbox.Limits(cpu_s=600), data_files=FIXTURES,
            notebook=[_python(cell.source) for cell in code], capture=CAPTURE)
    finally:
        if lease:
            lease.release()
    return verification, code


def points(verification) -> dict[str, float]:
    return {r.name: r.points for r in verification.results}


def texts(ran: dict | None) -> str:
    """Everything a cell's outputs say, as text."""
    if ran is None:
        return ""
    parts = []
    for output in ran["outputs"]:
        parts += [output.get("text", ""), output.get("ename", ""), output.get("evalue", ""),
                  *[str(v) for v in output.get("data", {}).values()]]
    return "\n".join(parts)


def test_one_run_gives_the_outputs_and_the_grades(reference, tmp_path):
    nb = with_cells(solved_notebook(ASSIGNMENT), "print('hello from the notebook')",
                    "from IPython.display import HTML, display\ndisplay(HTML('<b>shown</b>'))",
                    "6 * 7", "raise ValueError('a visible failure')")
    verification, code = run(nb, reference, tmp_path / "verify")
    assert points(verification) == MAX, [r.reason for r in verification.results]
    assert verification.notebook_completed
    hello, html, answer, failure = verification.outputs[-4:]
    assert [o.output_type for o in hello["outputs"]] == ["stream"]
    assert hello["outputs"][0].text == "hello from the notebook\n"
    assert html["outputs"][0].output_type == "display_data"
    assert html["outputs"][0].data["text/html"] == "<b>shown</b>"
    assert answer["outputs"][0].output_type == "execute_result"
    assert answer["outputs"][0].data["text/plain"] == "42"
    assert answer["outputs"][0].execution_count == answer["execution_count"] == len(code) - 1
    assert failure["outputs"][0].ename == "ValueError"
    counts = [ran["execution_count"] for ran in verification.outputs]
    assert counts == list(range(1, len(code) + 1))
    assert any("raised ValueError: a visible failure" in n for n in verification.notes)


def test_the_checks_reach_the_sandbox_only_after_the_notebook_ran(reference, tmp_path):
    work = tmp_path / "verify"
    checks = work / "checks"
    spy = f"""
import os, sys, threading, time
def spy():
    while not os.path.exists({str(checks / 'ready')!r}):
        time.sleep(0.005)
    print('LEAK', sorted(os.listdir({str(checks)!r})))
threading.Thread(target=spy, daemon=True).start()
"""
    seen = (f"import os, sys\nprint('SEEN', os.listdir({str(checks)!r}), "
            "sorted(m for m in sys.modules if m.startswith('autograder')))")
    nb = with_cells(solved_notebook(ASSIGNMENT), spy, seen)
    verification, _ = run(nb, reference, work)
    assert points(verification) == MAX
    everything = "\n".join(texts(ran) for ran in verification.outputs)
    assert "SEEN [] []" in everything
    for leak in ("LEAK", "cases", "core.py", "run_check"):
        assert leak not in everything, leak


def test_a_run_that_dies_in_a_visible_check_costs_only_that_function(reference, tmp_path):
    nb = solved_notebook(ASSIGNMENT)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "solution_ctc_loss":
            cell.source = "def ctc_loss(*args, **kwargs):\n    import os\n    os._exit(3)"
    verification, code = run(nb, reference, tmp_path / "verify")
    got = points(verification)
    assert got["ctc_loss"] == 0
    assert {n: got[n] for n in MAX if n != "ctc_loss"} == {n: MAX[n] for n in MAX
                                                           if n != "ctc_loss"}
    assert not verification.notebook_completed
    stopped = verification.outputs.index(None)
    assert "ctc_loss" in code[stopped].source  # the visible check that called it
    assert all(ran is not None for ran in verification.outputs[:stopped])
    assert any("the notebook's run stopped at cell" in n for n in verification.notes)


def test_each_cells_output_is_capped(reference, tmp_path):
    nb = with_cells(solved_notebook(ASSIGNMENT), "for _ in range(300):\n    print('x' * 1000)")
    verification, _ = run(nb, reference, tmp_path / "verify")
    flood = verification.outputs[-1]
    text = "".join(o.get("text", "") for o in flood["outputs"])
    assert len(text) < CAPTURE + 1000
    assert f"[output truncated: more than {CAPTURE // 1000} kB]" in text
    assert points(verification) == MAX


def test_the_notebook_runs_for_its_outputs_when_the_scan_fails_every_function(reference,
                                                                              tmp_path):
    nb = with_cells(solved_notebook(ASSIGNMENT), "print('still shown')")
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        if grade_id.startswith("solution_"):
            name = grade_id[len("solution_"):]
            cell.source = f"import torch\ndef {name}(*args, **kwargs):\n    return torch.zeros(1)"
    verification, _ = run(nb, reference, tmp_path / "verify")
    assert points(verification) == {name: 0 for name in MAX}
    assert all("must be written from scratch" in r.reason for r in verification.results)
    assert verification.notebook_completed
    assert "still shown" in texts(verification.outputs[-1])
