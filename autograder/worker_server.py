"""One pre-imported grading process per engine thread, forking a fresh worker for each job.

A worker started as ``python -m autograder.worker`` spends more time importing nbformat,
nbgrader, SQLAlchemy and nbconvert than grading a numpy assignment. The server imports them once;
each job is then graded by a child forked from it (copy-on-write: milliseconds), which is as
separate from every other job as a freshly started worker::

    engine thread ──request (paths of the job's stdin, stdout, stderr; template; uid)──▶ server
                  ◀──{"pid", "status"} when the child has ended────────────────────────── │ fork
                                                                              worker child ▼
                         a session of its own, in the job's scratch folder, dies with the server;
                         autograder.worker.grade_job, then os._exit: nothing returns to the server

Only trusted code runs in the server and its children: student code runs in the sandboxes the
child starts (:mod:`autograder.sandbox`), as before. The server enforces each job's time limit and
kills the child's session after it (the sandboxes die with the child); a server that stops
answering is killed and the job raised to Dask, which runs it again.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import traceback

from autograder.sandbox import kill_group

# What a worker imports while grading, imported once in the server instead of once per job.
PRELOAD = (
    "numpy", "nbformat", "traitlets.config", "IPython.core.inputtransformer2",
    "sqlalchemy", "nbgrader.api", "nbgrader.apps", "nbgrader.coursedir",
    "nbgrader.preprocessors", "nbgrader.converters", "nbconvert.preprocessors",
    "nbconvert.exporters", "bs4", "nh3", "autograder.feedback", "autograder.worker",
)
REPLY_MARGIN_S = 60  # how long past a job's time limit the engine waits for the server's answer


class ServerLost(RuntimeError):
    """The server died or stopped answering: a problem of the machine, not of the submission."""


# --- the engine's side -------------------------------------------------------------------------

class WorkerServer:
    """A ``python -m autograder.worker_server`` child of this thread (it dies with the thread)."""

    def __init__(self):
        self.log = tempfile.TemporaryFile()
        # Unbuffered: select() must see every line still to read.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "autograder.worker_server", "--parent", str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, bufsize=0,
            start_new_session=True)

    def run(self, template: str, uid: int | None, scratch: str, files: dict[str, str],
            time_limit: float) -> int:
        """Grade in a forked worker whose stdin, stdout and stderr are ``files``; returns its
        exit status (negative: the signal that ended it, SIGKILL at the time limit)."""
        request = {"template": template, "uid": uid, "scratch": scratch,
                   "time_limit": time_limit, **files}
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
        except OSError as error:
            raise self._lost(f"it does not take requests ({error})") from None
        ready, _, _ = select.select([self.process.stdout], [], [], time_limit + REPLY_MARGIN_S)
        line = self.process.stdout.readline() if ready else b""
        try:
            return int(json.loads(line)["status"])
        except (ValueError, KeyError, TypeError):
            raise self._lost("it stopped answering" if not ready else "it ended") from None

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        kill_group(self.process.pid)
        self.process.wait()
        self.log.close()

    def _lost(self, what: str) -> ServerLost:
        tail = self._log_tail()
        self.close()
        return ServerLost(f"the grading server {what}: {tail}")

    def _log_tail(self) -> str:
        self.log.seek(max(0, self.log.seek(0, os.SEEK_END) - 2000))
        lines = self.log.read().decode("utf-8", errors="replace").strip().splitlines()
        return lines[-1] if lines else "(no message)"


_local = threading.local()


def this_threads_server() -> WorkerServer:
    """The server of the calling thread, started on first use and again after it died."""
    server = getattr(_local, "server", None)
    if server is None or not server.alive():
        if server is not None:
            server.close()
        server = _local.server = WorkerServer()
    return server


# --- the server --------------------------------------------------------------------------------

def serve(parent: int | None) -> None:
    """Read one request per line on stdin, fork a worker for it, answer when it has ended."""
    from autograder.worker import die_with_parent

    if parent is not None:
        die_with_parent(parent)
    for name in PRELOAD:
        importlib.import_module(name)
    from autograder.feedback import warm_up

    warm_up()
    # What the server holds stays out of the children's garbage collections, which would
    # otherwise touch (and so copy) every page of it.
    gc.freeze()
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    requests = os.fdopen(0, "rb", buffering=0)
    while True:
        line = requests.readline()
        if not line:
            return
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _worker_child(request, server=os.getppid(), close=[replies.fileno()])
        status = _wait(pid, float(request["time_limit"]))
        replies.write(json.dumps({"pid": pid, "status": status}) + "\n")
        replies.flush()


def _wait(pid: int, time_limit: float) -> int:
    """Wait for the child at most ``time_limit`` seconds, then kill its session (and with it
    every sandbox it started); its exit status as :mod:`subprocess` gives it."""
    pidfd = os.pidfd_open(pid)
    try:
        select.select([pidfd], [], [], time_limit)
        # Unreaped, its pid (and session id) cannot have been reused.
        kill_group(pid)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(pidfd)
    return os.waitstatus_to_exitcode(status)


def _worker_child(request: dict, server: int, close: list[int]) -> None:
    """The forked worker: grade the request's job and end, never returning to the server."""
    status = 1
    try:
        from autograder.worker import MAX_JOB_BYTES, die_with_parent, grade_job

        os.setsid()
        die_with_parent(server)
        for fd in close:
            os.close(fd)
        for fd, name, flags in ((0, "stdin", os.O_RDONLY), (1, "stdout", os.O_WRONLY),
                                (2, "stderr", os.O_WRONLY)):
            opened = os.open(request[name], flags | os.O_NOFOLLOW)
            os.dup2(opened, fd)
            os.close(opened)
        os.chdir(request["scratch"])
        os.environ["TMPDIR"] = request["scratch"]
        tempfile.tempdir = None
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        with open(0, "rb", closefd=False) as stdin:
            job_json = stdin.read(MAX_JOB_BYTES)
        status = grade_job(job_json, request["template"], request["uid"])
    except BaseException:  # noqa: BLE001 -- reported on the job's stderr, then the child ends
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(status)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m autograder.worker_server",
        description="Grade jobs in workers forked from this pre-imported process; one request "
                    "(JSON) per line on stdin, one answer per line on stdout.")
    parser.add_argument("--parent", type=int, default=None,
                        help="pid of the engine; the server and its workers end when it does")
    args = parser.parse_args(argv)
    serve(args.parent)


if __name__ == "__main__":
    main()
