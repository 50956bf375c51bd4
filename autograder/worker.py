"""Grade one submission: ``python -m autograder.worker --template DIR < JOB.json > RESULT.jsonl``.

The engine (:mod:`autograder.engine`) runs one worker process per submission, on whichever
machine Dask gives the job, so that students never share a process or a SQLite gradebook, and a
crash of student code never takes down the engine; the process is forked from a server that
imported this module's libraries once (:mod:`autograder.worker_server`), or started as above
(:func:`main`). The worker reads a :class:`autograder.records.Job` (the notebook's bytes, limits)
from stdin, works in a temporary folder of its own that it deletes at the end, and writes
:class:`autograder.records.Result` lines to stdout. It touches nothing shared: only the grading
parent writes the course folder. Steps:

1. ``nbgrader autograde`` runs in the job's course folder (a copy of the template gradebook whose
   test cells are the released ones: no hidden test is ever in the notebook): it restores the
   read-only and test cells, and where it would start a kernel, :class:`NotebookRun` has the
   trusted re-verification (:mod:`autograder.verify`) run the notebook once, in a sandbox, and
   then score every function; the cells get that run's outputs. The scores are written at once,
   so that a crash later still leaves the authoritative scores; each graded cell's score in the
   job's gradebook is then overridden with the trusted one (nbgrader's manual score);
2. the feedback is rendered with :class:`autograder.feedback.ExplainGrades` and the sanitising
   exporter; the autograded notebook and the page go back as bytes in the final result.

Everything under the job folder that student code could have written is read as
:mod:`autograder.untrusted` says. The worker limits its own address space
(:func:`limit_own_memory`).
"""

from __future__ import annotations

import argparse
import ast
import ctypes
import ctypes.util
import json
import os
import resource
import shutil
import signal
import stat
import sys
import tempfile
import time
import traceback
from collections.abc import Callable

import nbformat

from autograder.records import CheckGrade, Job, Result
from autograder.untrusted import read_bytes
from autograder.verify import Verification, verify

# The worker's own address space; it holds one notebook and bounded outputs (~300 MB in use).
WORKER_MEMORY_MB = 4096
MAX_JOB_BYTES = 64 * 2**20        # a job's JSON (the notebook is capped at collection)
MAX_NOTEBOOK_BYTES = 64 * 2**20   # the autograded notebook or the feedback page sent back
ERROR_PREFIX = "worker error: "   # the last stderr line of a worker that failed
PR_SET_PDEATHSIG = 1


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
    """The code the forbidden-call scan reads, and that the re-verification runs instead of the
    notebook when the notebook's run died: the student's cells, and the helpers of locked cells.

    Solution cells and cells without nbgrader metadata (the student's own, or plain set-up cells)
    run as they are; graded test cells are left out; other nbgrader cells (read-only set-up and
    visible checks) contribute their imports, function and class definitions and literal
    constants, taken from the released notebook ``release`` when it has the cell (so a helper
    such as ``log_softmax`` is the one the notebook gave, edited or not). IPython's syntax
    becomes calls on ``get_ipython()``.
    """
    released = {}
    for cell in (release.cells if release is not None else []):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id and cell.cell_type == "code":
            released[grade_id] = cell.source
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
        source = _python(source)
        if meta and not meta.get("solution"):
            source = _definitions_only(source)
        if source.strip():
            cells.append(source)
    return cells


def _release_notebook(job: Job, template: str):
    """The released (student) version of the notebook, from the template."""
    path = os.path.join(template, "release", job.assignment, f"{job.assignment}.ipynb")
    return nbformat.read(path, as_version=4) if os.path.exists(path) else None


def _data_files(job: Job, template: str) -> list[str]:
    """The files released with the assignment (fixtures the notebook loads)."""
    source = os.path.join(template, "source", job.assignment)
    return sorted(os.path.join(source, f) for f in os.listdir(source)
                  if os.path.isfile(os.path.join(source, f)) and not f.endswith(".ipynb"))


