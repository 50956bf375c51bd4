"""Grading jobs on Dask: an in-process cluster by default, or a running one (``--scheduler``).

::

    Engine.grade(jobs, template)                 the grading parent
      │  the template archive as a worker plugin (to every worker, and to each that joins
      │  later, once: unpacked into the machine's cache, keyed by its content);
      ▼  one task per Job
    run_job(job JSON)                            a Dask worker thread, on any machine
      │  the unpacked template, a uid leased (root); the thread's pre-imported server
      ▼  (autograder.worker_server) forks, times and kills:
    autograder.worker                            a process of its own per job, student code in
      │  Result JSON lines on stdout             sandboxes (autograder.sandbox) on that machine
      ▼
    Result JSON ── back to the parent, as jobs complete (distributed.as_completed)

A worker process that crashes or runs out of time is the submission's doing: the task returns a
Result that says so (status ``error``, or the trusted scores it had already written) and is not
run again. A Dask worker that dies mid-job (killed, out of memory, its machine gone) is not:
Dask gives the task to another worker (``distributed.scheduler.allowed-failures`` times), and a
task that raises for a reason of the machine's (no sandbox there, a full disk) is retried
:data:`RETRIES` times. The worker process ends with its server, and the server with the Dask
worker thread that started it.

The in-process cluster (threads, ``--jobs`` of them) talks over Dask's in-process transport;
its only sockets are Dask's diagnostic HTTP servers, bound to 127.0.0.1. Nothing changes for a
laptop user. With ``--scheduler`` every Dask worker
must run this grader (the same version: a job names its template by the grader's fingerprint)
and must be able to start the sandbox: :func:`run_job` refuses a sandboxed job otherwise.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import os
import shutil
import stat
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator

from distributed.diagnostics.plugin import WorkerPlugin

from autograder import checks as checks_module
from autograder.course import Template
from autograder.records import Job, RecordVersionError, Result, TemplateRef
from autograder.sandbox import lease_uid, probe
from autograder.worker import ERROR_PREFIX
from autograder.worker_server import this_threads_server

# How often a task that raised (a problem of the machine, not of the submission) is run again.
RETRIES = 2
MAX_RESULT_BYTES = 256 * 2**20   # a worker's Result lines (with the autograded notebook)
MAX_LOG_BYTES = 1 * 2**20        # the tail of a worker's stderr kept for the failure note
LOOPBACK = "127.0.0.1:0"         # any free port of the loopback interface
TEMPLATE_UNUSED_S = 7 * 24 * 3600  # a cached template no job used for this long is deleted


class EngineUnavailable(RuntimeError):
    """The Dask scheduler given with ``--scheduler`` cannot be reached."""


class Engine:
    """A Dask client on an in-process cluster of ``jobs`` threads, or on ``scheduler``."""

    def __init__(self, jobs: int, scheduler: str | None = None):
        from distributed import Client, LocalCluster

        self.cluster = None
        if scheduler:
            try:
                self.client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as error:
                raise EngineUnavailable(f"--scheduler {scheduler}: no Dask scheduler answers "
                                        f"there ({error})") from None
        else:
            # Dask's diagnostic HTTP servers always start: on the loopback interface only.
            self.cluster = LocalCluster(n_workers=1, threads_per_worker=jobs, processes=False,
                                        dashboard_address=LOOPBACK,
                                        worker_dashboard_address=LOOPBACK,
                                        silence_logs=logging.ERROR)
            self.client = Client(self.cluster)

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def grade(self, jobs: list[Job], template: Template) -> Iterator[Result]:
        """Grade ``jobs`` (all of ``template``'s assignment); yields each Result as it comes."""
        from distributed import as_completed

        # A plugin, not scattered data: the scheduler keeps it for workers that join later, and
        # it survives the death of any worker.
        plugin = TemplatePlugin(template.ref, template.archive)
        self.client.register_plugin(plugin)
        try:
            futures = {}
            for job in jobs:
                future = self.client.submit(run_job, job.to_json(), pure=False, retries=RETRIES,
                                            key=f"grade-{job.assignment}-{uuid.uuid4().hex}")
                futures[future] = job
            for future in as_completed(futures):
                job = futures.pop(future)
                try:
                    result = Result.from_json(future.result())
                except Exception as error:  # noqa: BLE001 -- the cluster's, reported per student
                    result = failed(job, f"the grading cluster could not grade this submission: "
                                         f"{type(error).__name__}: {error}")
                yield result
        finally:
            self.client.unregister_worker_plugin(plugin.name)


class TemplatePlugin(WorkerPlugin):
    """Unpacks a template into the cache of each worker's machine as the worker starts (or at
    once, for the workers already running)."""

    def __init__(self, ref: TemplateRef, archive: bytes):
        self.ref, self.archive = ref, archive
        # One per grading run: two runs of one template on a shared cluster must not remove
        # each other's plugin when the first ends.
        self.name = f"autograder-template-{ref.key}-{uuid.uuid4().hex[:12]}"

    def setup(self, worker) -> None:
        unpack_template(self.ref, self.archive)


def failed(job: Job, note: str) -> Result:
    """Zero points and status ``error``: the grader, not the student, failed."""
    max_points = {c.name: c.points for c in checks_module.CHECKS[job.assignment]}
    return Result.unscored(job.student, job.assignment, max_points, "error",
                           notes=[*job.notes, note])


def run_job(job_json: str) -> str:
    """Grade one job on this machine (a Dask task); returns the Result as JSON."""
    job = Job.from_json(job_json)
    _remove_stale_scratch()
    template = os.path.join(_template_cache(), job.template.key)
    try:
        # In use: see prune_templates.
        os.utime(template)
    except FileNotFoundError:
        raise RuntimeError(f"the template {job.template.key} is not on this worker (its "
                           "TemplatePlugin did not run, or the cache was deleted)") from None
    if job.sandboxed and not _isolation().sandboxed:
        raise RuntimeError(f"no sandbox on this worker ({_isolation().problem}); run it where "
                           "bubblewrap starts, or grade with --unsandboxed")
    lease = lease_uid() if os.geteuid() == 0 and job.sandboxed else None
    try:
        return run_worker(job, template, lease.uid if lease else None).to_json()
    finally:
        if lease:
            lease.release()


@functools.cache
def _isolation():
    return probe()


def _template_cache() -> str:
    """This user's folder of unpacked templates on this machine, closed to everyone else."""
    root = os.path.join(tempfile.gettempdir(), f"autograder-templates-{os.geteuid()}")
    os.makedirs(root, mode=0o700, exist_ok=True)
    info = os.lstat(root)
    if (not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid()
            or info.st_mode & 0o077):
        raise RuntimeError(f"{root} must be a folder of this user's that no one else may enter")
    return root


def unpack_template(ref: TemplateRef, archive: bytes) -> str:
    """The folder of the template ``ref`` on this machine, unpacked from ``archive`` once;
    templates that no job used for :data:`TEMPLATE_UNUSED_S` are deleted then."""
    target = os.path.join(_template_cache(), ref.key)
    if os.path.isdir(target):
        os.utime(target)
        return target
    prune_templates()
    if hashlib.sha256(archive).hexdigest() != ref.sha256:
        raise ValueError(f"the template archive of {ref.assignment!r} does not match its SHA-256")
    unpacking = tempfile.mkdtemp(prefix=".unpacking-", dir=os.path.dirname(target))
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        tar.extractall(unpacking, filter="data")
    try:
        os.rename(unpacking, target)
    except OSError:  # another job on this machine unpacked it first
        shutil.rmtree(unpacking, ignore_errors=True)
    return target


def prune_templates(unused_s: float | None = None) -> list[str]:
    """Delete the cached templates that no job started from for ``unused_s`` seconds (default
    :data:`TEMPLATE_UNUSED_S`: far longer than any job, so no running job loses its template);
    returns their names."""
    cache = _template_cache()
    limit = time.time() - (TEMPLATE_UNUSED_S if unused_s is None else unused_s)
    removed = []
    for name in os.listdir(cache):
        path = os.path.join(cache, name)
        try:
            if os.lstat(path).st_mtime < limit:
                shutil.rmtree(path)
                removed.append(name)
        except OSError:
            continue
    return removed


SCRATCH_PREFIX = "autograder-jobs-"


def _scratch_folder() -> str:
    """A job's scratch folder, named after this process so that it can be found if the process
    is killed before it removes it."""
    return tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-")


@functools.cache
def _remove_stale_scratch() -> None:
    """Once per process: delete this user's scratch folders left by grading processes that no
    longer exist (a Dask worker killed mid-job cannot clean up)."""
    root = tempfile.gettempdir()
    for name in os.listdir(root):
        if not name.startswith(SCRATCH_PREFIX):
            continue
        pid = name[len(SCRATCH_PREFIX):].split("-", 1)[0]
        path = os.path.join(root, name)
        try:
            info = os.lstat(path)
            if (not pid.isdigit() or info.st_uid != os.geteuid() or not stat.S_ISDIR(info.st_mode)
                    or os.path.exists(f"/proc/{pid}")):
                continue
        except OSError:
            continue
        shutil.rmtree(path, ignore_errors=True)


def run_worker(job: Job, template: str, uid: int | None) -> Result:
    """Grade ``job`` in a worker forked by this thread's :class:`WorkerServer`, for at most
    ``job.time_limit`` seconds (then whatever is left of it is killed); its Result, with a note
    if it failed."""
    scratch = _scratch_folder()
    # Root: the job's folder belongs to its uid, which must pass through (not list) this one.
    os.chmod(scratch, 0o711 if uid is not None else 0o700)
    files = {name: os.path.join(scratch, f".{name}") for name in ("stdin", "stdout", "stderr")}
    for name, path in files.items():
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
            if name == "stdin":
                f.write(job.to_json().encode())
    started = time.monotonic()
    try:
        returncode = this_threads_server().run(template, uid, scratch, files, job.time_limit)
        elapsed = time.monotonic() - started
        with open(files["stdout"], "rb") as stdout:
            lines = stdout.read(MAX_RESULT_BYTES).splitlines()
        with open(files["stderr"], "rb") as stderr:
            stderr.seek(max(0, stderr.seek(0, os.SEEK_END) - MAX_LOG_BYTES))
            log = stderr.read().decode("utf-8", errors="replace")
    finally:
        if job.keep_folder:
            print(f"kept the job folder of {job.student}: {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    result = _last_result(lines)
    if result is None:
        result = failed(job, _failure(log, returncode, elapsed))
    elif returncode != 0:
        result.notes.append(_failure(log, returncode, elapsed))
    result.timings["worker"] = elapsed
    return result


def _last_result(lines: list[bytes]) -> Result | None:
    """The last complete Result the worker wrote (the trusted scores, or the full result)."""
    for line in reversed(lines):
        try:
            return Result.from_json(line)
        except RecordVersionError:
            raise
        except (ValueError, KeyError, TypeError):
            continue
    return None


def _failure(log: str, returncode: int | None, elapsed: float) -> str:
    errors = [ln[len(ERROR_PREFIX):] for ln in log.splitlines() if ln.startswith(ERROR_PREFIX)]
    if errors:
        return f"the grader failed on this submission: {errors[-1]}"
    if returncode is not None and returncode < 0:
        return f"the grading process was killed after {elapsed:.0f} s (signal {-returncode})"
    return f"the grading process stopped with status {returncode} after {elapsed:.0f} s"
