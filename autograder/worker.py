"""Grade one submission in its own course folder: ``python -m autograder.worker JOB.json``.

The pipeline starts one worker per submission (several at once) so that students never share a
process, a kernel or a SQLite gradebook. The worker

1. runs the trusted re-verification (:mod:`autograder.verify`) and writes the result at once, so
   that a crash later still leaves the authoritative scores;
2. runs ``nbgrader autograde`` in the job's course folder (a copy of the template gradebook whose
   test cells are the released ones: the kernel never sees a hidden test), with the kernel started
   through :mod:`autograder.sandbox` and a cap on the output it may send;
3. overrides each graded cell's score with the trusted one (nbgrader's manual score);
4. deletes links and special files the kernel left in its folder, then renders the feedback with
   :class:`autograder.feedback.ExplainGrades` and the sanitising exporter.

``result.json`` in the job folder is the only thing the pipeline reads back, and everything under
the job folder that student code could have written is read as :mod:`autograder.untrusted` says.
The worker limits its own address space (:func:`limit_own_memory`).
"""

from __future__ import annotations

import ast
import json
import os
import resource
import shutil
import stat
import sys
import traceback

import nbformat

from autograder import checks as checks_module
from autograder.output_cap import truncation_note
from autograder.sandbox import Limits, Sandbox, prepare
from autograder.verify import verify

KERNEL_NAME = "autograder-sandbox"
# The worker's own address space; it holds one notebook and bounded outputs (~300 MB in use).
WORKER_MEMORY_MB = 4096