def _prepare_job_course(job: Job, template: str, course: str) -> None:
    """The job's course folder as nbgrader's autograde needs it, with nothing secret in it.

    nbgrader restores the test cells from the gradebook's copy of the source notebook, which
    holds the hidden tests: in the job's copy of the gradebook every such cell becomes its
    released version (hidden tests removed; the re-verification is the authoritative grade).
    The source folder holds the assignment's data files only, not the instructor's notebook.
    """
    from nbgrader.api import Gradebook

    assignment = job.assignment
    source = os.path.join(course, "source", assignment)
    os.makedirs(source)
    for path in _data_files(job, template):
        shutil.copy(path, source)
    db = os.path.join(course, "gradebook.db")
    shutil.copy(os.path.join(template, "gradebook.db"), db)
    os.chmod(db, 0o600)
    release = _release_notebook(job, template)
    released = {c.metadata["nbgrader"]["grade_id"]: c for c in release.cells
                if c.metadata.get("nbgrader", {}).get("grade_id")} if release else {}
    with Gradebook(f"sqlite:///{db}", job.course_id) as gb:
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


def _config(job: Job, folder: str):
    from traitlets.config import Config

    course = os.path.join(folder, "course")
    c = Config()
    c.CourseDirectory.root = course
    c.CourseDirectory.course_id = job.course_id
    c.CourseDirectory.db_url = f"sqlite:///{os.path.join(course, 'gradebook.db')}"
    c.OverwriteCells.add_missing_cells = True
    c.LimitOutput.max_lines = 500
    c.Autograde.create_student = True
    c.HTMLExporter.sanitize_html = True
    c.GenerateFeedback.exporter_class = "autograder.feedback.SanitizedHTMLExporter"
    c.ExplainGrades.results_dir = os.path.join(folder, "results")
    return c


