"""``python -m autograder``: release, grade, feedback, export and self-check the assignments."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

from autograder.assignments import ASSIGNMENTS
from autograder.exports import (
    FORMATS,
    ExportError,
    grades_from_history,
    read_roster,
    write_lms_csv,
)
from autograder.pipeline import (
    DEFAULT_COURSE_DIR,
    DEFAULT_SOURCE_DIR,
    Grader,
    SandboxUnavailable,
    Settings,
    summary,
)

# The registry's ids (a live view, in the book's order): the choices of every ID argument.
ASSIGNMENT_IDS = ASSIGNMENTS


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _course_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--course-dir", default=DEFAULT_COURSE_DIR, metavar="DIR",
        help="runtime course folder (nbgrader's submitted/, autograded/, feedback/, gradebook); "
             "default: %(default)s (git-ignored)")
    parser.add_argument(
        "--db", metavar="URL", default=None,
        help="SQLAlchemy URL of the gradebook, e.g. postgresql://user@host/course, for a course "
             "that shares one; default: sqlite:///COURSE_DIR/gradebook.db")
    parser.add_argument(
        "--source-dir", default=DEFAULT_SOURCE_DIR, metavar="DIR",
        help="folder of the instructor's notebooks, SOURCE_DIR/<id>/<id>.ipynb; "
             "default: %(default)s")


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--jobs", "-j", type=_positive_int, default=os.cpu_count() or 1, metavar="N",
        help="submissions graded at once (default: the number of cores, %(default)s)")
    parser.add_argument(
        "--timeout", type=_positive_float, default=60.0, metavar="SECONDS",
        help="time limit of one notebook cell, and of one function's hidden cases in the "
             "re-verification (default: %(default)s)")
    parser.add_argument(
        "--memory-mb", type=_positive_int, default=2048, metavar="MB",
        help="address-space limit of the sandboxed process that runs the notebook and the checks "
             "(default: %(default)s)")
    parser.add_argument(
        "--max-output-kb", type=_positive_int, default=1024, metavar="KB",
        help="output kept per notebook cell; the rest is dropped (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--keep-jobs", action="store_true",
                        help="keep each submission's temporary job folder (for debugging)")
    parser.add_argument(
        "--unsandboxed", action="store_true",
        help="grade even where no bubblewrap sandbox can start (student code then runs as your "
             "user with resource limits only: it can read solutions/ and other submissions, "
             "write your files, reach the network and leave processes behind)")


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings(course_dir=getattr(args, "course_dir", DEFAULT_COURSE_DIR),
                        db_url=getattr(args, "db", None), source_dir=args.source_dir)
    for name in ("jobs", "scheduler", "timeout", "memory_mb", "max_output_kb", "force",
                 "keep_jobs", "unsandboxed"):
        if hasattr(args, name):
            setattr(settings, name, getattr(args, name))
    if hasattr(args, "no_progress"):
        settings.progress = not args.no_progress
    return settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m autograder",
        description="Release the course's assignments, autograde submissions with nbgrader "
                    "(every function scored by the trusted re-verification), and produce "
                    "feedback and a grades CSV.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("release", help="generate the student versions into notebooks/",
                       description="Generate the student versions of the assignments into "
                                   "notebooks/<id>/ (solutions removed, hidden tests removed).")
    p.add_argument("ids", nargs="*", metavar="ID",
                   help=f"assignments to release (default: all of {', '.join(ASSIGNMENT_IDS)})")

    p = sub.add_parser(
        "grade", help="autograde a folder of submissions",
        description="Import SUBMISSIONS (a folder of <student>.ipynb files, <student>/ folders or "
                    "<student>.zip files, as an LMS exports them), autograde them in parallel, "
                    "generate feedback and write the grades CSV. Unchanged submissions are "
                    "skipped; a re-submission replaces the grade, the old one stays in the "
                    "history.")
    p.add_argument("id", choices=ASSIGNMENT_IDS, metavar="ID",
                   help=f"the assignment ({', '.join(ASSIGNMENT_IDS)})")
    p.add_argument("submissions", metavar="SUBMISSIONS", help="folder exported by the LMS")
    p.add_argument("--force", action="store_true",
                   help="grade every submission again, even unchanged ones")
    p.add_argument("--output", "-o", metavar="CSV",
                   help="where to write the grades (default: COURSE_DIR/grades-<id>.csv)")
    p.add_argument(
        "--scheduler", metavar="ADDRESS",
        help="grade on a running Dask cluster, e.g. tcp://HOST:8786 (started with 'dask "
             "scheduler' and 'dask worker', every worker with this grader and bubblewrap; "
             "the workers' threads then decide how many jobs run at once, not --jobs); "
             "default: an in-process cluster of --jobs threads on this machine")
    _course_options(p)
    _run_options(p)

    p = sub.add_parser("feedback", help="render the feedback HTML again",
                       description="Render the feedback of every graded student of ID again, "
                                   "into COURSE_DIR/feedback/<student>/<id>/.")
    p.add_argument("id", choices=ASSIGNMENT_IDS, metavar="ID", help="the assignment")
    _course_options(p)

    p = sub.add_parser("export", help="write the grades CSV, or a Canvas or Moodle import file",
                       description="Write the current grades of ID: the grader's CSV (a row per "
                                   "student with the points of each function, the total, the "
                                   "status and the reasons), or a file that the gradebook of "
                                   "Canvas or Moodle imports (Canvas: Grades > Import; Moodle: "
                                   "Grades > Import > CSV file).")
    p.add_argument("id", choices=ASSIGNMENT_IDS, metavar="ID", help="the assignment")
    p.add_argument("--format", choices=FORMATS, default="csv",
                   help="csv: the grader's CSV; canvas: Canvas's gradebook import (Student, ID, "
                        "SIS User ID, SIS Login ID, Section, the assignment, and a Points "
                        "Possible row); moodle: Moodle's CSV grade import (Name, Username, ID "
                        "number, Email address, the grade and its feedback; map the identifier "
                        "and the columns at import). Default: %(default)s")
    p.add_argument("--roster", metavar="FILE",
                   help="CSV mapping the grader's student ids to the LMS's identities, columns "
                        "student (required), name, canvas_id, sis_user_id, sis_login_id, "
                        "section (Canvas), username, id_number, email (Moodle); see "
                        "autograder/exports.py. Without it the grader's ids are written as "
                        "logins (Canvas SIS Login ID, Moodle Username)")
    p.add_argument("--missing-zero", action="store_true",
                   help="give roster students without a submission 0 instead of an empty grade")
    p.add_argument("--column-title", metavar="TITLE",
                   help="title of the grade column; for Canvas, the assignment's name and Canvas "
                        "id as in Canvas's own export, e.g. 'RNN (123456)' (default: ID, which "
                        "Canvas matches by name or creates as a new assignment)")
    p.add_argument("--output", "-o", metavar="CSV",
                   help="output file (default: COURSE_DIR/grades-<id>.csv, or "
                        "grades-<id>-canvas.csv, grades-<id>-moodle.csv)")
    _course_options(p)

    p = sub.add_parser(
        "selfcheck", help="check that the solution gets full marks and the stub zero",
        description="Grade the instructor's notebook (must get full marks) and nbgrader's student "
                    "version (must get zero) of each assignment, through the whole pipeline, in "
                    "a temporary course folder. Run it before a release.")
    p.add_argument("ids", nargs="*", metavar="ID",
                   help="assignments to check (default: every one with a source notebook)")
    p.add_argument("--source-dir", default=DEFAULT_SOURCE_DIR, metavar="DIR",
                   help="folder of the instructor's notebooks (default: %(default)s)")
    _run_options(p)
    return parser


def _grade(args) -> int:
    from autograder.engine import EngineUnavailable

    grader = Grader(_settings(args))
    try:
        outcome = grader.grade(args.id, args.submissions)
        if args.output:
            outcome.csv_path = grader.export(args.id, args.output)
    except EngineUnavailable as error:
        print(f"grade: {error}", file=sys.stderr)
        return 2
    finally:
        grader.close()
    print(summary(outcome))
    print(f"feedback: {os.path.join(os.path.abspath(args.course_dir), 'feedback')}/"
          f"<student>/{args.id}/{args.id}.html")
    return 0


def _export(grader: Grader, args) -> int:
    if args.format == "csv":
        if args.roster or args.missing_zero or args.column_title:
            print("export: --roster, --missing-zero and --column-title apply to --format canvas "
                  "or moodle", file=sys.stderr)
            return 2
        print(grader.export(args.id, args.output))
        return 0
    from autograder import checks as checks_module

    path = args.output or grader.course.path(f"grades-{args.id}-{args.format}.csv")
    try:
        roster = read_roster(args.roster, args.format) if args.roster else None
        export = write_lms_csv(
            path, args.format, grades_from_history(grader.history.latest(args.id)),
            points_possible=sum(check.points for check in checks_module.CHECKS[args.id]),
            title=args.column_title or args.id, roster=roster, missing_zero=args.missing_zero)
    except ExportError as error:
        print(f"export: {error}", file=sys.stderr)
        return 2
    for warning in export.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(export.path)
    return 0


def _selfcheck(args) -> int:
    ids = args.ids or [a for a in ASSIGNMENT_IDS
                       if os.path.exists(os.path.join(args.source_dir, a, f"{a}.ipynb"))]
    unknown = sorted(set(ids) - set(ASSIGNMENT_IDS))
    if unknown:
        print(f"unknown assignment(s) {unknown}; expected some of {list(ASSIGNMENT_IDS)}",
              file=sys.stderr)
        return 2
    failures = 0
    for assignment in ids:
        work = tempfile.mkdtemp(prefix=f"autograder-selfcheck-{assignment}-")
        try:
            failures += selfcheck(assignment, work, args)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


def selfcheck(assignment: str, work: str, args) -> int:
    """Grade the solution and the student version of ``assignment``; the number of failures."""
    settings = _settings(args)
    settings.course_dir = os.path.join(work, "course")
    settings.force = True
    grader = Grader(settings)
    try:
        template = grader.course.prepare(assignment)
        folder = os.path.join(work, "submissions")
        os.makedirs(folder)
        shutil.copy(grader.course.source_notebook(assignment),
                    os.path.join(folder, "solution.ipynb"))
        shutil.copy(os.path.join(template, "release", assignment, f"{assignment}.ipynb"),
                    os.path.join(folder, "student-version.ipynb"))
        outcome = grader.grade(assignment, folder)
    finally:
        grader.close()
    results = {r.student: r for r in outcome.graded}
    failures = 0
    for student, want in (("solution", "max"), ("student-version", 0)):
        result = results[student]
        expected = result.max_total if want == "max" else 0
        # The notebook (without hidden tests) must run to its end, and only
        # the trusted re-verification scores.
        kernel_ok = bool(result.notebook_ran)
        ok = result.total == expected and kernel_ok
        failures += not ok
        print(f"{assignment}: {student}: {result.total:g}/{result.max_total:g} "
              f"(the notebook ran: {'yes' if kernel_ok else 'no'}) "
              f"{'ok' if ok else 'FAILED'}")
        for check in result.checks:
            if (check.points < check.max_points) == (want == "max"):
                print(f"  {check.name}: {check.points:g}/{check.max_points:g} "
                      f"{check.reason or ''}")
        if not ok and result.notes:
            print("  notes: " + "; ".join(result.notes))
    return failures


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "release":
        from autograder.release import release

        for path in release(args.ids or None):
            print(path)
        return 0
    try:
        if args.command == "grade":
            return _grade(args)
        if args.command == "selfcheck":
            return _selfcheck(args)
    except SandboxUnavailable as error:
        print(f"grade: {error}", file=sys.stderr)
        return 2
    grader = Grader(_settings(args))
    try:
        if args.command == "export":
            return _export(grader, args)
        else:
            print(f"feedback rendered for {grader.feedback(args.id)} student(s) in "
                  f"{grader.course.path('feedback')}")
    finally:
        grader.close()
    return 0
