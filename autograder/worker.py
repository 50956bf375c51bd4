"""Grade one submission in its own course folder: ``python -m autograder.worker JOB.json``.

The pipeline starts one worker per submission (several at once) so that students never share a
process, a kernel or a SQLite gradebook. The worker

1. runs the trusted re-verification (:mod:`autograder.verify`) and writes the result at once, so
   that a crash later still leaves the authoritative scores;
2. runs ``nbgrader autograde`` in the job's course folder (a copy of the template gradebook), with
   the kernel started through :mod:`autograder.sandbox` and a cap on the output it may send;
3. overrides each graded cell's score with the trusted one (nbgrader's manual score);
4. renders the feedback with :class:`autograder.feedback.ExplainGrades`.

``result.json`` in the job folder is the only thing the pipeline reads back.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import sys
import traceback

import nbformat

from autograder import checks as checks_module
from autograder.output_cap import truncation_note
from autograder.sandbox import Limits, Sandbox, kill_uid, prepare_home
from autograder.verify import verify

KERNEL_NAME = "autograder-sandbox"


def _imports_only(source: str) -> str:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ""
    keep = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    return "\n".join(ast.unparse(n) for n in keep)


def student_cells(nb) -> list[str]:
    """The code the re-verification runs: the student's cells, and the imports of locked cells.

    Solution cells and cells without nbgrader metadata (the student's own, or plain set-up cells)
    run as they are; graded test cells are left out; other nbgrader cells (read-only set-up and
    visible checks) contribute their import statements only. IPython magics become calls on a
    stand-in ``get_ipython()``.
    """
    from IPython.core.inputtransformer2 import TransformerManager

    transform = TransformerManager().transform_cell
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code" or "HIDDEN TESTS" in cell.source:
            continue
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution"):
            continue
        try:
            source = transform(cell.source)
        except Exception:  # noqa: BLE001 -- leave it to the child to report the syntax error
            source = cell.source
        if meta and not meta.get("solution"):
            source = _imports_only(source)
        if source.strip():
            cells.append(source)
    return cells


def _output_cap_class(max_bytes: int):
    from nbgrader.preprocessors import Execute

    class CappedExecute(Execute):
        """nbgrader's Execute that drops a cell's output beyond ``max_bytes``.

        The backstop for output that gets past the kernel's own cap (:mod:`autograder.output_cap`),
        e.g. because the student's code removed it.
        """

        def output(self, outs, msg, display_id, cell_index):
            size = self._sizes.get(cell_index, 0) + len(json.dumps(msg.get("content", {})))
            self._sizes[cell_index] = size
            if size > max_bytes:
                if cell_index not in self._truncated:
                    self._truncated.add(cell_index)
                    outs.append(nbformat.v4.new_output(
                        "stream", name="stderr", text=truncation_note(max_bytes)))
                return None
            return super().output(outs, msg, display_id, cell_index)

        def preprocess(self, nb, resources=None, km=None):
            self._sizes, self._truncated = {}, set()
            return super().preprocess(nb, resources, km)

    return CappedExecute


def _kernelspec(job: dict, sandbox: Sandbox, sandbox_spec: str) -> str:
    """A kernelspec that starts ipykernel inside the sandbox; returns its JUPYTER_PATH entry."""
    root = os.path.join(job["job_dir"], "jupyter")
    folder = os.path.join(root, "kernels", KERNEL_NAME)
    os.makedirs(folder)
    cap = f"__import__('autograder.output_cap').output_cap.install({job['max_output_bytes']})"
    argv = sandbox.command(sandbox_spec, [sys.executable, "-m", "ipykernel_launcher",
                                          "-f", "{connection_file}",
                                          f"--IPKernelApp.exec_lines={json.dumps([cap])}"])
    with open(os.path.join(folder, "kernel.json"), "w") as f:
        json.dump({"argv": argv, "display_name": "Python 3 (autograder sandbox)",
                   "language": "python"}, f)
    return root


def _config(job: dict, course: str, results_dir: str):
    from traitlets.config import Config

    c = Config()
    c.CourseDirectory.root = course
    c.CourseDirectory.course_id = job["course_id"]
    c.CourseDirectory.db_url = f"sqlite:///{os.path.join(course, 'gradebook.db')}"
    c.Execute.timeout = int(job["timeout"])
    c.Execute.kernel_name = KERNEL_NAME
    c.Execute.startup_timeout = 120
    # A kernel that floods its output leaves a backlog after the cell ends: drop it, do not fail.
    c.Execute.raise_on_iopub_timeout = False
    c.Execute.iopub_timeout = 10
    c.OverwriteCells.add_missing_cells = True
    c.LimitOutput.max_lines = 500
    c.Autograde.create_student = True
    c.HTMLExporter.sanitize_html = True
    c.ExplainGrades.results_dir = results_dir
    return c


def _kernel_findings(notebook_path: str, timeout: float) -> tuple[dict[str, str], list[str]]:
    """What went wrong in the kernel: per graded cell, and in general (timeouts)."""
    per_cell, notes = {}, []
    if not os.path.exists(notebook_path):
        return per_cell, notes
    nb = nbformat.read(notebook_path, as_version=4)
    timeouts = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type != "error":
                continue
            if out.ename == "CellTimeoutError":
                timeouts += 1
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if grade_id:
                per_cell[grade_id] = f"{out.ename}: {out.evalue}"[:300]
    if timeouts:
        notes.append(f"{timeouts} cell(s) ran longer than {timeout:g} s and were interrupted")
    return per_cell, notes


def _nbgrader_error(run: dict) -> str:
    """The most telling line of a failed ``nbgrader autograde`` (its last line is generic)."""
    text = f"{run.get('log') or ''}\n{run.get('error') or ''}"
    if "DeadKernelError" in text or "Kernel died" in text:
        return "the kernel died (a crash, os._exit, or the memory limit)"
    lines = [ln.strip() for ln in text.splitlines()
             if ("Error" in ln or "error" in ln) and "Please see" not in ln
             and "There was an error" not in ln and ln.strip()]
    return lines[-1][:300] if lines else "unknown error"


def _write(path: str, result: dict) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(result, f)
    os.replace(path + ".tmp", path)


def grade(job: dict) -> dict:
    assignment, student = job["assignment"], job["student"]
    job_dir, template = job["job_dir"], job["template_dir"]
    uid = job["uid"]
    limits = Limits(**job["limits"])
    checks = checks_module.CHECKS[assignment]
    results_dir = os.path.join(job_dir, "results")
    os.makedirs(results_dir)
    result_path = os.path.join(results_dir, f"{student}.json")
    course = os.path.join(job_dir, "course")
    submitted = os.path.join(course, "submitted", student, assignment, f"{assignment}.ipynb")
    nb = nbformat.read(submitted, as_version=4)

    trusted, notes = verify(
        assignment, student_cells(nb), template, os.path.join(job_dir, "verify"), uid=uid,
        namespace=job["namespace"], hide=job["hide_verify"], timeout=job["timeout"],
        limits=limits, data_files=job["data_files"])
    result = {
        "student": student, "assignment": assignment,
        "checks": [{"name": r.name, "points": r.points, "max_points": r.max_points,
                    "reason": r.reason, "kernel": None} for r in trusted],
        "notes": list(job.get("notes", [])) + notes,
        "total": sum(r.points for r in trusted), "max_total": sum(c.points for c in checks),
        "kernel_ok": None, "feedback": None, "autograded": None,
    }
    _write(result_path, result)

    # nbgrader's own run, in a sandboxed kernel.
    os.makedirs(os.path.join(course, "source"), exist_ok=True)
    os.symlink(os.path.join(template, "source", assignment),
               os.path.join(course, "source", assignment))
    shutil.copy(os.path.join(template, "gradebook.db"), os.path.join(course, "gradebook.db"))
    os.chmod(os.path.join(course, "gradebook.db"), 0o600)
    kernel_sandbox = Sandbox(home=os.path.join(job_dir, "kernel-home"),
                             cwd=None, limits=limits, uid=uid,
                             namespace=job["namespace"], hide=job["hide_kernel"])
    prepare_home(kernel_sandbox)
    spec = kernel_sandbox.write(os.path.join(job_dir, "kernel-sandbox.json"))
    os.environ["JUPYTER_PATH"] = _kernelspec(job, kernel_sandbox, spec)
    # The kernel runs in the notebook's folder: let the sandbox user in (no listing above it).
    for path in (job_dir, course):
        os.chmod(path, 0o711)

    from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.preprocessors import (
        AssignLatePenalties,
        CheckCellMetadata,
        GetGrades,
        IgnorePattern,
        LimitOutput,
        SaveAutoGrades,
    )

    from autograder.feedback import ExplainGrades

    config = _config(job, course, results_dir)
    config.Autograde.autograde_preprocessors = [
        _output_cap_class(2 * job["max_output_bytes"]), IgnorePattern, ClearMetadataPreprocessor,
        LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    config.GenerateFeedback.preprocessors = [GetGrades, ExplainGrades, CSSHTMLHeaderPreprocessor]
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    run = api.autograde(assignment, student, force=True, create=True)
    if uid is not None:
        kill_uid(uid)
    autograded = os.path.join(course, "autograded", student, assignment, f"{assignment}.ipynb")
    per_cell, kernel_notes = _kernel_findings(autograded, job["timeout"])
    result["notes"] += kernel_notes
    result["kernel_ok"] = bool(run.get("success"))
    if not run.get("success"):
        result["notes"].append(f"nbgrader could not run the whole notebook: {_nbgrader_error(run)}")

    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(config.CourseDirectory.db_url, job["course_id"]) as gb:
        for check in result["checks"]:
            grade_id = f"test_{check['name']}"
            check["kernel"] = per_cell.get(grade_id)
            try:
                grade_row = gb.find_grade(grade_id, assignment, assignment, student)
            except MissingEntry:
                continue
            kernel_score = grade_row.auto_score
            check["kernel_score"] = kernel_score
            if kernel_score is not None and kernel_score >= check["max_points"] > check["points"]:
                check["reason"] = (f"{check['reason']} (the notebook's own test passed: were the "
                                   "grader's helpers changed in the kernel?)")
            grade_row.manual_score = check["points"]
            grade_row.needs_manual_grade = False
        gb.db.commit()
    _write(result_path, result)

    if os.path.exists(autograded):
        result["autograded"] = autograded
        fb = api.generate_feedback(assignment, student, force=True)
        html_path = os.path.join(course, "feedback", student, assignment, f"{assignment}.html")
        if fb.get("success") and os.path.exists(html_path):
            result["feedback"] = html_path
    _write(result_path, result)
    return result


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0]) as f:
        job = json.load(f)
    try:
        grade(job)
    except Exception:  # noqa: BLE001 -- reported to the pipeline, which records the failure
        with open(os.path.join(job["job_dir"], "worker-error.txt"), "w") as f:
            f.write(traceback.format_exc())
        sys.exit(1)


if __name__ == "__main__":
    main()
