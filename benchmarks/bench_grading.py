"""Grading throughput: seconds per submission, and the speedup of ``--jobs 2`` over ``--jobs 1``.

Generates 40 submissions of an assignment (default ``ctc``) from the instructor's notebook and the
student version: a third correct, a third with one function broken (a different one each time),
and the rest broken (stubs left in place, or a syntax error). Each setting grades them all with
``python -m autograder grade`` in a fresh course folder; the assignment's template (nbgrader's
gradebook, cases, reference outputs) is built once beforehand, so both runs measure grading only.

    python benchmarks/bench_grading.py [--assignment ctc] [--count 40]

The goal on a 2-core machine is a speedup of at least 1.7.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def make_submissions(assignment: str, folder: Path, count: int) -> None:
    source = nbformat.read(ROOT / "autograder" / "source" / assignment / f"{assignment}.ipynb",
                           as_version=4)
    release = ROOT / "notebooks" / assignment / f"{assignment}.ipynb"
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    names = sorted(answers)
    folder.mkdir(parents=True)
    for i in range(count):
        nb = nbformat.read(release, as_version=4)
        kind = ("correct", "partly", "broken")[i % 3]
        for cell in nb.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if grade_id not in answers:
                continue
            if kind == "correct" or (kind == "partly" and grade_id != names[i % len(names)]):
                cell.source = answers[grade_id]
            elif kind == "broken" and i % 2:
                cell.source = answers[grade_id].replace("def ", "def (", 1)
        nbformat.write(nb, folder / f"student{i:02d}.ipynb")


def grade(assignment: str, submissions: Path, course: Path, jobs: int) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "autograder", "grade", assignment, str(submissions),
                    "--course-dir", str(course), "--jobs", str(jobs), "--no-progress"],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", default="ctc", help="assignment id (default: ctc)")
    parser.add_argument("--count", type=int, default=40, help="submissions (default: 40)")
    args = parser.parse_args()

    from autograder.pipeline import Grader, Settings

    work = Path(tempfile.mkdtemp(prefix="bench-grading-"))
    try:
        make_submissions(args.assignment, work / "submissions", args.count)
        base = work / "course-base"
        grader = Grader(Settings(course_dir=str(base)))
        grader.course.prepare(args.assignment)
        grader.close()
        times = {}
        for jobs in (1, 2):
            course = work / f"course-jobs{jobs}"
            shutil.copytree(base, course)
            times[jobs] = grade(args.assignment, work / "submissions", course, jobs)
            print(f"--jobs {jobs}: {times[jobs]:.1f} s, "
                  f"{times[jobs] / args.count:.2f} s per submission")
        print(f"speedup of --jobs 2 over --jobs 1: {times[1] / times[2]:.2f}x "
              f"({os.cpu_count()} cores; goal >= 1.7x on 2 cores)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