def _cell_errors(notebook_path: str) -> dict[str, str]:
    """The error each graded test cell showed in the notebook's run, by grade id."""
    per_cell = {}
    if not os.path.exists(notebook_path):
        return per_cell
    nb = nbformat.read(notebook_path, as_version=4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        for out in cell.get("outputs", []):
            if out.output_type == "error" and grade_id:
                per_cell[grade_id] = f"{out.ename}: {out.evalue}"[:300]
    return per_cell


def _nbgrader_error(run: dict) -> str:
    """The most telling line of a failed ``nbgrader autograde`` (its last line is generic)."""
    text = f"{run.get('log') or ''}\n{run.get('error') or ''}"
    lines = [ln.strip() for ln in text.splitlines()
             if ("Error" in ln or "error" in ln) and "Please see" not in ln
             and "There was an error" not in ln and ln.strip()]
    return lines[-1][:300] if lines else "unknown error"


def _make_folder(job: Job, uid: int | None) -> str:
    """The job's private folder (as root: owned by the job's uid, which must pass through, not
    list, the temporary folder above it)."""
    folder = tempfile.mkdtemp(prefix=f"{job.student[:20]}-")
    if uid is not None:
        os.chown(folder, uid, uid)
    os.chmod(folder, 0o700)
    return folder


def _write_submission(job: Job, folder: str) -> nbformat.NotebookNode:
    """The submitted notebook, where nbgrader's autograde looks for it."""
    submitted = os.path.join(folder, "course", "submitted", job.student, job.assignment)
    os.makedirs(submitted)
    os.chmod(os.path.join(folder, "course", "submitted"), 0o700)
    path = os.path.join(submitted, f"{job.assignment}.ipynb")
    with open(path, "wb") as f:
        f.write(job.notebook)
    return nbformat.read(path, as_version=4)


def _python(source: str) -> str:
    """A cell's code with IPython's syntax (magics, ``!``) as plain Python calls."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        return TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 -- the child reports the syntax error
        return source


class NotebookRun:
    """The one run of a submission: the trusted re-verification (:mod:`autograder.verify`) runs
    the notebook, as nbgrader's autograde asks it to in place of a kernel (:meth:`preprocessor`),
    and then every function's checks; ``result`` holds the authoritative scores, reported as
    soon as they are known."""

    def __init__(self, job: Job, template: str, folder: str, uid: int | None,
                 report: Callable[[Result], None], graded_cells: list[str]):
        self.job, self.template, self.folder, self.uid = job, template, folder, uid
        self.report, self.graded_cells = report, graded_cells
        self.result: Result | None = None
        self.completed = False

    def verify(self, notebook: list[str] | None) -> Verification:
        """Run ``notebook`` (None: only the graded cells, no outputs kept) and the checks."""
        job, started = self.job, time.monotonic()
        verification = verify(
            job.assignment, self.graded_cells, self.template, os.path.join(self.folder, "verify"),
            uid=self.uid, confine=job.sandboxed, timeout=job.timeout, limits=job.limits,
            data_files=_data_files(job, self.template), notebook=notebook,
            capture=job.max_output_bytes if notebook is not None else None)
        checks = [CheckGrade(r.name, r.points, r.max_points, r.reason)
                  for r in verification.results]
        self.result = Result.scored(job.student, job.assignment, checks,
                                    list(job.notes) + verification.notes)
        self.result.timings["verify"] = time.monotonic() - started
        self.completed = notebook is not None and verification.notebook_completed
        self.report(self.result)
        return verification

    def preprocessor(self):
        """An nbconvert preprocessor class that runs the notebook through :meth:`verify` and
        gives each code cell the outputs of that run."""
        from nbconvert.preprocessors import Preprocessor
        from traitlets import Bool

        run = self

        class VerifiedRun(Preprocessor):
            enabled = Bool(True)

            def preprocess(self, nb, resources):
                code = [cell for cell in nb.cells if cell.cell_type == "code"]
                verification = run.verify([_python(cell.source) for cell in code])
                stopped = False
                for cell, ran in zip(code, verification.outputs, strict=True):
                    cell.outputs = ran["outputs"] if ran else []
                    cell.execution_count = ran["execution_count"] if ran else None
                    if ran is None and not verification.notebook_completed and not stopped:
                        stopped = True
                        cell.outputs = [nbformat.v4.new_output(
                            "error", ename="NotebookStopped",
                            evalue="the notebook's run stopped here (see the notes)",
                            traceback=[])]
                return nb, resources

        return VerifiedRun


def _nbgrader(job: Job, template: str, folder: str, run: NotebookRun):
    """nbgrader's API on the job's course folder; the notebook runs in the re-verification."""
    _prepare_job_course(job, template, os.path.join(folder, "course"))

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

    config = _config(job, folder)
    config.Autograde.autograde_preprocessors = [
        run.preprocessor(), IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
        SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    config.GenerateFeedback.preprocessors = [GetGrades, ExplainGrades, CSSHTMLHeaderPreprocessor]
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def _autograded_path(job: Job, folder: str) -> str:
    return os.path.join(folder, "course", "autograded", job.student, job.assignment,
                        f"{job.assignment}.ipynb")


def _autograde(api, job: Job, folder: str, run: NotebookRun) -> Result:
    """nbgrader's autograde, whose notebook run is the re-verification's; then each graded
    cell's score is overridden with the trusted one (nbgrader's manual score). A notebook that
    nbgrader could not take as far as the run is verified as it came, without outputs."""
    started = time.monotonic()
    nbgrader_run = api.autograde(job.assignment, job.student, force=True, create=True)
    if run.result is None:
        run.verify(None)
    result = run.result
    autograded = _autograded_path(job, folder)
    if os.path.isdir(os.path.dirname(autograded)):
        left = remove_special_files(os.path.dirname(autograded))
        if left:
            result.notes.append(f"removed {len(left)} link(s) or special file(s) from the "
                                "notebook's folder")
    per_cell = _cell_errors(autograded)
    result.notebook_ran = bool(nbgrader_run.get("success")) and run.completed
    if not nbgrader_run.get("success"):
        result.notes.append(f"nbgrader could not process the notebook: "
                            f"{_nbgrader_error(nbgrader_run)}")

    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(api.coursedir.db_url, job.course_id) as gb:
        for check in result.checks:
            grade_id = f"test_{check.name}"
            check.kernel_error = per_cell.get(grade_id)
            try:
                grade_row = gb.find_grade(grade_id, job.assignment, job.assignment, job.student)
            except MissingEntry:
                continue
            # The test cells hold no hidden tests: nbgrader's score only says the cell ran.
            check.kernel_score = grade_row.auto_score
            grade_row.manual_score = check.points
            grade_row.needs_manual_grade = False
        gb.db.commit()
    result.timings["nbgrader"] = time.monotonic() - started - result.timings.get("verify", 0)
    return result


def _render_feedback(api, job: Job, folder: str, result: Result) -> None:
    """The autograded notebook and its feedback page (:class:`autograder.feedback.ExplainGrades`
    reads the verdicts from ``results/<student>.json``), as bytes in ``result``."""
    started = time.monotonic()
    autograded = _autograded_path(job, folder)
    if not os.path.exists(autograded):
        return
    try:
        # Written by the kernel's notebook run: read as untrusted.
        result.autograded = read_bytes(autograded, MAX_NOTEBOOK_BYTES)
    except OSError as error:
        result.notes.append(f"the autograded notebook was not kept: {error}")
        return
    results_dir = os.path.join(folder, "results")
    os.makedirs(results_dir, exist_ok=True)
    with open(os.path.join(results_dir, f"{job.student}.json"), "w") as f:
        json.dump(result.to_dict(), f)
    run = api.generate_feedback(job.assignment, job.student, force=True)
    page = os.path.join(folder, "course", "feedback", job.student, job.assignment,
                        f"{job.assignment}.html")
    if run.get("success") and os.path.exists(page):
        result.feedback = read_bytes(page, MAX_NOTEBOOK_BYTES)
    result.timings["feedback"] = time.monotonic() - started


def grade(job: Job, template: str, uid: int | None = None,
          report: Callable[[Result], None] = lambda result: None) -> Result:
    """Grade ``job`` against the unpacked template folder ``template``, with its sandboxes run as
    ``uid`` (root) or as this user (``None``), in a temporary folder of its own; ``report`` gets
    the trusted scores as soon as they are known, before the feedback is rendered."""
    folder = _make_folder(job, uid)
    try:
        nb = _write_submission(job, folder)
        run = NotebookRun(job, template, folder, uid, report,
                          student_cells(nb, _release_notebook(job, template)))
        api = _nbgrader(job, template, folder, run)
        result = _autograde(api, job, folder, run)
        _render_feedback(api, job, folder, result)
        return result
    finally:
        if not job.keep_folder:
            shutil.rmtree(folder, ignore_errors=True)


def limit_own_memory(memory_mb: int) -> None:
    """Cap this process's address space (the soft limit, which the sandboxes it starts may set
    for themselves): whatever the student side wrote, reading it cannot exhaust the machine."""
    limit = max(WORKER_MEMORY_MB, 2 * memory_mb) * 2**20
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    if soft == resource.RLIM_INFINITY or soft > limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def die_with_parent(parent: int) -> None:
    """Linux: end with the engine that started this worker (a Dask worker killed mid-job must
    not leave its job running)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _result_writer():
    """Result lines go to the original stdout; everything else printed goes to stderr."""
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    def write(result: Result) -> None:
        out.write(result.to_json() + "\n")
        out.flush()

    return write


