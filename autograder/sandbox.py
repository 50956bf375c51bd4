"""Isolation for code from submissions: a bubblewrap sandbox per process, with resource limits.

Everything a student wrote runs in a process started through this module's launcher::

    python -m autograder.sandbox SPEC.json -- PROGRAM ARGS...

The launcher reads the :class:`Sandbox` spec and, running as the grader:

* starts a new session and sends stdout/stderr to ``/dev/null`` (the program reports through
  the files of the folders it may write);
* when the grader is root, switches to the job's own unprivileged uid (leased with
  :func:`lease_uid`, so that two grader runs on one machine never share one) with no groups;
* sets resource limits: address space (memory), CPU seconds, file size, no core files;
* replaces the environment with a small, clean one (no tokens from the grader's environment);
* execs `bubblewrap <https://github.com/containers/bubblewrap>`_, which works for root and ordinary
  users alike (user namespaces), and gives the program its own user, PID, mount, network, IPC and
  UTS namespaces: it sees only its own processes, no network (only a loopback of its own), the
  system's programs and libraries and the Python installation read-only, a private ``/tmp``, home
  and ``/dev/shm`` (small tmpfs), and the folders the spec names (read-only or read-write), all at
  their real paths. Nothing else exists in its file system: not the export folder, the course
  folder, ``solutions/``, other jobs or the instructor's home.
* Inside, ``prlimit`` caps the number of processes. The count is per user namespace, so it holds
  for a job even when every job runs as the same (non-root) user.

bubblewrap runs with ``--die-with-parent``, and PID 1 of the sandbox is bubblewrap's: when the
program exits, or the process that started the sandbox dies, or the grader kills the sandbox's
outer process, the kernel kills every process of the namespace, daemons included. Nothing is ever
killed by uid.

:func:`probe` starts a sandbox once per grading run; where none can start, ``grade`` refuses, unless
told ``--unsandboxed`` (then ``confine=False``: resource limits only, as the grader's user).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import json
import os
import pwd
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field

# Root mode leases one uid per job from this range: unused on a normal system (Debian allots
# 1000-59999 to people and 60000-64999 to dynamically created users).
SANDBOX_UID_BASE = 61000
SANDBOX_UID_COUNT = 1000
# One lock file per uid, in a folder only root may write: a uid is held while its file is locked.
UID_LOCK_DIR = "/run/autograder-uids"

INSTALL_HINT = ("install bubblewrap (Debian/Ubuntu: apt install bubblewrap; Fedora: dnf install "
                "bubblewrap) and allow unprivileged user namespaces (sysctl "
                "kernel.unprivileged_userns_clone=1; on Ubuntu 24.04 also "
                "kernel.apparmor_restrict_unprivileged_userns=0)")
UNPROTECTED = ("student code runs as {user} with resource limits only: it can read and write "
               "whatever that user can (solutions/, the gradebook, the export folder, other "
               "students' jobs, the home folder), see and signal other processes, reach the "
               "network, and leave processes running after the grading")

_CLONE_NEWNS = 0x00020000
_MS_NOSUID, _MS_NODEV = 2, 4
_MS_BIND, _MS_REC, _MS_PRIVATE = 0x1000, 0x4000, 1 << 18
_MNT_DETACH = 2

# Variables the verification child may inherit; everything else is dropped. The child
# registers the grader's extra assignments (autograder/assignments.py) from the last one.
_KEPT_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "NBGRADER_EXECUTION",
             "AUTOGRADER_EXTRA_ASSIGNMENTS")
# What of /etc a Python process may need (dynamic linker, time zone, user names, fonts).
_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "passwd", "group",
        "nsswitch.conf", "hosts", "fonts", "mime.types")


@dataclass
class Limits:
    """Resource limits of one sandboxed process (``None``: leave the inherited limit)."""

    memory_mb: int | None = 2048   # RLIMIT_AS: a runaway allocation raises MemoryError
    cpu_s: int | None = 600        # RLIMIT_CPU: SIGKILL
    fsize_mb: int | None = 64      # RLIMIT_FSIZE: no file above this
    nproc: int | None = 128        # processes and threads of the sandbox
    tmpfs_mb: int = 256            # each of the private /tmp, home and /dev/shm (memory-backed)


@dataclass
class Sandbox:
    """Where and as whom a sandboxed program runs; serialised to JSON for the launcher."""

    home: str                       # HOME: an empty private tmpfs at this path
    cwd: str | None                 # bound read-only; None: the caller's working directory
    limits: Limits = field(default_factory=Limits)
    uid: int | None = None          # root: the job's leased uid; None: the grader's user
    confine: bool = True            # False (--unsandboxed): resource limits only
    readable: list[str] = field(default_factory=list)   # extra paths, read-only
    writable: list[str] = field(default_factory=list)   # extra folders, read-write
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

    sandboxed: bool          # bubblewrap starts: namespaces per job
    own_uid: bool            # root: every job also runs as a uid of its own
    problem: str = ""        # why there is no sandbox

    # What older callers ask: can student code write the grader's files, read hidden ones?
    @property
    def drop_privileges(self) -> bool:
        return self.sandboxed

    @property
    def hide_files(self) -> bool:
        return self.sandboxed

    def describe(self) -> str:
        if self.sandboxed:
            who = ("a uid of its own per job" if self.own_uid
                   else "the grader's user, in a user namespace")
            return ("bubblewrap sandbox per job: own PID, mount and network namespaces, "
                    f"read-only system, private /tmp and home, {who}, resource limits")
        return "NONE (--unsandboxed): " + unprotected()


def unprotected() -> str:
    """What student code can do when it runs without a sandbox."""
    return UNPROTECTED.format(user=_user_name())


def _user_name() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


class UidLease:
    """An unprivileged uid that no other job on this machine holds while the lease is open."""

    def __init__(self, uid: int, lock_fd: int):
        self.uid, self._fd = uid, lock_fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> UidLease:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _lock_dir(path: str) -> str:
    os.makedirs(path, mode=0o700, exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
        raise RuntimeError(f"{path} must be a folder owned by root and writable by root only")
    return path


def lease_uid(lock_dir: str = UID_LOCK_DIR) -> UidLease:
    """Lock a free uid of the sandbox range (root only); the lock dies with this process."""
    folder = _lock_dir(lock_dir)
    for uid in range(SANDBOX_UID_BASE, SANDBOX_UID_BASE + SANDBOX_UID_COUNT):
        fd = os.open(os.path.join(folder, f"{uid}.lock"),
                     os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return UidLease(uid, fd)
    raise RuntimeError(f"all {SANDBOX_UID_COUNT} sandbox uids are in use")


def _libc():
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _mount(source, target, fstype, flags, data=None) -> None:
    def enc(value):
        return None if value is None else os.fsencode(value)

    if _libc().mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        raise OSError(ctypes.get_errno(), f"mount {source} on {target}")


def _blocked_ancestor(path: str, uid: int) -> str | None:
    """The first folder on the way to ``path`` that ``uid`` (with no groups) cannot enter."""
    current = "/"
    for part in path.strip("/").split("/"):
        current = os.path.join(current, part)
        if not os.path.isdir(current):
            continue
        info = os.stat(current)
        if not (info.st_mode & 0o001 or (info.st_uid == uid and info.st_mode & 0o100)
                or (info.st_gid == uid and info.st_mode & 0o010)):
            return current
    return None


def python_paths() -> list[str]:
    """The interpreter's installation (e.g. under /root/.pyenv) and the environment's prefix."""
    paths = {os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, sys.exec_prefix)}
    paths.add(os.path.dirname(os.path.realpath(sys.executable)))
    paths = {p for p in paths if p != "/usr" and not p.startswith("/usr/")}
    return sorted(p for p in paths
                  if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in paths))


def _mount_point(path: str, folder: bool) -> None:
    """An empty folder or file to bind a folder or file onto."""
    if folder:
        os.makedirs(path, exist_ok=True)
    elif not os.path.exists(path):
        open(path, "x").close()


def _make_reachable(paths: list[str], uid: int) -> None:
    """As root, before switching uid: in a new mount namespace, let other users reach ``paths``
    that sit under a private folder (an interpreter under /root/.pyenv): stage them, cover the
    folder with an empty tmpfs (which also hides the rest of it), and bind them back in."""
    blocked: dict[str, list[str]] = {}
    for path in paths:
        ancestor = _blocked_ancestor(path, uid)
        if ancestor is not None and os.path.exists(path):
            blocked.setdefault(ancestor, []).append(path)
    if not blocked:
        return
    if _libc().unshare(_CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    # Private propagation, so the mounts below never leak into the grader's namespace.
    _mount("none", "/", None, _MS_REC | _MS_PRIVATE)
    staging = tempfile.mkdtemp(prefix="autograder-stage-")
    os.umask(0o022)  # the folders made below must be enterable by the sandbox's uid
    try:
        _mount("tmpfs", staging, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=4k,mode=0700")
        staged = []
        for inner in blocked.values():
            for path in inner:
                stage = os.path.join(staging, str(len(staged)))
                _mount_point(stage, os.path.isdir(path))
                _mount(path, stage, None, _MS_BIND | _MS_REC)
                staged.append((stage, path))
        for ancestor in blocked:
            _mount("tmpfs", ancestor, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=64k,mode=0755")
        for stage, path in staged:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            _mount_point(path, os.path.isdir(stage))
            _mount(stage, path, None, _MS_BIND | _MS_REC)
    finally:
        # The staging folder was created in the shared file system: leave nothing behind there.
        _libc().umount2(os.fsencode(staging), _MNT_DETACH)
        os.rmdir(staging)


def bwrap_path() -> str | None:
    return shutil.which("bwrap") or next(
        (p for p in ("/usr/bin/bwrap", "/bin/bwrap", "/usr/local/bin/bwrap") if os.path.exists(p)),
        None)


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for name in _ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return args


def bwrap_command(sandbox: Sandbox, program: list[str], cwd: str) -> list[str]:
    """bubblewrap's command line for ``program`` (run in ``cwd``) in ``sandbox``."""
    tmpfs = str(sandbox.limits.tmpfs_mb * 1024 * 1024)
    args = [bwrap_path() or "bwrap",
            "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--hostname", "sandbox",
            *_system_binds(),
            "--proc", "/proc", "--dev", "/dev",
            "--size", tmpfs, "--tmpfs", "/dev/shm",
            "--size", tmpfs, "--tmpfs", "/tmp",
            "--size", tmpfs, "--perms", "0700", "--tmpfs", sandbox.home]
    for path in python_paths():
        args += ["--ro-bind", path, path]
    for path in [cwd, *sandbox.readable]:
        args += ["--ro-bind", path, path]
    for path in sandbox.writable:
        args += ["--bind", path, path]
    args += ["--chdir", cwd, "--"]
    prlimit = shutil.which("prlimit")
    if sandbox.limits.nproc and prlimit:
        args += [prlimit, f"--nproc={sandbox.limits.nproc}", "--"]
    return args + program


