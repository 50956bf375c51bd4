"""Trusted re-verification: the score of each graded function, decided by the grader.

The parent (the grader) generates every check's cases and computes the reference outputs with
``solutions``; a sandboxed child (:mod:`autograder.verify_child`) that cannot import ``solutions``
runs the submission's notebook once, as a kernel would, and then every check's cases on the
notebook's functions, and returns their outputs as arrays; the parent compares them with
:func:`autograder.checks.compare`. The notebook's outputs from that one run become the autograded
notebook's (no kernel runs it a second time). The checks reach the child only after the
notebook's cells have run and their outputs have been read. A child that crashes or hangs in a
check loses that check, and a fresh child goes on with the remaining ones; one that dies while
the notebook runs is followed by a child that runs only the student's cells and the read-only
cells' definitions, so that a crash in a visible test costs no more than that function's points.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass

import numpy as np

from autograder import checks as checks_module
from autograder.assignments import extra_assignment_files
from autograder.sandbox import Limits, Sandbox, kill_group, prepare
from autograder.untrusted import load_npz, read_text

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# How often a check is started again after its process was killed from outside.
MAX_KILLED_RETRIES = 2
POLL_S = 0.01  # how often the parent looks whether the child has run the notebook


@dataclass
class Verification:
    """The trusted grades, notes on the run, and the notebook's run: one entry per cell of
    ``notebook`` (``{"execution_count", "outputs"}`` with nbformat outputs, or None for a cell
    that did not run), and whether every cell ran."""

    results: list[CheckResult]
    notes: list[str]
    outputs: list[dict | None]
    notebook_completed: bool


@dataclass
class CheckResult:
    """The trusted grade of one function: points, and why it lost them (None when full marks)."""

    name: str
    points: float
    max_points: float
    reason: str | None


def prepare_reference(assignment: str, folder: str) -> None:
    """Write the cases (``cases.npz``, ``cases.json``) and reference outputs (``reference.npz``)."""
    reference = checks_module.reference_namespace(assignment)
    arrays, layout, outputs = {}, {}, {}
    for check in checks_module.CHECKS[assignment]:
        layout[check.name] = []
        for i, case in enumerate(check.make_cases()):
            entry = {}
            for key, value in case.items():
                if isinstance(value, np.ndarray):
                    ref = f"a{len(arrays)}"
                    arrays[ref] = value
                    entry[key] = {"array": ref}
                else:
                    entry[key] = {"value": value.item() if isinstance(value, np.generic) else value}
            layout[check.name].append(entry)
            expected, error = checks_module.run_case(check, reference, case)
            if error is not None:
                raise RuntimeError(f"the reference fails on case {i} of {check.name}: {error}")
            for key, value in expected.items():
                outputs[f"{check.name}/c{i}/{key}"] = np.asarray(value, dtype=np.float64)
    np.savez(os.path.join(folder, "cases.npz"), **arrays)
    np.savez(os.path.join(folder, "reference.npz"), **outputs)
    with open(os.path.join(folder, "cases.json"), "w") as f:
        json.dump(layout, f)


def _unpack(data, prefix: str, n_cases: int) -> list[dict[str, np.ndarray]]:
    """``data`` (an npz, or a dict of arrays) keyed ``c<i>/<output>``, as one dict per case."""
    out: list[dict[str, np.ndarray]] = [{} for _ in range(n_cases)]
    for key in getattr(data, "files", data):
        if key.startswith(prefix):
            case, name = key[len(prefix):].split("/", 1)
            i = int(case[1:])
            if 0 <= i < n_cases:
                out[i][name] = data[key]
    return out


def _site_paths() -> list[str]:
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    return sorted(p for p in paths if os.path.isdir(p))


def verify(
    assignment: str,
    cells: list[str],
    reference_dir: str,
    work_dir: str,
    *,
    uid: int | None,
    confine: bool,
    timeout: float,
    limits: Limits,
    data_files: list[str] = (),
    notebook: list[str] | None = None,
    capture: int | None = None,
) -> Verification:
    """Grade a submission: run ``notebook`` (every code cell, in order; default ``cells``), keeping
    at most ``capture`` bytes of each cell's outputs (None: none), then the checks. ``cells`` (the
    student's cells and the read-only cells' definitions) replace the notebook in a child that
    starts again after the notebook's run died.

    ``reference_dir`` holds what :func:`prepare_reference` wrote; ``work_dir`` is created for the
    child; ``data_files`` are copied next to the code (fixtures it may load). The child runs in a
    sandbox (as ``uid`` when root; ``confine=False``: limits only) that sees, read-only, its code,
    the data files and, once the notebook has run, the checks and their cases, and can write only
    its output folder, a fresh one per attempt. A child killed from outside (SIGKILL that the
    sandbox did not send) is started again.
    """
    checks = checks_module.CHECKS[assignment]
    notebook = cells if notebook is None else notebook
    # The static scan reads the student's code and the helpers the notebook gives, as released.
    source = "\n".join(cells)
    with open(os.path.join(reference_dir, "cases.json")) as f:
        layout = json.load(f)
    results: dict[str, CheckResult] = {}
    for check in checks:
        found = checks_module.find_forbidden(source, check)
        if found:
            results[check.name] = CheckResult(
                check.name, 0, check.points,
                f"must be written from scratch, but uses {', '.join(found)}")

    runner = os.path.join(work_dir, "runner")
    checks_dir = os.path.join(work_dir, "checks")
    input_path = os.path.join(work_dir, "input.json")
    sandbox = Sandbox(home=os.path.join(work_dir, "home"), cwd=os.path.join(work_dir, "cwd"),
                      limits=limits, uid=uid, confine=confine,
                      readable=[runner, checks_dir, input_path])
    os.makedirs(runner)
    os.makedirs(checks_dir)
    shutil.copy(os.path.join(PACKAGE_DIR, "verify_child.py"), runner)
    _open_to_all(work_dir)
    os.makedirs(sandbox.cwd)
    for path in data_files:
        shutil.copy(path, sandbox.cwd)
    prepare(sandbox)

    notes: list[str] = []
    outputs: list[dict | None] = [None] * len(notebook)
    completed = False
    running = notebook
    remaining = [c.name for c in checks if c.name not in results]
    attempt = 0
    killed: dict[str, int] = {}
    # The notebook runs for its outputs even when the scan has already failed every function.
    while remaining or (attempt == 0 and capture is not None):
        attempt += 1
        out_dir = os.path.join(work_dir, f"out{attempt}")
        os.makedirs(out_dir)
        # Outputs are kept only while no check has reached the sandbox.
        keep = capture if running is notebook and not _checks_ready(checks_dir) else None
        with open(input_path, "w") as f:
            json.dump({"assignment": assignment, "cells": running, "checks": remaining,
                       "timeout": timeout, "out_dir": out_dir, "capture": keep}, f)
        # Only this job's uid may read the student's code or write the outputs.
        os.chmod(input_path, 0o600)
        if uid is not None:
            for path in (out_dir, input_path):
                os.chown(path, uid, uid)
        os.chmod(out_dir, 0o700)
        progress = os.path.join(out_dir, "progress")
        sandbox.writable = [out_dir]
        spec = sandbox.write(os.path.join(work_dir, f"sandbox{attempt}.json"))
        program = [sys.executable, "-I", "-S", os.path.join(runner, "verify_child.py"), work_dir,
                   json.dumps(_site_paths())]
        # One timeout per cell and per check, plus start-up time.
        budget = timeout * (len(running) + len(remaining) + 2) + 30

        def notebook_done(out_dir=out_dir, keep=keep, progress=progress) -> None:
            """Once the cells have run: read their outputs, then hand the checks over."""
            if _checks_ready(checks_dir) or _read_small(progress) != CELLS_DONE:
                return
            if keep is not None:
                outputs[:] = read_outputs(out_dir, len(notebook), keep)
            _hand_over_checks(assignment, reference_dir, layout, checks_dir)

        status, elapsed = _run_child(sandbox.command(spec, program), budget,
                                     os.path.join(work_dir, "launcher.log"), notebook_done)
        current = _read_small(progress)
        if keep is not None and not _checks_ready(checks_dir):
            # It died while the notebook ran: the checks never reached it.
            outputs[:] = read_outputs(out_dir, len(notebook), keep)
        if running is notebook:
            completed = _checks_ready(checks_dir)
        finished = []
        for name in remaining:
            meta_path = os.path.join(out_dir, f"{name}.json")
            if not os.path.exists(meta_path):
                break
            finished.append(name)
            results[name] = _judge(assignment, name, out_dir, reference_dir, layout)
        if attempt == 1:
            notes.extend(_cell_notes(os.path.join(out_dir, "_cells.json")))
        remaining = remaining[len(finished):]
        if not remaining:
            break
        if confine and status is not None and status > 128:
            status = 128 - status  # bubblewrap passes on a signal's death as 128 + signal
        in_notebook = running is notebook and notebook is not cells and current not in remaining
        if status == -signal.SIGKILL and not in_notebook:
            # Not our time limit, not the memory limit (MemoryError): the OOM killer, an
            # administrator, or a signal from outside. Run the check again, but not forever.
            killed[current] = killed.get(current, 0) + 1
            if killed[current] <= MAX_KILLED_RETRIES:
                continue
        why = _death(status, elapsed, budget)
        if killed.get(current, 0) > 1:
            why += f", {killed[current]} times"
        if current in remaining:
            check = checks_module.get_check(assignment, current)
            results[current] = CheckResult(current, 0, check.points, f"the process {why}")
            remaining.remove(current)
        elif in_notebook:
            # Died while running the notebook (a visible test, a set-up cell): grade again with
            # the student's cells and the read-only cells' definitions only.
            notes.append(f"the notebook's run stopped at {current.strip('<>')}: the process {why}")
            running = cells
        else:
            # Died while running the notebook's cells: nothing can be graded.
            for name in remaining:
                check = checks_module.get_check(assignment, name)
                results[name] = CheckResult(
                    name, 0, check.points, f"the notebook's code {why} before {name} could run")
            remaining = []
    ordered = note_wrong_dependencies(assignment, [results[c.name] for c in checks])
    return Verification(ordered, notes, outputs, completed)


CELLS_DONE = "<cells-done>"


def _checks_ready(checks_dir: str) -> bool:
    return os.path.exists(os.path.join(checks_dir, "ready"))


def _open_to_all(folder: str) -> None:
    """Folders 755 and files 644 under ``folder``: the sandbox's uid reads what it is shown."""
    os.chmod(folder, 0o755)
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            os.chmod(os.path.join(root, name), 0o755 if name in dirs else 0o644)