def grade_job(job_json: bytes, template: str, uid: int | None) -> int:
    """Grade the Job ``job_json``, writing Result lines to stdout (the rest of what is printed
    goes to stderr); returns the exit status for the engine."""
    write = _result_writer()
    job = Job.from_json(job_json)
    limit_own_memory(job.limits.memory_mb or 0)
    try:
        write(grade(job, template, uid, report=write))
    except Exception:  # noqa: BLE001 -- reported to the engine, which notes the failure
        lines = [ln for ln in traceback.format_exc().splitlines() if ln.strip()]
        traceback.print_exc()
        print(f"{ERROR_PREFIX}{lines[-1][:300] if lines else '?'}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m autograder.worker",
        description="Grade the job (autograder.records.Job JSON) read from stdin; write Result "
                    "JSON lines to stdout (the trusted scores first, the full result last).")
    parser.add_argument("--template", required=True, metavar="DIR",
                        help="the unpacked template of the job's assignment")
    parser.add_argument("--uid", type=int, default=None,
                        help="(root) the uid leased for this job's sandboxes")
    parser.add_argument("--parent", type=int, default=None,
                        help="pid of the engine; the worker ends when it does")
    args = parser.parse_args(argv)
    if args.parent is not None:
        die_with_parent(args.parent)
    status = grade_job(sys.stdin.buffer.read(MAX_JOB_BYTES), args.template, args.uid)
    # The result is written and the job's folder removed: skip the interpreter's teardown of
    # nbgrader, SQLAlchemy and friends (1.7-2 s per submission).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    main()