def clean_env(sandbox: Sandbox) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in _KEPT_ENV}
    env.setdefault("PATH", "/usr/bin:/bin")
    env.update({
        "HOME": sandbox.home,
        "TMPDIR": "/tmp" if sandbox.confine else sandbox.home,
        "IPYTHONDIR": os.path.join(sandbox.home, ".ipython"),
        "MPLCONFIGDIR": os.path.join(sandbox.home, ".matplotlib"),
        "MPLBACKEND": "Agg",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        # One thread each: jobs run in parallel, one per core.
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
    })
    env.update(sandbox.env)
    return env


def prepare(sandbox: Sandbox) -> None:
    """Create the sandbox's folders, owned by its uid; call as the grader."""
    folders = list(sandbox.writable)
    if not sandbox.confine:
        folders.append(sandbox.home)  # with bubblewrap, home is a tmpfs
    for path in filter(None, folders):
        os.makedirs(path, exist_ok=True)
        if sandbox.uid is not None:
            os.chown(path, sandbox.uid, sandbox.uid)
        os.chmod(path, 0o700)


def kill_group(pid: int) -> None:
    """Kill a sandbox (its outer process: the kernel then ends its PID namespace) or a worker."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _set_limits(limits: Limits, nproc: bool) -> None:
    mb = 1024 * 1024
    wanted = {
        resource.RLIMIT_AS: limits.memory_mb and limits.memory_mb * mb,
        resource.RLIMIT_CPU: limits.cpu_s,
        resource.RLIMIT_FSIZE: limits.fsize_mb and limits.fsize_mb * mb,
        resource.RLIMIT_CORE: 0,
    }
    if nproc:
        wanted[resource.RLIMIT_NPROC] = limits.nproc
    for which, value in wanted.items():
        if value is not None:
            resource.setrlimit(which, (value, value))


def _launch(spec_path: str, program: list[str]) -> None:
    sandbox = Sandbox.read(spec_path)
    root = os.geteuid() == 0
    drop = root and sandbox.uid is not None
    try:
        os.setsid()
    except PermissionError:
        pass  # already a session leader
    cwd = sandbox.cwd or os.getcwd()
    if drop and sandbox.confine:
        _make_reachable([*python_paths(), cwd, *sandbox.readable, *sandbox.writable],
                        sandbox.uid)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    # AUTOGRADER_SANDBOX_DEBUG=1 keeps stderr, to see why a sandboxed program fails to start.
    if not os.environ.get("AUTOGRADER_SANDBOX_DEBUG"):
        os.dup2(devnull, 2)
    # Outside bubblewrap, RLIMIT_NPROC counts every process of the uid: only for a uid of our own.
    _set_limits(sandbox.limits, nproc=drop and not sandbox.confine)
    if drop:
        os.setgroups([])
        os.setgid(sandbox.uid)
        os.setuid(sandbox.uid)
    os.chdir(cwd)
    os.umask(0o077)
    env = clean_env(sandbox)
    if sandbox.confine:
        command = bwrap_command(sandbox, program, cwd)
        os.execve(command[0], command, env)
    os.execve(program[0], program, env)


def probe() -> Isolation:
    """Start one sandbox (as a job would) to find out whether this machine can isolate jobs."""
    root = os.geteuid() == 0
    if bwrap_path() is None:
        return Isolation(False, False, "bubblewrap (bwrap) is not installed")
    folder = tempfile.mkdtemp(prefix="autograder-probe-")
    lease = lease_uid() if root else None
    try:
        sandbox = Sandbox(home=os.path.join(folder, "home"), cwd=folder,
                          uid=lease.uid if lease else None)
        if lease:
            os.chown(folder, lease.uid, lease.uid)
            os.chmod(folder, 0o700)
        spec = sandbox.write(os.path.join(folder, "probe.json"))
        env = dict(os.environ, AUTOGRADER_SANDBOX_DEBUG="1")
        # In the sandbox: its own PID namespace, and the Python environment works.
        check = "import os, numpy; assert os.getpid() < 10"
        run = subprocess.run(sandbox.command(spec, [sys.executable, "-c", check]), env=env,
                             capture_output=True, text=True, timeout=300)
    finally:
        if lease:
            lease.release()
        shutil.rmtree(folder, ignore_errors=True)
    if run.returncode != 0:
        lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
        return Isolation(False, False, f"bubblewrap cannot start a sandbox here "
                                       f"({lines[-1][:200] if lines else run.returncode})")
    return Isolation(True, root)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 3 or argv[1] != "--":
        sys.exit("usage: python -m autograder.sandbox SPEC.json -- PROGRAM [ARGS...]")
    _launch(argv[0], argv[2:])


if __name__ == "__main__":
    main()
