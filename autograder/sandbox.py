"""Isolation for code from submissions: resource limits, an unprivileged user, hidden course files.

Everything a student wrote runs in a process started through this module's launcher::

    python -m autograder.sandbox SPEC.json -- PROGRAM ARGS...

The launcher reads the :class:`Sandbox` spec, then, before ``exec``-ing the program:

* starts a new session (its own process group, which the grader kills afterwards);
* when the grader runs as root and mount namespaces work, hides the course's secret folders
  (``solutions/``, the instructor's notebooks, the gradebook, other students' jobs) behind empty
  read-only tmpfs mounts that only this process tree sees;
* sets resource limits: address space (memory), CPU seconds, file size, processes;
* when root, drops to an unprivileged uid of its own (one per parallel job slot, so one student's
  code cannot signal or ptrace another's) with no supplementary groups;
* replaces the environment with a small, clean one (no tokens from the grader's environment) and
  sends stdout/stderr to ``/dev/null`` (a kernel reports its output through ZeroMQ instead).

For a Jupyter kernel, ``-f CONNECTION_FILE`` in the program's arguments is copied to the sandbox's
home first, because the original is readable by the grader's user only.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field

# The uid of job slot k is SANDBOX_UID_BASE + k: unused on a normal system (Debian allots
# 1000-59999 to people and 60000-64999 to dynamically created users).
SANDBOX_UID_BASE = 61000

_CLONE_NEWNS = 0x00020000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_BIND, _MS_REC, _MS_PRIVATE = 0x1000, 0x4000, 1 << 18

# Variables a kernel or the verification child may inherit; everything else is dropped.
_KEPT_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "JPY_PARENT_PID", "JPY_SESSION_NAME",
             "NBGRADER_EXECUTION")


@dataclass
class Limits:
    """Resource limits of one sandboxed process (``None``: leave the inherited limit)."""

    memory_mb: int | None = 2048   # RLIMIT_AS: a runaway allocation raises MemoryError
    cpu_s: int | None = 600        # RLIMIT_CPU: SIGXCPU, then SIGKILL
    fsize_mb: int | None = 64      # RLIMIT_FSIZE: no file (or /dev/shm blob) above this
    nproc: int | None = 128        # RLIMIT_NPROC, per uid; threads count (ipykernel uses ~10)


@dataclass
class Sandbox:
    """Where and as whom a sandboxed program runs; serialised to JSON for the launcher."""

    home: str
    cwd: str | None                 # None: keep the caller's (a kernel's is the notebook's)
    limits: Limits = field(default_factory=Limits)
    uid: int | None = None          # None: keep the grader's user (not root, or --no-drop)
    namespace: bool = False         # run in a mount namespace (see _hide); needs root
    hide: list[str] = field(default_factory=list)   # folders to hide there
    env: dict[str, str] = field(default_factory=dict)

    def write(self, path: str) -> str:
        with open(path, "w") as f:
            json.dump(asdict(self), f)
        return path

    @classmethod
    def read(cls, path: str) -> Sandbox:
        with open(path) as f:
            data = json.load(f)
        data["limits"] = Limits(**data["limits"])
        return cls(**data)

    def command(self, spec_path: str, program: list[str]) -> list[str]:
        """The command line that runs ``program`` inside this sandbox."""
        return [sys.executable, "-m", "autograder.sandbox", spec_path, "--", *program]


@dataclass(frozen=True)
class Isolation:
    """What this machine allows; decided once per grading run by :func:`probe`."""

    drop_privileges: bool
    hide_files: bool

    def describe(self) -> str:
        if self.drop_privileges and self.hide_files:
            return ("full: unprivileged uid per job slot, resource limits, course files "
                    "hidden from the verification process")
        if self.drop_privileges:
            return ("partial: unprivileged uid per job slot and resource limits, but no mount "
                    "namespace, so student code can read world-readable course files "
                    "(solutions/, source notebooks)")
        return ("limits only: the grader is not root, so student code runs as the grader's "
                "user and can read and write whatever that user can")


def _libc():
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _mount(source, target, fstype, flags, data=None) -> None:
    enc = lambda v: None if v is None else os.fsencode(v)
    if _libc().mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        raise OSError(ctypes.get_errno(), f"mount {source} on {target}")


def _blocked_ancestor(path: str) -> str | None:
    """The first folder on the way to ``path`` that other users cannot enter, if any."""
    current = "/"
    for part in path.strip("/").split("/"):
        current = os.path.join(current, part)
        if os.path.isdir(current) and not os.stat(current).st_mode & 0o001:
            return current
    return None


def _python_paths() -> list[str]:
    """The interpreter's installation (e.g. under /root/.pyenv) and site-packages."""
    paths = {os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, sys.exec_prefix)}
    paths |= {os.path.realpath(os.path.dirname(os.path.realpath(sys.executable)))}
    return sorted(paths)


