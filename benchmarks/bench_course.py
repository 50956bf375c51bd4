"""A whole course through the grader: generated students x the four assignments, ``--jobs 2``.

For every assignment, ``--count`` submissions (default 100) are generated with
``bench_grading.make_submissions``: a third correct, a third with one function broken, a third
broken. Each assignment's template is built once beforehand, then the default engine (an
in-process Dask cluster of ``--jobs`` threads) grades them all; the run prints seconds per
submission for each assignment and in total.

``--scale-out`` grades the same jobs a second time through ``--scheduler``, on a ``dask
scheduler`` and two single-thread ``dask worker`` processes started here on 127.0.0.1 (as on
several machines, but on this one), and checks that every student gets the same grade both ways.

    python benchmarks/bench_course.py [--count 100] [--jobs 2] [--scale-out]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_grading import ROOT, make_submissions

DASK = str(Path(sys.executable).with_name("dask"))
ASSIGNMENTS = ("rnn", "lstm_gru", "convlstm", "ctc")
START_TIMEOUT_S = 120


def grade(assignment: str, submissions: Path, course: Path, jobs: int,
          scheduler: str | None = None) -> float:
    command = [sys.executable, "-m", "autograder", "grade", assignment, str(submissions),
               "--course-dir", str(course), "--jobs", str(jobs), "--no-progress"]
    if scheduler:
        command += ["--scheduler", scheduler]
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def grades(course: Path, assignment: str) -> dict[str, dict]:
    """The grades CSV's rows by student, without the time of grading."""
    with open(course / f"grades-{assignment}.csv") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    for row in rows.values():
        row.pop("graded_at")
    return rows


def start_cluster(folder: Path, workers: int) -> tuple[str, list[subprocess.Popen]]:
    """A ``dask scheduler`` and ``workers`` single-thread ``dask worker`` processes."""
    folder.mkdir()
    scheduler_file = folder / "scheduler.json"
    log = open(folder / "cluster.log", "w")

    def start(command: list[str]) -> subprocess.Popen:
        return subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    processes = [start([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0",
                        "--dashboard-address", "127.0.0.1:0",
                        "--scheduler-file", str(scheduler_file)])]
    deadline = time.monotonic() + START_TIMEOUT_S
    while not scheduler_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    address = json.loads(scheduler_file.read_text())["address"]
    processes += [start([DASK, "worker", address, "--nthreads", "1", "--host", "127.0.0.1",
                         "--dashboard-address", "127.0.0.1:0"]) for _ in range(workers)]
    from distributed import Client

    with Client(address, timeout="30s") as client:
        client.wait_for_workers(workers, timeout=START_TIMEOUT_S)
    return address, processes


def stop(processes: list[subprocess.Popen]) -> None:
    for process in reversed(processes):
        process.terminate()
    for process in processes:
        process.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100,
                        help="students, i.e. submissions per assignment (default: 100)")
    parser.add_argument("--jobs", type=int, default=2, help="--jobs of the local run (default 2)")
    parser.add_argument("--scale-out", action="store_true",
                        help="also grade through a dask scheduler and two single-thread workers "
                             "and check that the grades are identical")
    args = parser.parse_args()

    from autograder.pipeline import Grader, Settings

    work = Path(tempfile.mkdtemp(prefix="bench-course-"))
    try:
        base = work / "course-base"
        grader = Grader(Settings(course_dir=str(base)))
        for assignment in ASSIGNMENTS:
            make_submissions(assignment, work / "submissions" / assignment, args.count)
            grader.course.template(assignment)
        grader.close()
        modes = {"local": None}
        processes: list[subprocess.Popen] = []
        if args.scale_out:
            address, processes = start_cluster(work / "cluster", workers=2)
            modes["scale-out"] = address
        try:
            results = {}
            for mode, scheduler in modes.items():
                course = work / f"course-{mode}"
                shutil.copytree(base, course)
                total = 0.0
                for assignment in ASSIGNMENTS:
                    seconds = grade(assignment, work / "submissions" / assignment, course,
                                    args.jobs, scheduler)
                    total += seconds
                    print(f"{mode}: {assignment}: {seconds:.1f} s, "
                          f"{seconds / args.count:.2f} s per submission")
                print(f"{mode}: {len(ASSIGNMENTS) * args.count} submissions in {total:.1f} s, "
                      f"{total / (len(ASSIGNMENTS) * args.count):.2f} s per submission")
                results[mode] = {a: grades(course, a) for a in ASSIGNMENTS}
        finally:
            stop(processes)
        if args.scale_out:
            for assignment in ASSIGNMENTS:
                assert results["scale-out"][assignment] == results["local"][assignment], (
                    f"{assignment}: the scale-out grades differ from the local ones")
            print("scale-out grades identical to the local ones for every student")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