def _is_literal(node: ast.AST) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _definitions_only(source: str) -> str:
    """The imports, function and class definitions and literal constants of a read-only cell:
    the helpers it gives students, without the checks it runs on their functions."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ""
    keep = [n for n in tree.body
            if isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef,
                              ast.ClassDef))
            or (isinstance(n, ast.Assign) and _is_literal(n.value))]
    return "\n".join(ast.unparse(n) for n in keep)


def student_cells(nb, release=None) -> list[str]:
    """The code the re-verification runs: the student's cells, and the helpers of locked cells.

    Solution cells and cells without nbgrader metadata (the student's own, or plain set-up cells)
    run as they are; graded test cells are left out; other nbgrader cells (read-only set-up and
    visible checks) contribute their imports, function and class definitions and literal
    constants, taken from the released notebook ``release`` when it has the cell (so a helper
    such as ``log_softmax`` is the one the notebook gave, edited or not). IPython magics become
    calls on a stand-in ``get_ipython()``.
    """
    from IPython.core.inputtransformer2 import TransformerManager

    released = {}
    for cell in (release.cells if release is not None else []):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id and cell.cell_type == "code":
            released[grade_id] = cell.source
    transform = TransformerManager().transform_cell
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code" or "HIDDEN TESTS" in cell.source:
            continue
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution"):
            continue
        source = cell.source
        if meta and not meta.get("solution"):
            source = released.get(meta.get("grade_id"), source)
        try:
            source = transform(source)
        except Exception:  # noqa: BLE001 -- leave it to the child to report the syntax error
            pass
        if meta and not meta.get("solution"):
            source = _definitions_only(source)
        if source.strip():
            cells.append(source)
    return cells


def _release_notebook(job: dict):
    """The released (student) version of the notebook, from the template."""
    path = os.path.join(job["template_dir"], "release", job["assignment"],
                        f"{job['assignment']}.ipynb")
    return nbformat.read(path, as_version=4) if os.path.exists(path) else None


def _prepare_kernel_course(job: dict, course: str) -> None:
    """The job's course folder as nbgrader's autograde needs it, with nothing secret in it.

    nbgrader restores the test cells from the gradebook's copy of the source notebook, which
    holds the hidden tests: in the job's copy of the gradebook every such cell becomes its
    released version (hidden tests removed; the re-verification is the authoritative grade).
    The source folder holds the assignment's data files only, not the instructor's notebook.
    """
    from nbgrader.api import Gradebook

    assignment, template = job["assignment"], job["template_dir"]
    source = os.path.join(course, "source", assignment)
    os.makedirs(source)
    for path in job["data_files"]:
        shutil.copy(path, source)
    db = os.path.join(course, "gradebook.db")
    shutil.copy(os.path.join(template, "gradebook.db"), db)
    os.chmod(db, 0o600)
    release = _release_notebook(job)
    released = {c.metadata["nbgrader"]["grade_id"]: c for c in release.cells
                if c.metadata.get("nbgrader", {}).get("grade_id")} if release else {}
    with Gradebook(f"sqlite:///{db}", job["course_id"]) as gb:
        for notebook in gb.find_assignment(assignment).notebooks:
            for cell in notebook.source_cells:
                if "HIDDEN TESTS" not in cell.source:
                    continue
                public = released.get(cell.name)
                if public is None or "HIDDEN TESTS" in public.source:
                    raise RuntimeError(f"no released version of the test cell {cell.name!r}")
                cell.source = public.source
                cell.checksum = public.metadata["nbgrader"]["checksum"]
        gb.db.commit()


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


def _kernel_sandbox(job: dict, limits: Limits) -> Sandbox:
    """The kernel's sandbox: a private home, a runtime folder for its connection file and
    sockets, and the output cap's module. Nothing of ``solutions`` or the grader's checks: the
    notebook it runs has no hidden tests (:func:`_prepare_kernel_course`)."""
    job_dir = job["job_dir"]
    tools = os.path.join(job_dir, "kernel-tools")
    os.makedirs(tools)
    shutil.copy(os.path.join(os.path.dirname(__file__), "output_cap.py"), tools)
    sandbox = Sandbox(home=os.path.join(job_dir, "kernel-home"), cwd=None, limits=limits,
                      uid=job["uid"], confine=job["sandboxed"],
                      runtime=os.path.join(job_dir, "run"),
                      readable=[tools])
    sandbox.writable = [sandbox.runtime]
    prepare(sandbox)
    return sandbox


def _kernelspec(job: dict, sandbox: Sandbox, sandbox_spec: str) -> str:
    """A kernelspec that starts ipykernel inside the sandbox; returns its JUPYTER_PATH entry."""
    root = os.path.join(job["job_dir"], "jupyter")
    folder = os.path.join(root, "kernels", KERNEL_NAME)
    os.makedirs(folder)
    cap_module = os.path.join(sandbox.readable[0], "output_cap.py")
    cap = f"__import__('runpy').run_path({cap_module!r})['install']({job['max_output_bytes']})"
    argv = sandbox.command(sandbox_spec, [sys.executable, "-m", "ipykernel_launcher",
                                          "-f", "{connection_file}",
                                          f"--IPKernelApp.exec_lines={json.dumps([cap])}"])
    # No network in the sandbox: the kernel is interrupted by a message, not a signal.
    with open(os.path.join(folder, "kernel.json"), "w") as f:
        json.dump({"argv": argv, "display_name": "Python 3 (autograder sandbox)",
                   "language": "python", "interrupt_mode": "message"}, f)
    return root


def remove_special_files(folder: str) -> list[str]:
    """Delete everything under ``folder`` that is not a regular file or a folder (links, FIFOs,
    sockets, devices), without following links; returns their relative paths.

    The kernel ran in the autograded folder, and nbgrader's feedback step copies every file there
    with ``shutil.copy``, which would read a link's target as the grader (a confused deputy) and
    block on a FIFO.
    """
    removed = []
    for root, dirs, files, dir_fd in os.fwalk(folder, follow_symlinks=False):
        for name in dirs + files:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
                os.unlink(name, dir_fd=dir_fd)
                removed.append(os.path.relpath(os.path.join(root, name), folder))
        dirs[:] = [d for d in dirs if os.path.relpath(os.path.join(root, d), folder) not in removed]
    return removed


def _config(job: dict, course: str, results_dir: str):
    from traitlets.config import Config

    c = Config()
    c.CourseDirectory.root = course
    c.CourseDirectory.course_id = job["course_id"]
    c.CourseDirectory.db_url = f"sqlite:///{os.path.join(course, 'gradebook.db')}"
    c.Execute.timeout = int(job["timeout"])
    c.Execute.kernel_name = KERNEL_NAME
    # The sandboxed kernel has no network: it talks to nbgrader over Unix sockets in its runtime
    # folder, the one folder it may write.
    c.KernelManager.transport = "ipc"
    c.KernelManager.ip = os.path.join(job["job_dir"], "run", "kernel")
    c.Execute.startup_timeout = 120
    # A kernel that floods its output leaves a backlog after the cell ends: drop it, do not fail.
    c.Execute.raise_on_iopub_timeout = False
    c.Execute.iopub_timeout = 10
    c.OverwriteCells.add_missing_cells = True
    c.LimitOutput.max_lines = 500
    c.Autograde.create_student = True
    c.HTMLExporter.sanitize_html = True
    c.GenerateFeedback.exporter_class = "autograder.feedback.SanitizedHTMLExporter"
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
        assignment, student_cells(nb, _release_notebook(job)), template,
        os.path.join(job_dir, "verify"), uid=uid,
        confine=job["sandboxed"], timeout=job["timeout"], limits=limits,
        data_files=job["data_files"])
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
    _prepare_kernel_course(job, course)
    kernel_sandbox = _kernel_sandbox(job, limits)
    spec = kernel_sandbox.write(os.path.join(job_dir, "kernel-sandbox.json"))
    os.environ["JUPYTER_PATH"] = _kernelspec(job, kernel_sandbox, spec)

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
    # The kernel's sandbox, and everything started in it, ends with the kernel.
    run = api.autograde(assignment, student, force=True, create=True)
    autograded = os.path.join(course, "autograded", student, assignment, f"{assignment}.ipynb")
    if os.path.isdir(os.path.dirname(autograded)):
        left = remove_special_files(os.path.dirname(autograded))
        if left:
            result["notes"].append(f"removed {len(left)} link(s) or special file(s) that the "
                                   "notebook left in its folder")
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
            # The kernel's test cells hold no hidden tests: its score only says the cell ran.
            check["kernel_score"] = grade_row.auto_score
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


def limit_own_memory(memory_mb: int) -> None:
    """Cap this process's address space (the soft limit, which the sandboxes it starts may set
    for themselves): whatever the student side wrote, reading it cannot exhaust the machine."""
    limit = max(WORKER_MEMORY_MB, 2 * memory_mb) * 2**20
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    if soft == resource.RLIM_INFINITY or soft > limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0]) as f:
        job = json.load(f)
    limit_own_memory(job["limits"]["memory_mb"] or 0)
    try:
        grade(job)
    except Exception:  # noqa: BLE001 -- reported to the pipeline, which records the failure
        with open(os.path.join(job["job_dir"], "worker-error.txt"), "w") as f:
            f.write(traceback.format_exc())
        sys.exit(1)


if __name__ == "__main__":
    main()
