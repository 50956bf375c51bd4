"""From an LMS export to grades and feedback: the steps behind ``python -m autograder``.

The course folder (``--course-dir``, git-ignored ``autograder/.work`` by default) holds nbgrader's
layout: ``source/``, ``release/``, ``submitted/<student>/<id>/``, ``autograded/``, ``feedback/``,
the SQLite gradebook (unless ``--db``), plus ``results/<id>/<student>.json`` (the verdicts),
``history/`` (replaced feedback) and ``.grader/`` (templates keyed by the grader's fingerprint).

Grading one assignment:

1. :meth:`Course.prepare` builds, once per version of the source notebook and checks, a template:
   nbgrader's gradebook for the assignment, the check cases and the reference outputs;
2. :func:`autograder.submissions.collect` reads the export; submissions that cannot be graded get
   a zero and the reason right away, unchanged ones (same SHA-256, same grader) are skipped;
3. each remaining submission is graded by its own ``python -m autograder.worker`` process in its own
   temporary course folder (``--jobs`` at once; as root, each job leases a uid of its own);
4. the parent merges each result as it arrives, serially and cheaply: files into the course folder,
   scores into the gradebook and the history; then writes the CSV and prints a summary.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

import nbformat

from autograder import checks as checks_module
from autograder.feedback import standalone_html
from autograder.gradebook import History, reason_text, update_nbgrader, write_csv
from autograder.sandbox import (
    INSTALL_HINT,
    Isolation,
    Limits,
    kill_group,
    lease_uid,
    probe,
    unprotected,
)
from autograder.submissions import Submission, collect, grade_ids
from autograder.untrusted import copy_files, printable, read_text

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(PACKAGE_DIR)
DEFAULT_COURSE_DIR = os.path.join(PACKAGE_DIR, ".work")
DEFAULT_SOURCE_DIR = os.path.join(PACKAGE_DIR, "source")
COURSE_ID = "sequence-models"
MAX_RESULT_BYTES = 4 * 2**20   # a worker's result.json or error report


@dataclass
class Settings:
    """Everything a grading run can be told from the command line."""

    course_dir: str = DEFAULT_COURSE_DIR
    db_url: str | None = None
    source_dir: str = DEFAULT_SOURCE_DIR
    course_id: str = COURSE_ID
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    timeout: float = 60.0
    memory_mb: int = 2048
    max_output_kb: int = 1024
    force: bool = False
    progress: bool = True
    keep_jobs: bool = False
    unsandboxed: bool = False   # grade even where no sandbox can start (limits only)


class SandboxUnavailable(RuntimeError):
    """No sandbox can start on this machine, and ``--unsandboxed`` was not given."""


@dataclass
class Outcome:
    """What one grade run did, for the summary and the tests."""

    graded: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    csv_path: str = ""
    isolation: Isolation | None = None
    seconds: float = 0.0


def _sha_files(paths: list[str]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.encode())
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


class Course:
    """The runtime course folder and its gradebook."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.root = os.path.abspath(settings.course_dir)
        os.makedirs(self.root, exist_ok=True)
        # Gradebook, submissions and feedback live here: no other user may enter (unless the
        # folder is someone else's, shared on purpose).
        if os.stat(self.root).st_uid == os.geteuid():
            os.chmod(self.root, 0o700)
        self.db_url = settings.db_url or f"sqlite:///{os.path.join(self.root, 'gradebook.db')}"

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def source_notebook(self, assignment: str) -> str:
        path = os.path.join(self.settings.source_dir, assignment, f"{assignment}.ipynb")
        if not os.path.exists(path):
            raise FileNotFoundError(f"no source notebook for assignment {assignment!r}: {path}")
        return path

    def fingerprint(self, assignment: str) -> str:
        """Changes whenever the source notebook, the checks or the grader change."""
        source = os.path.join(self.settings.source_dir, assignment)
        files = sorted(os.path.join(d, f) for d, _, fs in os.walk(source) for f in fs
                       if ".ipynb_checkpoints" not in d)
        grader = sorted(os.path.join(PACKAGE_DIR, f) for f in os.listdir(PACKAGE_DIR)
                        if f.endswith(".py"))
        checks = sorted(os.path.join(PACKAGE_DIR, "checks", f)
                        for f in os.listdir(os.path.join(PACKAGE_DIR, "checks"))
                        if f.endswith(".py"))
        return _sha_files(files + grader + checks)[:16]

    def _nbgrader_api(self, root: str, db_url: str):
        from nbgrader.apps import NbGraderAPI
        from nbgrader.coursedir import CourseDirectory
        from traitlets.config import Config

        c = Config()
        c.CourseDirectory.root = root
        c.CourseDirectory.db_url = db_url
        c.CourseDirectory.course_id = self.settings.course_id
        c.GenerateAssignment.create_assignment = True
        c.ClearHiddenTests.begin_test_delimeter = "BEGIN HIDDEN TESTS"
        c.ClearHiddenTests.end_test_delimeter = "END HIDDEN TESTS"
        return NbGraderAPI(coursedir=CourseDirectory(config=c), config=c)

    def _generate(self, root: str, db_url: str, assignment: str) -> None:
        target = os.path.join(root, "source", assignment)
        if os.path.exists(target):
            shutil.rmtree(target)
        shutil.copytree(os.path.join(self.settings.source_dir, assignment), target,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        result = self._nbgrader_api(root, db_url).generate_assignment(assignment, force=True)
        if not result["success"]:
            raise RuntimeError(f"nbgrader generate_assignment failed for {assignment!r}:\n"
                               f"{result.get('log')}\n{result.get('error')}")

    def prepare(self, assignment: str) -> str:
        """The template folder of ``assignment`` (built if the fingerprint is new)."""
        if assignment not in checks_module.CHECKS:
            raise KeyError(f"unknown assignment {assignment!r}; expected one of "
                           f"{sorted(checks_module.CHECKS)}")
        self.source_notebook(assignment)
        fingerprint = self.fingerprint(assignment)
        template = self.path(".grader", f"{assignment}-{fingerprint}")
        if not os.path.exists(template):
            from autograder.verify import prepare_reference

            building = tempfile.mkdtemp(prefix=f".{assignment}-", dir=self.path())
            self._generate(building, f"sqlite:///{os.path.join(building, 'gradebook.db')}",
                           assignment)
            prepare_reference(assignment, building)
            os.makedirs(os.path.dirname(template), exist_ok=True)
            os.replace(building, template)
        # The course's own gradebook must know the assignment (and its current version).
        marker = self.path(".grader", f"main-{assignment}.json")
        wanted = {"fingerprint": fingerprint, "db": self.db_url}
        current = json.load(open(marker)) if os.path.exists(marker) else None
        if current != wanted:
            self._generate(self.root, self.db_url, assignment)
            with open(marker, "w") as f:
                json.dump(wanted, f)
        return template

    def known_grade_ids(self) -> dict[str, set[str]]:
        known = {}
        for assignment in checks_module.CHECKS:
            path = os.path.join(self.settings.source_dir, assignment, f"{assignment}.ipynb")
            if os.path.exists(path):
                known[assignment] = grade_ids(nbformat.read(path, as_version=4))
        return known


def _problem_result(submission: Submission, assignment: str) -> dict:
    checks = checks_module.CHECKS[assignment]
    return {
        "student": submission.student, "assignment": assignment, "problem": submission.problem,
        "checks": [{"name": c.name, "points": 0, "max_points": c.points, "reason": None,
                    "kernel": None, "kernel_score": None} for c in checks],
        "notes": submission.notes, "total": 0, "max_total": sum(c.points for c in checks),
        "status": "invalid", "feedback": None, "autograded": None,
    }


def _status(result: dict) -> str:
    if result.get("problem"):
        return "invalid"
    if result["total"] >= result["max_total"]:
        return "full marks"
    return "partial" if result["total"] > 0 else "zero"


class _Runner:
    """Runs worker processes, one per submission, ``--jobs`` at once (as root: each job with a
    uid of its own, leased for as long as the job runs)."""

    def __init__(self, course: Course, assignment: str, template: str, isolation: Isolation):
        self.course, self.assignment, self.template = course, assignment, template
        self.isolation = isolation
        s = course.settings
        self.root = os.geteuid() == 0
        self.jobs_root = tempfile.mkdtemp(prefix="autograder-jobs-")
        # Root: each job's folder belongs to its own uid, which must pass through (not list) this.
        os.chmod(self.jobs_root, 0o711 if self.root else 0o700)
        source = os.path.join(template, "source", assignment)
        self.data_files = sorted(os.path.join(source, f) for f in os.listdir(source)
                                 if os.path.isfile(os.path.join(source, f))
                                 and not f.endswith(".ipynb"))
        n_cells = len(nbformat.read(course.source_notebook(assignment), as_version=4).cells)
        n_checks = len(checks_module.CHECKS[assignment])
        # Every cell may time out in the kernel and every check in the verification.
        self.worker_timeout = s.timeout * (n_cells + 2 * n_checks + 4) + 180

    def close(self) -> None:
        if not self.course.settings.keep_jobs:
            shutil.rmtree(self.jobs_root, ignore_errors=True)

    def run(self, submission: Submission) -> dict:
        lease = lease_uid() if self.root and self.isolation.sandboxed else None
        try:
            return self._run(submission, lease.uid if lease else None)
        finally:
            if lease:
                lease.release()

    def _run(self, submission: Submission, uid: int | None) -> dict:
        s = self.course.settings
        job_dir = tempfile.mkdtemp(prefix=f"{submission.student[:20]}-", dir=self.jobs_root)
        if uid is not None:
            os.chown(job_dir, uid, uid)
        os.chmod(job_dir, 0o700)
        submitted = os.path.join(job_dir, "course", "submitted", submission.student,
                                 self.assignment)
        os.makedirs(submitted)
        os.chmod(os.path.join(job_dir, "course", "submitted"), 0o700)
        nbformat.write(submission.notebook, os.path.join(submitted, f"{self.assignment}.ipynb"))
        job = {
            "assignment": self.assignment, "student": submission.student, "job_dir": job_dir,
            "template_dir": self.template, "course_id": s.course_id, "uid": uid,
            "sandboxed": self.isolation.sandboxed, "timeout": s.timeout,
            "limits": Limits(memory_mb=s.memory_mb, cpu_s=int(self.worker_timeout)).__dict__,
            "max_output_bytes": s.max_output_kb * 1000, "data_files": self.data_files,
            "notes": submission.notes,
        }
        job_path = os.path.join(job_dir, "job.json")
        with open(job_path, "w") as f:
            json.dump(job, f)
        started = time.monotonic()
        with open(os.path.join(job_dir, "worker.log"), "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "autograder.worker", job_path],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True, cwd=job_dir)
            try:
                proc.wait(self.worker_timeout)
            except subprocess.TimeoutExpired:
                pass
            # The worker's sandboxes die with it (bubblewrap's --die-with-parent).
            kill_group(proc.pid)
            proc.wait()
        result_path = os.path.join(job_dir, "results", f"{submission.student}.json")
        result = _read_result(result_path)
        if result is None:
            result = _problem_result(submission, self.assignment)
            result["problem"] = None
            result["status"] = "error"
            result["notes"].append(_worker_failure(job_dir, proc.returncode,
                                                   time.monotonic() - started))
        elif proc.returncode != 0:
            result["notes"].append(_worker_failure(job_dir, proc.returncode,
                                                   time.monotonic() - started))
        result["_job_dir"] = job_dir
        return result


def _read_result(path: str) -> dict | None:
    """The worker's result, if it wrote a sensible one."""
    try:
        result = json.loads(read_text(path, MAX_RESULT_BYTES))
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) and isinstance(result.get("checks"), list) else None


def _worker_failure(job_dir: str, returncode: int | None, elapsed: float) -> str:
    error_file = os.path.join(job_dir, "worker-error.txt")
    if os.path.exists(error_file):
        lines = [ln for ln in _read_tail(error_file).splitlines() if ln.strip()]
        return f"the grader failed on this submission: {lines[-1][:300] if lines else '?'}"
    if returncode is not None and returncode < 0:
        return f"the grading process was killed after {elapsed:.0f} s (signal {-returncode})"
    return f"the grading process stopped with status {returncode} after {elapsed:.0f} s"


def _read_tail(path: str) -> str:
    try:
        return read_text(path, MAX_RESULT_BYTES)
    except OSError as error:
        return str(error)


def _ensure_scripts_on_path() -> None:
    """nbgrader runs its environment's ``alembic`` script: find it without an activated venv."""
    scripts = os.path.dirname(sys.executable)
    if scripts not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")


class Grader:
    """The course-level operations of the command line."""

    def __init__(self, settings: Settings):
        _ensure_scripts_on_path()
        self.settings = settings
        self.course = Course(settings)
        self.history = History(self.course.db_url, settings.course_id)

    def close(self) -> None:
        self.history.close()

    def check_names(self, assignment: str) -> list[str]:
        return [c.name for c in checks_module.CHECKS[assignment]]

    def grade(self, assignment: str, folder: str, isolation: Isolation | None = None) -> Outcome:
        started = time.monotonic()
        outcome = Outcome(isolation=isolation or probe())
        if not outcome.isolation.sandboxed and not self.settings.unsandboxed:
            raise SandboxUnavailable(
                f"no sandbox for student code: {outcome.isolation.problem}.\nTo grade safely, "
                f"{INSTALL_HINT}.\nOr pass --unsandboxed to grade anyway: "
                f"{unprotected()}.")
        template = self.course.prepare(assignment)
        fingerprint = self.course.fingerprint(assignment)
        submissions = collect(folder, assignment, self.course.known_grade_ids())
        latest = self.history.latest(assignment)
        todo: list[Submission] = []
        for sub in submissions:
            previous = latest.get(sub.student)
            if (not self.settings.force and previous is not None
                    and previous["sha256"] == sub.sha256
                    and previous["fingerprint"] == fingerprint):
                outcome.skipped.append(sub.student)
            elif sub.problem is not None:
                self._merge(assignment, _problem_result(sub, assignment), sub, fingerprint)
                outcome.graded.append(self._last)
            else:
                todo.append(sub)
        if todo:
            runner = _Runner(self.course, assignment, template, outcome.isolation)
            bar = _progress(len(todo), self.settings.progress, assignment)
            try:
                with ThreadPoolExecutor(max_workers=self.settings.jobs) as pool:
                    futures = {pool.submit(runner.run, sub): sub for sub in todo}
                    for future in as_completed(futures):
                        sub = futures[future]
                        self._merge(assignment, future.result(), sub, fingerprint)
                        outcome.graded.append(self._last)
                        bar.update(1)
            finally:
                bar.close()
                runner.close()
        outcome.csv_path = self.export(assignment)
        outcome.seconds = time.monotonic() - started
        return outcome

    def _merge(self, assignment: str, result: dict, sub: Submission, fingerprint: str) -> None:
        """Bring one result into the course folder, the gradebook and the history (serially)."""
        job_dir = result.pop("_job_dir", None)
        result["status"] = result.get("status") if result.get("status") == "error" else _status(
            result)
        student = result["student"]
        course = self.course
        for kind in ("submitted", "autograded", "feedback"):
            target = course.path(kind, student, assignment)
            if kind == "feedback" and os.path.exists(target):
                stamp = time.strftime("%Y%m%dT%H%M%S")
                archive = course.path("history", student, assignment, stamp)
                os.makedirs(os.path.dirname(archive), exist_ok=True)
                shutil.move(target, archive)
            elif os.path.exists(target):
                shutil.rmtree(target)
        submitted = course.path("submitted", student, assignment)
        os.makedirs(submitted)
        if sub.notebook is not None:
            nbformat.write(sub.notebook, os.path.join(submitted, f"{assignment}.ipynb"))
        else:
            with open(os.path.join(submitted, "problem.txt"), "w") as f:
                f.write(f"{sub.origin}: {sub.problem}\n")
        for kind in ("autograded", "feedback"):
            source = os.path.join(job_dir, "course", kind, student, assignment) if job_dir else ""
            if result.get(kind) and os.path.isdir(source):
                # The kernel ran in the autograded folder: links and FIFOs there are not copied.
                copy_files(source, course.path(kind, student, assignment))
                result[kind] = course.path(kind, student, assignment,
                                           os.path.basename(result[kind]))
            else:
                result[kind] = None
        if result["feedback"] is None:
            folder = course.path("feedback", student, assignment)
            os.makedirs(folder, exist_ok=True)
            result["feedback"] = os.path.join(folder, f"{assignment}.html")
            with open(result["feedback"], "w") as f:
                f.write(standalone_html(student, assignment, result))
        results_dir = course.path("results", assignment)
        os.makedirs(results_dir, exist_ok=True)
        with open(os.path.join(results_dir, f"{student}.json"), "w") as f:
            json.dump(result, f, indent=1)
        update_nbgrader(course.db_url, self.settings.course_id, assignment, result)
        self.history.record(assignment, result, sub.sha256, fingerprint)
        if job_dir and not self.settings.keep_jobs:
            shutil.rmtree(job_dir, ignore_errors=True)
        self._last = result

    def export(self, assignment: str, path: str | None = None) -> str:
        path = path or self.course.path(f"grades-{assignment}.csv")
        write_csv(path, assignment, self.check_names(assignment),
                  self.history.latest(assignment))
        return path

    def feedback(self, assignment: str) -> int:
        """Render the feedback of every graded student again (e.g. after a manual change)."""
        from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
        from nbgrader.preprocessors import GetGrades

        from autograder.feedback import ExplainGrades

        api = self.course._nbgrader_api(self.course.root, self.course.db_url)
        api.config.GenerateFeedback.preprocessors = [GetGrades, ExplainGrades,
                                                     CSSHTMLHeaderPreprocessor]
        api.config.ExplainGrades.results_dir = self.course.path("results", assignment)
        api.config.HTMLExporter.sanitize_html = True
        api.config.GenerateFeedback.exporter_class = "autograder.feedback.SanitizedHTMLExporter"
        count = 0
        for student, row in sorted(self.history.latest(assignment).items()):
            result = json.loads(row["result"])
            if result.get("autograded") and os.path.exists(result["autograded"]):
                outcome = api.generate_feedback(assignment, student, force=True)
                count += bool(outcome["success"])
            else:
                folder = self.course.path("feedback", student, assignment)
                os.makedirs(folder, exist_ok=True)
                with open(os.path.join(folder, f"{assignment}.html"), "w") as f:
                    f.write(standalone_html(student, assignment, result))
                count += 1
        return count


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool, assignment: str):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=f"grading {assignment}", unit="submission", file=sys.stderr)


def summary(outcome: Outcome) -> str:
    """The text printed after a grade run: counts, isolation, and every student who lost points."""
    graded = sorted(outcome.graded, key=lambda r: r["student"])
    lines = [f"graded {len(graded)} submission(s), skipped {len(outcome.skipped)} unchanged, "
             f"in {outcome.seconds:.0f} s"]
    if outcome.isolation is not None:
        lines.append(f"isolation: {outcome.isolation.describe()}")
    lost = [r for r in graded if r["total"] < r["max_total"] or r["status"] in ("error", "invalid")]
    if lost:
        lines.append("points lost:")
        for r in lost:
            lines.append(f"  {r['student']}: {r['total']:g}/{r['max_total']:g} [{r['status']}] "
                         f"{printable(reason_text(r)[:400])}")
    lines.append(f"grades: {outcome.csv_path}")
    return "\n".join(lines)