def _hide(paths: list[str]) -> None:
    """In a new mount namespace: hide ``paths``; make the interpreter reachable for other users."""
    libc = _libc()
    if libc.unshare(_CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    # Private propagation, so the mounts below never leak into the grader's namespace.
    _mount("none", "/", None, _MS_REC | _MS_PRIVATE)
    # An interpreter under a private folder (/root/.pyenv): stage it, cover the folder with an
    # empty tmpfs (which also hides the rest of it), and bind the interpreter back in.
    blocked: dict[str, list[str]] = {}
    for path in _python_paths():
        ancestor = _blocked_ancestor(path)
        if ancestor is not None:
            blocked.setdefault(ancestor, []).append(path)
    if blocked:
        staging = "/mnt" if os.path.isdir("/mnt") else "/tmp"
        _mount("tmpfs", staging, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=4k,mode=0700")
        staged = []
        for inner in blocked.values():
            for path in inner:
                stage = os.path.join(staging, str(len(staged)))
                os.mkdir(stage)
                _mount(path, stage, None, _MS_BIND | _MS_REC)
                staged.append((stage, path))
        for ancestor in blocked:
            _mount("tmpfs", ancestor, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=64k,mode=0755")
        for stage, path in staged:
            os.makedirs(path, exist_ok=True)
            _mount(stage, path, None, _MS_BIND | _MS_REC)
    flags = _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
    for path in paths:
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", flags, "size=4k,mode=0555")


def probe() -> Isolation:
    """Find out (in a throw-away child process) whether we can drop privileges and hide files."""
    if os.geteuid() != 0:
        return Isolation(False, False)
    target = tempfile.mkdtemp(prefix="autograder-probe-")
    try:
        pid = os.fork()
        if pid == 0:
            try:
                _hide([target])
                os._exit(0)
            except BaseException:  # noqa: BLE001 -- any failure means "not available"
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        hide_files = os.waitstatus_to_exitcode(status) == 0
    finally:
        os.rmdir(target)
    # Dropping privileges only helps if the unprivileged uid can still start the interpreter.
    home = tempfile.mkdtemp(prefix="autograder-probe-")
    try:
        sandbox = Sandbox(home=home, cwd=home, uid=SANDBOX_UID_BASE,
                          namespace=hide_files)
        os.chown(home, SANDBOX_UID_BASE, SANDBOX_UID_BASE)
        spec = sandbox.write(os.path.join(home, "probe.json"))
        ok = subprocess.run(sandbox.command(spec, [sys.executable, "-c", "import numpy"]),
                            timeout=120).returncode == 0
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return Isolation(ok, hide_files and ok)


def _set_limits(limits: Limits, root: bool) -> None:
    mb = 1024 * 1024
    wanted = {
        resource.RLIMIT_AS: limits.memory_mb and limits.memory_mb * mb,
        resource.RLIMIT_CPU: limits.cpu_s,
        resource.RLIMIT_FSIZE: limits.fsize_mb and limits.fsize_mb * mb,
        resource.RLIMIT_CORE: 0,
    }
    # RLIMIT_NPROC counts every process of the uid: only meaningful for a uid of our own.
    if root:
        wanted[resource.RLIMIT_NPROC] = limits.nproc
    for which, value in wanted.items():
        if value is not None:
            resource.setrlimit(which, (value, value))


def clean_env(sandbox: Sandbox) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in _KEPT_ENV}
    env.setdefault("PATH", "/usr/bin:/bin")
    env.update({
        "HOME": sandbox.home,
        "TMPDIR": sandbox.home,
        "IPYTHONDIR": os.path.join(sandbox.home, ".ipython"),
        "MPLCONFIGDIR": os.path.join(sandbox.home, ".matplotlib"),
        "JUPYTER_RUNTIME_DIR": os.path.join(sandbox.home, ".jupyter-runtime"),
        "MPLBACKEND": "Agg",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        # One thread each: jobs run in parallel, one per core.
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
    })
    env.update(sandbox.env)
    return env


def prepare_home(sandbox: Sandbox) -> None:
    """Create the sandbox's home (and cwd) owned by its uid; call as the grader."""
    for path in filter(None, (sandbox.home, sandbox.cwd)):
        os.makedirs(path, exist_ok=True)
        if sandbox.uid is not None:
            os.chown(path, sandbox.uid, sandbox.uid)
        os.chmod(path, 0o700)


def kill_uid(uid: int) -> None:
    """Kill every process of ``uid`` (left-overs that escaped the process group)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            os.kill(-1, signal.SIGKILL)  # every process of this uid except the caller
        except OSError:
            pass
        os._exit(0)
    os.waitpid(pid, 0)


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _launch(spec_path: str, program: list[str]) -> None:
    sandbox = Sandbox.read(spec_path)
    root = os.geteuid() == 0
    if "-f" in program:
        i = program.index("-f") + 1
        copy = os.path.join(sandbox.home, "kernel-connection.json")
        shutil.copyfile(program[i], copy)
        if sandbox.uid is not None:
            os.chown(copy, sandbox.uid, sandbox.uid)
        program[i] = copy
    try:
        os.setsid()
    except PermissionError:
        pass  # already a session leader (jupyter_client starts kernels in a new session)
    if sandbox.namespace and root:
        _hide(sandbox.hide)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    # AUTOGRADER_SANDBOX_DEBUG=1 keeps stderr, to see why a sandboxed program fails to start.
    if not os.environ.get("AUTOGRADER_SANDBOX_DEBUG"):
        os.dup2(devnull, 2)
    _set_limits(sandbox.limits, root and sandbox.uid is not None)
    if root and sandbox.uid is not None:
        os.setgroups([])
        os.setgid(sandbox.uid)
        os.setuid(sandbox.uid)
    if sandbox.cwd:
        os.chdir(sandbox.cwd)
    os.umask(0o077)
    os.execve(program[0], program, clean_env(sandbox))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 3 or argv[1] != "--":
        sys.exit("usage: python -m autograder.sandbox SPEC.json -- PROGRAM [ARGS...]")
    _launch(argv[0], argv[2:])


if __name__ == "__main__":
    main()
