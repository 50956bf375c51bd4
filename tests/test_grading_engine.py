"""The grader as typed jobs on Dask (issue 14): records, the engine, and a real cluster.

A handful of ``rnn`` submissions (correct, stub, two with one function broken) are graded three
ways: by the default in-process engine, through ``--scheduler`` on a cluster of a ``dask
scheduler`` and two ``dask worker`` processes, and on such a cluster while one of its workers is
killed in the middle of a job. All three must give every student the same grade.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from _hostile import ROOT, release_notebook, solved_notebook, with_cells

from autograder.checks import CHECKS
from autograder.gradebook import History
from autograder.pipeline import COURSE_ID
from autograder.records import (
    JOB_VERSION,
    RESULT_VERSION,
    CheckGrade,
    Job,
    RecordVersionError,
    Result,
    TemplateRef,
)
from autograder.sandbox import Limits, probe

ASSIGNMENT = "rnn"
MAX = {c.name: c.points for c in CHECKS[ASSIGNMENT]}
TIMEOUT = 10  # seconds per cell / per check
DASK = str(Path(sys.executable).with_name("dask"))
# Upper bounds that only guard against a hang; nothing waits for them to pass.
START_TIMEOUT_S = 120
GRADE_TIMEOUT_S = 1200


def _job(**changes) -> Job:
    fields = dict(assignment=ASSIGNMENT, student="学生甲", notebook=b'{"cells": []}\n\xff',
                  template=TemplateRef(ASSIGNMENT, "f" * 16, "0" * 64), course_id=COURSE_ID,
                  limits=Limits(memory_mb=1536, cpu_s=900), timeout=8.0, time_limit=900.0,
                  max_output_bytes=1024, sandboxed=True, notes=["renamed from x.ipynb"])
    fields.update(changes)
    return Job(**fields)


def _result() -> Result:
    checks = [CheckGrade("rnn_forward", 2, 2, None, None, 2.0),
              CheckGrade("rnn_backward", 0, 4, "dWh differs", "ValueError: x", 0.0)]
    return Result("学生甲", ASSIGNMENT, checks, "partial", notes=["a note"],
                  timings={"verify": 1.5}, notebook_ran=True, autograded=b"\x00{nb}",
                  feedback=b"<html>\xe2\x9c\x93</html>")


# The records.

def test_a_job_round_trips_through_json():
    job = _job()
    again = Job.from_json(job.to_json())
    assert again == job
    assert isinstance(again.limits, Limits) and isinstance(again.template, TemplateRef)
    assert json.loads(job.to_json())["version"] == JOB_VERSION


def test_a_result_round_trips_through_json_with_its_files():
    result = _result()
    again = Result.from_json(result.to_json())
    assert again == result
    assert (again.total, again.max_total) == (2, 6)
    assert [c.verdict for c in again.checks] == ["passed", "failed"]


def test_the_stored_form_of_a_result_leaves_the_files_out():
    stored = _result().to_dict()
    assert "autograded" not in stored and "feedback" not in stored
    again = Result.from_dict(json.loads(json.dumps(stored)))
    assert again.autograded is None and again.checks == _result().checks


def test_an_unversioned_result_of_an_older_grader_is_migrated():
    old = {"student": "s", "assignment": ASSIGNMENT, "problem": None, "status": "partial",
           "checks": [{"name": "rnn_forward", "points": 2, "max_points": 2, "reason": None,
                       "kernel": None, "kernel_score": 2.0},
                      {"name": "rnn_backward", "points": 0, "max_points": 4,
                       "reason": "dWh differs", "kernel": "ValueError: x"}],
           "notes": ["n"], "total": 2, "max_total": 6, "kernel_ok": True,
           "feedback": "/old/course/feedback/s/rnn/rnn.html", "autograded": None}
    result = Result.from_dict(old)
    assert result.version == RESULT_VERSION
    assert (result.total, result.max_total, result.status) == (2, 6, "partial")
    assert result.checks[1].kernel_error == "ValueError: x" and result.notebook_ran is True
    assert result.feedback is None  # a path of the old course folder, not the page


def test_a_result_of_an_unknown_version_is_refused_naming_both_versions():
    data = _result().to_dict()
    data["version"] = 99
    with pytest.raises(RecordVersionError, match=f"version 99 .*expected version "
                                                 f"{RESULT_VERSION}"):
        Result.from_dict(data)


def test_a_job_of_another_version_is_refused():
    data = json.loads(_job().to_json())
    data["version"] = JOB_VERSION + 1
    with pytest.raises(RecordVersionError, match=f"expected version {JOB_VERSION}"):
        Job.from_json(json.dumps(data))


def test_a_result_with_an_unknown_status_is_refused():
    with pytest.raises(ValueError, match="status must be one of"):
        Result("s", ASSIGNMENT, [], "passed")


def test_a_worker_that_fails_gives_an_error_result_not_an_exception(tmp_path):
    """The engine's side of a failed worker: status error, the worker's last words as a note."""
    from autograder.course import Template, pack_folder
    from autograder.engine import Engine

    empty = tmp_path / "template"
    empty.mkdir()
    archive = pack_folder(str(empty))
    ref = TemplateRef(ASSIGNMENT, "empty-test", hashlib.sha256(archive).hexdigest())
    job = _job(notebook=nbformat.writes(release_notebook(ASSIGNMENT)).encode(), template=ref,
               sandboxed=False, notes=[])
    with Engine(jobs=1) as engine:
        [result] = list(engine.grade([job], Template(str(empty), ref, archive)))
    assert result.status == "error" and result.total == 0
    assert result.max_total == sum(MAX.values())
    assert any("the grader failed on this submission" in n and "No such file" in n
               for n in result.notes), result.notes


def test_two_runs_of_one_template_register_plugins_of_their_own():
    """Two TAs on one shared cluster: the first run's end must not unregister the second's."""
    from autograder.engine import TemplatePlugin

    ref = TemplateRef(ASSIGNMENT, "f" * 16, "0" * 64)
    assert TemplatePlugin(ref, b"").name != TemplatePlugin(ref, b"").name


def test_templates_unused_for_a_week_are_pruned_the_others_kept(tmp_path, monkeypatch):
    from autograder import engine

    monkeypatch.setattr(engine.tempfile, "tempdir", str(tmp_path))
    cache = Path(engine._template_cache())
    old, recent = cache / "rnn-old", cache / "rnn-recent"
    for folder in (old, recent):
        (folder / "release").mkdir(parents=True)
    week_ago = time.time() - engine.TEMPLATE_UNUSED_S - 60
    os.utime(old, (week_ago, week_ago))
    assert engine.prune_templates() == ["rnn-old"]
    assert not old.exists() and recent.is_dir()


def test_a_job_marks_its_template_as_used(tmp_path, monkeypatch):
    """run_job touches the template before anything else can fail: pruning spares it."""
    from autograder import engine

    monkeypatch.setattr(engine.tempfile, "tempdir", str(tmp_path))
    ref = TemplateRef(ASSIGNMENT, "f" * 16, "0" * 64)
    template = Path(engine._template_cache()) / ref.key
    template.mkdir()
    os.utime(template, (0, 0))
    monkeypatch.setattr(engine, "run_worker", lambda job, template, uid: _result())
    engine.run_job(_job(template=ref, sandboxed=False).to_json())
    assert time.time() - template.stat().st_mtime < engine.TEMPLATE_UNUSED_S
    assert engine.prune_templates() == []


def test_scratch_left_by_a_dead_grading_process_is_removed(tmp_path, monkeypatch):
    from autograder import engine

    monkeypatch.setattr(engine.tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = tmp_path / f"{engine.SCRATCH_PREFIX}{dead.pid}-abc"
    mine = tmp_path / f"{engine.SCRATCH_PREFIX}{os.getpid()}-def"
    other = tmp_path / "something-else"
    for folder in (left, mine, other):
        (folder / "job").mkdir(parents=True)
    engine._remove_stale_scratch.__wrapped__()
    assert not left.exists() and mine.is_dir() and other.is_dir()


def _listening_sockets() -> dict[str, str]:
    """The sockets this process listens on: inode -> address (hex, as /proc/net shows it)."""
    own = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                own.add(target[len("socket:["):-1])
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in own:  # 0A: LISTEN
                found[fields[9]] = fields[1].split(":")[0]
    return found


def test_the_in_process_engine_listens_on_loopback_only():
    from autograder.engine import Engine

    loopback = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1, ::1
    before = _listening_sockets()
    with Engine(jobs=1):
        opened = [a for inode, a in _listening_sockets().items() if inode not in before]
    assert opened and set(opened) <= loopback, opened


def test_a_template_archive_does_not_depend_on_when_it_was_packed(tmp_path):
    from autograder.course import pack_folder

    folder = tmp_path / "t"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_text("a")
    first = pack_folder(str(folder))
    os.utime(folder / "sub" / "a.txt", (0, 0))
    assert pack_folder(str(folder)) == first
    assert gzip.decompress(first)  # a plain tar.gz


def test_the_template_fingerprint_follows_an_extra_assignments_module(tmp_path, monkeypatch):
    """An assignment registered through AUTOGRADER_EXTRA_ASSIGNMENTS is part of the grader: a
    change to its module must build a new template."""
    from autograder import course as course_module
    from autograder.pipeline import Settings

    module = tmp_path / "extra_assignment.py"
    module.write_text("POINTS = 1\n")
    monkeypatch.setattr(course_module, "extra_assignment_files", lambda: [str(module)])
    course = course_module.Course(Settings(course_dir=str(tmp_path / "course")))
    before = course.fingerprint(ASSIGNMENT)
    module.write_text("POINTS = 2\n")
    assert course.fingerprint(ASSIGNMENT) != before


# Grading runs.

needs_sandbox = pytest.mark.skipif(not probe().sandboxed and not os.environ.get("REQUIRE_SANDBOX"),
                                   reason="no sandbox on this machine")


def _export(folder: Path) -> dict[str, float]:
    """Write the submissions; returns each student's expected total."""
    folder.mkdir()
    broken_backward = "def rnn_backward(*args):\n    raise ValueError('broken on purpose')"
    zero_birnn = ("import numpy as np\ndef birnn_forward(x, h0, *args):\n"
                  "    return np.zeros((x.shape[0], x.shape[1], 2 * h0.shape[-1])), None")
    notebooks = {
        "correct": (solved_notebook(ASSIGNMENT), sum(MAX.values())),
        "stub": (release_notebook(ASSIGNMENT), 0),
        "backward": (with_cells(solved_notebook(ASSIGNMENT), broken_backward),
                     sum(MAX.values()) - MAX["rnn_backward"]),
        "birnn": (with_cells(solved_notebook(ASSIGNMENT), zero_birnn),
                  sum(MAX.values()) - MAX["birnn_forward"]),
    }
    for student, (nb, _) in notebooks.items():
        nbformat.write(nb, folder / f"{student}.ipynb")
    return {student: total for student, (_, total) in notebooks.items()}


