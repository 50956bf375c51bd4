"""``python -m autograder``: release, grade, feedback, export and self-check the assignments."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

from autograder.pipeline import (
    DEFAULT_COURSE_DIR,
    DEFAULT_SOURCE_DIR,
    Grader,
    SandboxUnavailable,
    Settings,
    summary,
)

ASSIGNMENT_IDS = ("rnn", "lstm_gru", "convlstm", "ctc")


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
        help="address-space limit of the student's kernel and of the re-verification process "
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
    for name in ("jobs", "timeout", "memory_mb", "max_output_kb", "force", "keep_jobs",
                 "unsandboxed"):
        if hasattr(args, name):
            setattr(settings, name, getattr(args, name))
    if hasattr(args, "no_progress"):
        settings.progress = not args.no_progress
    return settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m autograder",
        description="Release the course's assignments, autograde submissions with nbgrader "
                    "(every function re-verified outside the student's kernel), and produce "
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
    _course_options(p)
    _run_options(p)

    p = sub.add_parser("feedback", help="render the feedback HTML again",
                       description="Render the feedback of every graded student of ID again, "
                                   "into COURSE_DIR/feedback/<student>/<id>/.")
    p.add_argument("id", choices=ASSIGNMENT_IDS, metavar="ID", help="the assignment")
    _course_options(p)

    p = sub.add_parser("export", help="write the grades CSV",
                       description="Write the current grades of ID: a row per student with the "
                                   "points of each function, the total, the status and the "
                                   "reasons.")
    p.add_argument("id", choices=ASSIGNMENT_IDS, metavar="ID", help="the assignment")
    p.add_argument("--output", "-o", metavar="CSV",
                   help="output file (default: COURSE_DIR/grades-<id>.csv)")
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
    grader = Grader(_settings(args))
    try:
        outcome = grader.grade(args.id, args.submissions)
        if args.output:
            outcome.csv_path = grader.export(args.id, args.output)
    finally:
        grader.close()
    print(summary(outcome))
    print(f"feedback: {os.path.join(os.path.abspath(args.course_dir), 'feedback')}/"
          f"<student>/{args.id}/{args.id}.html")
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
    results = {r["student"]: r for r in outcome.graded}
    failures = 0
    for student, want in (("solution", "max"), ("student-version", 0)):
        result = results[student]
        expected = result["max_total"] if want == "max" else 0
        # The kernel runs the notebook without hidden tests: it must get through it, and only
        # the trusted re-verification scores.
        kernel_ok = bool(result.get("kernel_ok"))
        ok = result["total"] == expected and kernel_ok
        failures += not ok
        print(f"{assignment}: {student}: {result['total']:g}/{result['max_total']:g} "
              f"(nbgrader ran the notebook: {'yes' if kernel_ok else 'no'}) "
              f"{'ok' if ok else 'FAILED'}")
        for check in result["checks"]:
            if (check["points"] < check["max_points"]) == (want == "max"):
                print(f"  {check['name']}: {check['points']:g}/{check['max_points']:g} "
                      f"{check.get('reason') or ''}")
        if not ok and result.get("notes"):
            print("  notes: " + "; ".join(result["notes"]))
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
            print(grader.export(args.id, args.output))
        else:
            print(f"feedback rendered for {grader.feedback(args.id)} student(s) in "
                  f"{grader.course.path('feedback')}")
    finally:
        grader.close()
    return 0
