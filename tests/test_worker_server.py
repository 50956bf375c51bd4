"""The pre-imported grading server (issue 14): a fresh forked worker per job, and no job outlives
its time limit, its server or the engine thread that started the server.

A job's stdin that is a FIFO nobody writes to holds its worker at its first step (opening
stdin), for as long as a test needs: nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from autograder.worker import ERROR_PREFIX
from autograder.worker_server import ServerLost, WorkerServer, this_threads_server

# Upper bounds that only guard against a hang; nothing waits for them to pass.
DEADLINE_S = 60


def _files(scratch: Path, stdin: bytes | None = b"{}") -> dict[str, str]:
    files = {name: str(scratch / name) for name in ("stdin", "stdout", "stderr")}
    for name, path in files.items():
        if name == "stdin" and stdin is None:
            os.mkfifo(path)
        else:
            Path(path).write_bytes(stdin if name == "stdin" else b"")
    return files


def _children(pid: int) -> list[int]:
    found = []
    for folder in Path("/proc").glob("[0-9]*"):
        try:
            fields = (folder / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(folder.name))
    return found


def _wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not {what} after {DEADLINE_S} s")
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


@pytest.fixture
def server():
    server = WorkerServer()
    yield server
    server.close()


def test_each_job_is_graded_by_a_fresh_child_of_one_server(server, tmp_path):
    """Two jobs, one server: each fails in its own child (a bad job: the worker's error line)."""
    statuses = []
    for i in range(2):
        scratch = tmp_path / f"job{i}"
        scratch.mkdir()
        files = _files(scratch, stdin=b'{"not": "a job"}')
        statuses.append(server.run(str(tmp_path / "no-template"), None, str(scratch), files, 60))
        log = Path(files["stderr"]).read_text()
        assert "Traceback" in log, log
        assert Path(files["stdout"]).read_bytes() == b""
    assert statuses == [1, 1]
    assert server.alive()


def test_a_worker_that_outlives_its_time_limit_is_killed(server, tmp_path):
    files = _files(tmp_path, stdin=None)
    started = time.monotonic()
    status = server.run(str(tmp_path), None, str(tmp_path), files, 0.5)
    assert status == -signal.SIGKILL
    assert time.monotonic() - started < DEADLINE_S
    assert server.alive() and _children(server.process.pid) == []


def test_a_worker_dies_with_its_server_and_the_job_is_raised_to_dask(server, tmp_path):
    files = _files(tmp_path, stdin=None)
    outcome = {}

    def run():
        try:
            outcome["status"] = server.run(str(tmp_path), None, str(tmp_path), files, 600)
        except ServerLost as error:
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    _wait_until(lambda: _children(server.process.pid), "forked")
    [child] = _children(server.process.pid)
    os.kill(server.process.pid, signal.SIGKILL)
    thread.join(DEADLINE_S)
    assert "grading server" in str(outcome.get("error")), outcome
    _wait_until(lambda: _gone(child), "gone with its server")


def test_the_server_dies_with_the_engine_thread_that_started_it(tmp_path):
    servers = []

    def grade_one():
        server = this_threads_server()
        servers.append(server)
        server.run(str(tmp_path), None, str(tmp_path), _files(tmp_path, stdin=b"{}"), 60)

    thread = threading.Thread(target=grade_one)
    thread.start()
    thread.join(DEADLINE_S)
    [server] = servers
    _wait_until(lambda: not server.alive(), "gone with its thread")
    assert server.process.returncode == -signal.SIGKILL


def test_a_thread_gets_a_new_server_after_its_server_died():
    first = this_threads_server()
    assert this_threads_server() is first
    first.close()
    second = this_threads_server()
    assert second is not first and second.alive()
    second.close()


def test_the_error_prefix_reaches_the_engine(server, tmp_path):
    """A job that parses but cannot be graded: the worker's last line names why."""
    from test_grading_engine import _job

    files = _files(tmp_path, stdin=_job(sandboxed=False).to_json().encode())
    status = server.run(str(tmp_path / "no-template"), None, str(tmp_path), files, 60)
    log = Path(files["stderr"]).read_text()
    assert status == 1 and ERROR_PREFIX in log, log