def _grade(export: Path, course: Path, *options: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "autograder", "grade", ASSIGNMENT, str(export),
               "--course-dir", str(course), "--jobs", "2", "--timeout", str(TIMEOUT),
               "--memory-mb", "1536", "--no-progress", *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=GRADE_TIMEOUT_S,
                          cwd=ROOT)


def _grades(course: Path) -> dict[str, dict]:
    """The CSV's rows without the time of grading, and each student's stored verdicts."""
    with open(course / f"grades-{ASSIGNMENT}.csv") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    history = History(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID)
    try:
        latest = history.latest(ASSIGNMENT)
    finally:
        history.close()
    grades = {}
    for student, row in rows.items():
        row.pop("graded_at")
        result = History.result(latest[student])
        grades[student] = {"csv": row, "status": result.status,
                           "checks": [(c.name, c.points, c.reason) for c in result.checks]}
    return grades


class Cluster:
    """A ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1, as an operator starts
    them (each worker a single thread, no nanny: a killed worker stays dead)."""

    def __init__(self, folder: Path, n_workers: int = 2):
        folder.mkdir(parents=True, exist_ok=True)
        self.scheduler_file = folder / "scheduler.json"
        self.log = open(folder / "cluster.log", "w")
        self.processes: list[subprocess.Popen] = []
        self._start([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0",
                     "--dashboard-address", "127.0.0.1:0",
                     "--scheduler-file", str(self.scheduler_file)])
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.address = json.loads(self.scheduler_file.read_text())["address"]
        for _ in range(n_workers):
            self._start([DASK, "worker", "--scheduler-file", str(self.scheduler_file),
                         "--nthreads", "1", "--no-nanny", "--host", "127.0.0.1",
                         "--dashboard-address", "127.0.0.1:0"])
        with self.client() as client:
            client.wait_for_workers(n_workers, timeout=START_TIMEOUT_S)

    def _start(self, command: list[str]) -> None:
        self.processes.append(subprocess.Popen(command, cwd=ROOT, stdout=self.log,
                                               stderr=subprocess.STDOUT))

    def client(self):
        from distributed import Client

        return Client(scheduler_file=str(self.scheduler_file), timeout="30s")

    def close(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.log.close()


@contextlib.contextmanager
def running_cluster(folder: Path):
    cluster = Cluster(folder)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> tuple[Path, dict[str, float]]:
    folder = tmp_path_factory.mktemp("engine") / "export"
    return folder, _export(folder)


@pytest.fixture(scope="module")
def local_course(export, tmp_path_factory) -> Path:
    course = tmp_path_factory.mktemp("engine-local") / "course"
    run = _grade(export[0], course)
    assert run.returncode == 0, run.stderr[-3000:]
    return course


@pytest.fixture(scope="module")
def local_grades(local_course) -> dict[str, dict]:
    return _grades(local_course)


def _course_with_template(local_course: Path, folder: Path) -> Path:
    """A new course folder that starts with the local run's template (built once per module)."""
    course = folder / "course"
    shutil.copytree(local_course / ".grader", course / ".grader",
                    ignore=shutil.ignore_patterns("main-*"))
    return course


@needs_sandbox
@pytest.mark.grading
@pytest.mark.slow
def test_the_local_engine_grades_every_student_correctly(export, local_grades):
    _, expected = export
    assert {s: float(g["csv"]["total"]) for s, g in local_grades.items()} == expected
    assert local_grades["correct"]["status"] == "full marks"
    assert "broken on purpose" in local_grades["backward"]["csv"]["reason"]


@needs_sandbox
@pytest.mark.grading
@pytest.mark.slow
def test_a_scheduler_run_equals_the_local_run_grade_for_grade(export, local_course,
                                                              local_grades, tmp_path_factory):
    base = tmp_path_factory.mktemp("engine-cluster")
    course = _course_with_template(local_course, base)
    with running_cluster(base / "cluster") as cluster:
        run = _grade(export[0], course, "--scheduler", cluster.address)
    assert run.returncode == 0, run.stderr[-3000:]
    assert _grades(course) == local_grades
    assert (course / "feedback" / "correct" / ASSIGNMENT / f"{ASSIGNMENT}.html").exists()
    assert (course / "autograded" / "stub" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").exists()


def _children(pid: int) -> list[str]:
    """The command lines of the processes whose parent is ``pid``."""
    found = []
    for folder in Path("/proc").glob("[0-9]*"):
        try:
            fields = (folder / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append((folder / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, IndexError, ValueError):
            continue
    return found


def _kill_a_worker_mid_job(cluster: Cluster) -> int:
    """Wait until a Dask worker runs a grading job (the scheduler says it has one, and its
    worker process is there), then SIGKILL that Dask worker; returns its pid."""
    with cluster.client() as client:
        pids = client.run(os.getpid)
        deadline = time.monotonic() + GRADE_TIMEOUT_S
        while time.monotonic() < deadline:
            for address, keys in client.processing().items():
                pid = pids.get(address)
                if (pid and any(str(k).startswith("grade-") for k in keys)
                        and any("autograder.worker" in c for c in _children(pid))):
                    os.kill(pid, signal.SIGKILL)
                    return pid
            time.sleep(0.2)
    raise AssertionError("no Dask worker was ever seen running a grading job")


@needs_sandbox
@pytest.mark.grading
@pytest.mark.slow
def test_a_worker_killed_mid_job_loses_no_submission(export, local_course, local_grades,
                                                     tmp_path_factory):
    base = tmp_path_factory.mktemp("engine-kill")
    course = _course_with_template(local_course, base)
    command = [sys.executable, "-m", "autograder", "grade", ASSIGNMENT, str(export[0]),
               "--course-dir", str(course), "--timeout", str(TIMEOUT),
               "--memory-mb", "1536", "--no-progress"]
    with running_cluster(base / "cluster") as cluster:
        run = subprocess.Popen([*command, "--scheduler", cluster.address], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            killed = _kill_a_worker_mid_job(cluster)
        finally:
            stdout, stderr = run.communicate(timeout=GRADE_TIMEOUT_S)
        assert killed in [p.pid for p in cluster.processes[1:]]
        assert next(p for p in cluster.processes if p.pid == killed).wait(30) == -signal.SIGKILL
    assert run.returncode == 0, stderr[-3000:]
    assert f"graded {len(export[1])} submission(s)" in stdout
    # The job of the dead worker ran again on the other one: no error, no zero for it.
    assert _grades(course) == local_grades