def _hand_over_checks(assignment: str, reference_dir: str, layout: dict, checks_dir: str) -> None:
    """Put the checks, their cases and the registry where the child waits for them; ``ready``
    last."""
    package = os.path.join(checks_dir, "autograder")
    shutil.copytree(os.path.join(PACKAGE_DIR, "checks"), os.path.join(package, "checks"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    open(os.path.join(package, "__init__.py"), "w").close()
    # The registry, and the modules of assignments registered through AUTOGRADER_EXTRA_ASSIGNMENTS.
    shutil.copy(os.path.join(PACKAGE_DIR, "assignments.py"), package)
    for path in extra_assignment_files():
        shutil.copy(path, checks_dir)
    shutil.copy(os.path.join(reference_dir, "cases.npz"), checks_dir)
    with open(os.path.join(checks_dir, "cases.json"), "w") as f:
        json.dump(layout, f)
    _open_to_all(checks_dir)
    open(os.path.join(checks_dir, "ready"), "w").close()


_OUTPUT_FIELDS = {
    "stream": {"name": str, "text": str},
    "display_data": {"data": dict, "metadata": dict},
    "execute_result": {"data": dict, "metadata": dict},
    "error": {"ename": str, "evalue": str, "traceback": list},
}


def read_outputs(out_dir: str, n_cells: int, max_bytes: int) -> list[dict | None]:
    """The outputs the child wrote for each cell (untrusted): only well-formed notebook outputs
    are kept; a cell whose file is missing, too large or malformed has None."""
    import nbformat

    cells: list[dict | None] = []
    for i in range(n_cells):
        try:
            # JSON escapes can make text up to six times longer.
            data = json.loads(read_text(os.path.join(out_dir, f"_out{i}.json"),
                                        6 * max_bytes + 100_000))
        except (OSError, ValueError):
            cells.append(None)
            continue
        outputs = []
        for raw in data.get("outputs", []) if isinstance(data, dict) else []:
            fields = _OUTPUT_FIELDS.get(raw.get("output_type")) if isinstance(raw, dict) else None
            if (fields is None or not all(isinstance(raw.get(k), t) for k, t in fields.items())
                    or raw.get("name", "stdout") not in ("stdout", "stderr")):
                continue
            kwargs = {k: raw[k] for k in fields}
            if raw["output_type"] == "execute_result":
                count = raw.get("execution_count")
                kwargs["execution_count"] = count if isinstance(count, int) else None
            if raw["output_type"] == "error":
                kwargs["traceback"] = [str(line) for line in raw["traceback"]]
            output = nbformat.v4.new_output(raw["output_type"], **kwargs)
            try:
                nbformat.validate(output, ref=raw["output_type"], version=4, version_minor=5)
            except nbformat.ValidationError:
                continue
            outputs.append(output)
        count = data.get("execution_count") if isinstance(data, dict) else None
        cells.append({"execution_count": count if isinstance(count, int) else None,
                      "outputs": outputs})
    return cells


def note_wrong_dependencies(assignment: str, results: list[CheckResult]) -> list[CheckResult]:
    """Add to the reason of each failed check the other graded functions it ran that failed too.

    A backward check runs the student's own forward to get the cache, so a wrong forward usually
    costs the backward's points as well; the reason then says to fix the forward first.
    """
    failed = {r.name for r in results if r.reason is not None}
    for result in results:
        if result.reason is None:
            continue
        needs = checks_module.get_check(assignment, result.name).needs
        wrong = [name for name in needs if name != result.name and name in failed]
        if wrong:
            names = ", ".join(wrong)
            result.reason += (f"; note: your {names} {'is' if len(wrong) == 1 else 'are'} also "
                              f"wrong and {result.name} runs it, fix "
                              f"{'it' if len(wrong) == 1 else 'them'} first")
    return results


def _run_child(command: list[str], budget: float, log_path: str,
               poll=lambda: None) -> tuple[int | None, float]:
    """Run the sandboxed child for at most ``budget`` seconds, calling ``poll`` every
    :data:`POLL_S` while it runs, then make sure it is gone; returns its exit status (None:
    stopped at the time limit) and the seconds it took."""
    started = time.monotonic()
    # The launcher's own errors land in the log; the child's output goes to /dev/null.
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=log)
    status = None
    while (left := started + budget - time.monotonic()) > 0:
        try:
            status = proc.wait(min(POLL_S, left))
            break
        except subprocess.TimeoutExpired:
            poll()
    # The sandbox's outer process: with it, everything in its PID namespace dies.
    kill_group(proc.pid)
    proc.wait()
    return status, time.monotonic() - started


def _read_small(path: str) -> str:
    try:
        return read_text(path, 200)
    except OSError:
        return ""


def _cell_notes(path: str) -> list[str]:
    """The child's notes on the notebook's cells (which ones raised), if it wrote sensible ones."""
    try:
        notes = json.loads(read_text(path, 100_000))
    except (OSError, ValueError):
        return []
    return [str(n)[:300] for n in notes[:10]] if isinstance(notes, list) else []


def _death(status: int | None, elapsed: float, budget: float) -> str:
    if status is None:
        return f"was stopped after {elapsed:.0f} s (time limit)"
    if status < 0:
        import signal

        name = signal.Signals(-status).name
        meaning = {"SIGSEGV": "segmentation fault", "SIGKILL": "killed (out of memory or limit)",
                   "SIGXCPU": "CPU time limit", "SIGXFSZ": "file size limit",
                   "SIGABRT": "aborted"}.get(name, "")
        return f"crashed ({name}{': ' + meaning if meaning else ''})"
    return f"exited with status {status} (sys.exit or os._exit in the code?)"


def _judge(assignment, name, out_dir, reference_dir, layout) -> CheckResult:
    check = checks_module.get_check(assignment, name)
    n_cases = len(layout[name])
    try:
        meta = json.loads(read_text(os.path.join(out_dir, f"{name}.json"), 100_000))
        error = meta.get("error") if isinstance(meta, dict) else "malformed result"
        if error:
            return CheckResult(name, 0, check.points, str(error)[:400])
        got = _unpack(load_npz(os.path.join(out_dir, f"{name}.npz")), "", n_cases)
        with np.load(os.path.join(reference_dir, "reference.npz"), allow_pickle=False) as data:
            expected = _unpack(data, f"{name}/", n_cases)
    except (OSError, ValueError, KeyError) as error:
        return CheckResult(name, 0, check.points, f"its outputs could not be read ({error})")
    cases = [{k: v["value"] for k, v in case.items() if "value" in v} for case in layout[name]]
    reason = checks_module.compare(name, got, expected, check, cases)
    if reason is None:
        return CheckResult(name, check.points, check.points, None)
    return CheckResult(name, 0, check.points, reason)
