"""From an LMS export to grades and feedback: the steps behind ``python -m autograder grade``.

Grading one assignment::

    LMS export ──collect──▶ Submission ──▶ Job ──▶ Engine (Dask: in-process, or --scheduler)
                                                       │ a worker process forked per job,
                                                       │ student code in sandboxes
    course folder, gradebook, history ◀──merge── Result ◀┘
          │
          └──▶ grades CSV, feedback pages, summary

1. :meth:`Course.template` builds, once per version of the source notebook and checks, a
   template (nbgrader's gradebook for the assignment, the check cases and the reference outputs)
   and packs it for the workers (:mod:`autograder.course`);
2. :func:`autograder.submissions.collect` reads the export; submissions that cannot be graded get
   a zero and the reason right away, unchanged ones (same SHA-256, same grader) are skipped;
3. each remaining submission becomes a :class:`autograder.records.Job`, graded by the
   :class:`autograder.engine.Engine` (``--jobs`` at once, or on a Dask cluster);
4. the parent merges each :class:`autograder.records.Result` as it arrives, serially and cheaply:
   files into the course folder, scores into the gradebook and the history; then writes the CSV
   and prints a summary. Nothing else writes the course folder.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field

import nbformat

from autograder import checks as checks_module
from autograder.course import Course
from autograder.engine import Engine
from autograder.feedback import standalone_html
from autograder.gradebook import History, reason_text, update_nbgrader, write_csv
from autograder.records import Job, Result
from autograder.sandbox import INSTALL_HINT, Isolation, Limits, probe, unprotected
from autograder.submissions import Submission, collect
from autograder.untrusted import printable

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(PACKAGE_DIR)
DEFAULT_COURSE_DIR = os.path.join(PACKAGE_DIR, ".work")
DEFAULT_SOURCE_DIR = os.path.join(PACKAGE_DIR, "source")
COURSE_ID = "sequence-models"


@dataclass
class Settings:
    """Everything a grading run can be told from the command line."""

    course_dir: str = DEFAULT_COURSE_DIR
    db_url: str | None = None
    source_dir: str = DEFAULT_SOURCE_DIR
    course_id: str = COURSE_ID
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    scheduler: str | None = None   # a Dask scheduler's address; None: an in-process cluster
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

    graded: list[Result] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    csv_path: str = ""
    isolation: Isolation | None = None
    seconds: float = 0.0


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

    def max_points(self, assignment: str) -> dict[str, float]:
        return {c.name: c.points for c in checks_module.CHECKS[assignment]}

    def grade(self, assignment: str, folder: str, isolation: Isolation | None = None) -> Outcome:
        started = time.monotonic()
        outcome = Outcome(isolation=isolation or self._isolation())
        if not outcome.isolation.sandboxed and not self.settings.unsandboxed:
            raise SandboxUnavailable(
                f"no sandbox for student code: {outcome.isolation.problem}.\nTo grade safely, "
                f"{INSTALL_HINT}.\nOr pass --unsandboxed to grade anyway: "
                f"{unprotected()}.")
        template = self.course.template(assignment)
        submissions = collect(folder, assignment, self.course.known_grade_ids())
        latest = self.history.latest(assignment)
        todo: dict[str, Submission] = {}
        for sub in submissions:
            previous = latest.get(sub.student)
            if (not self.settings.force and previous is not None
                    and previous["sha256"] == sub.sha256
                    and previous["fingerprint"] == template.ref.fingerprint):
                outcome.skipped.append(sub.student)
            elif sub.problem is not None:
                invalid = Result.unscored(sub.student, assignment, self.max_points(assignment),
                                          "invalid", problem=sub.problem, notes=sub.notes)
                outcome.graded.append(self._merge(invalid, sub, template.ref.fingerprint))
            else:
                todo[sub.student] = sub
        if todo:
            jobs = [self._job(sub, assignment, template, outcome.isolation)
                    for sub in todo.values()]
            bar = _progress(len(jobs), self.settings.progress, assignment)
            try:
                with Engine(self.settings.jobs, self.settings.scheduler) as engine:
                    for result in engine.grade(jobs, template):
                        outcome.graded.append(
                            self._merge(result, todo[result.student], template.ref.fingerprint))
                        bar.update(1)
            finally:
                bar.close()
        outcome.csv_path = self.export(assignment)
        outcome.seconds = time.monotonic() - started
        return outcome

    def _isolation(self) -> Isolation:
        """What will protect the machines from student code: probed here, or, with a Dask
        cluster, the sandbox every worker must start (a worker that cannot refuses the job;
        ``--unsandboxed`` there means resource limits only, on every worker)."""
        if self.settings.scheduler is None:
            return probe()
        if self.settings.unsandboxed:
            return Isolation(False, False, "--unsandboxed with --scheduler")
        return Isolation(True, False)

    def _job(self, sub: Submission, assignment: str, template, isolation: Isolation) -> Job:
        s = self.settings
        n_cells = len(nbformat.read(self.course.source_notebook(assignment), as_version=4).cells)
        n_checks = len(checks_module.CHECKS[assignment])
        # Every cell may time out in the notebook's run, and every check (twice if the run dies).
        time_limit = s.timeout * (n_cells + 2 * n_checks + 4) + 180
        return Job(assignment=assignment, student=sub.student,
                   notebook=nbformat.writes(sub.notebook).encode(), template=template.ref,
                   course_id=s.course_id,
                   limits=Limits(memory_mb=s.memory_mb, cpu_s=int(time_limit)),
                   timeout=s.timeout, time_limit=time_limit,
                   max_output_bytes=s.max_output_kb * 1000, sandboxed=isolation.sandboxed,
                   notes=list(sub.notes), keep_folder=s.keep_jobs)

    def _merge(self, result: Result, sub: Submission, fingerprint: str) -> Result:
        """Bring one result into the course folder, the gradebook and the history (serially)."""
        course, student, assignment = self.course, result.student, result.assignment
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
        if result.autograded is not None:
            _write_file(course.path("autograded", student, assignment, f"{assignment}.ipynb"),
                        result.autograded)
        page = result.feedback
        if page is None:
            page = standalone_html(student, assignment, result.to_dict()).encode()
        _write_file(course.path("feedback", student, assignment, f"{assignment}.html"), page)
        results_dir = course.path("results", assignment)
        os.makedirs(results_dir, exist_ok=True)
        with open(os.path.join(results_dir, f"{student}.json"), "w") as f:
            json.dump(result.to_dict(), f, indent=1)
        update_nbgrader(course.db_url, self.settings.course_id, assignment, result)
        self.history.record(assignment, result, sub.sha256, fingerprint)
        return result

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

        api = self.course.nbgrader_api(self.course.root, self.course.db_url)
        api.config.GenerateFeedback.preprocessors = [GetGrades, ExplainGrades,
                                                     CSSHTMLHeaderPreprocessor]
        api.config.ExplainGrades.results_dir = self.course.path("results", assignment)
        api.config.HTMLExporter.sanitize_html = True
        api.config.GenerateFeedback.exporter_class = "autograder.feedback.SanitizedHTMLExporter"
        count = 0
        for student, row in sorted(self.history.latest(assignment).items()):
            result = History.result(row)
            autograded = self.course.path("autograded", student, assignment,
                                          f"{assignment}.ipynb")
            if result.problem is None and os.path.exists(autograded):
                outcome = api.generate_feedback(assignment, student, force=True)
                count += bool(outcome["success"])
            else:
                page = standalone_html(student, assignment, result.to_dict()).encode()
                _write_file(self.course.path("feedback", student, assignment,
                                             f"{assignment}.html"), page)
                count += 1
        return count


def _write_file(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


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
    graded = sorted(outcome.graded, key=lambda r: r.student)
    lines = [f"graded {len(graded)} submission(s), skipped {len(outcome.skipped)} unchanged, "
             f"in {outcome.seconds:.0f} s"]
    if outcome.isolation is not None:
        lines.append(f"isolation: {outcome.isolation.describe()}")
    lost = [r for r in graded if r.total < r.max_total or r.status in ("error", "invalid")]
    if lost:
        lines.append("points lost:")
        for r in lost:
            lines.append(f"  {r.student}: {r.total:g}/{r.max_total:g} [{r.status}] "
                         f"{printable(reason_text(r)[:400])}")
    lines.append(f"grades: {outcome.csv_path}")
    return "\n".join(lines)
