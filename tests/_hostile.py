"""Helpers of the grader security tests: crafted submissions, and the grader run as another user.

A crafted submission is the student version of an assignment (every solution a stub) or the solved
version (the instructor's answers pasted into it), plus cells that attack the grader. An attack cell
runs in the notebook's one run (the re-verification child), and reports what it achieved on one
output line, ``REPORT <tag> <json>``, which the tests read back from the autograded notebook.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
REPORT = "REPORT"


def release_notebook(assignment: str):
    """The student version, as released: every graded function raises NotImplementedError."""
    return nbformat.read(ROOT / "notebooks" / assignment / f"{assignment}.ipynb", as_version=4)


def solved_notebook(assignment: str):
    """The student version with every solution cell replaced by the instructor's answer."""
    source = nbformat.read(ROOT / "autograder" / "source" / assignment / f"{assignment}.ipynb",
                           as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    nb = release_notebook(assignment)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    return nb


def with_cells(nb, *sources: str):
    """``nb`` with student cells (no nbgrader metadata) appended."""
    for source in sources:
        nb.cells.append(nbformat.v4.new_code_cell(source))
    return nb


def report_code(tag: str, expression: str) -> str:
    """Code that prints ``expression`` (JSON-serialisable) as the report ``tag``."""
    return f"print({REPORT!r}, {tag!r}, __import__('json').dumps({expression}))"


def notebook_reports(notebook: Path) -> dict[str, object]:
    """tag -> the value reported by the attack cells of an autograded notebook."""
    found = {}
    for cell in nbformat.read(notebook, as_version=4).cells:
        for output in cell.get("outputs", []):
            for line in output.get("text", "").splitlines():
                if line.startswith(REPORT + " "):
                    _, tag, value = line.split(" ", 2)
                    found[tag] = json.loads(value)
    return found


def reachable_view(paths: list[str]) -> list[str]:
    """bubblewrap options (run as root) that let any user reach ``paths`` (e.g. an interpreter
    under the private /root/.pyenv) in an otherwise unchanged view of the file system."""
    blocked: dict[str, list[str]] = {}
    for path in paths:
        current = "/"
        for part in path.strip("/").split("/"):
            current = os.path.join(current, part)
            if os.path.isdir(current) and not os.stat(current).st_mode & 0o001:
                blocked.setdefault(current, []).append(path)
                break
    options = []
    for ancestor, inner in blocked.items():
        options += ["--perms", "0755", "--tmpfs", ancestor]
        for path in inner:
            # bubblewrap would create the folders in between readable by root only.
            parts = os.path.relpath(path, ancestor).split(os.sep)[:-1]
            for depth in range(1, len(parts) + 1):
                options += ["--perms", "0755", "--dir", os.path.join(ancestor, *parts[:depth])]
            options += ["--ro-bind", path, path]
    return options


def as_user(command: list[str], uid: int) -> list[str]:
    """``command`` run by root as the unprivileged ``uid`` (no groups), the way an instructor
    without root runs the grader; the Python installation stays reachable for that user."""
    from autograder.sandbox import python_paths

    return ["bwrap", "--dev-bind", "/", "/", *reachable_view(python_paths()), "--",
            "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", *command]


class Listener:
    """A TCP server on 127.0.0.1 that records every connection it accepts (student code must
    never reach it)."""

    def __init__(self):
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.accepted: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.socket.accept()
            except OSError:
                return
            conn.settimeout(2)
            try:
                self.accepted.append(conn.recv(100))
            except OSError:
                self.accepted.append(b"")
            conn.close()

    def close(self) -> None:
        self.socket.close()


def python_command(*args: str) -> list[str]:
    return [sys.executable, *args]


def grade_rows(course: Path, assignment: str) -> dict[str, dict]:
    """The rows of a course folder's grades CSV, by student id."""
    with open(course / f"grades-{assignment}.csv", encoding="utf-8") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def mode_folder(request, isolation, prefix: str) -> Path:
    """A scratch folder for one grading mode (``request.param``: "root" or "user") of a session
    fixture, removed when the session ends; skips where that mode cannot run.

    Not under pytest's tmp folder, which only root may enter.
    """
    if not isolation.sandboxed and not os.environ.get("REQUIRE_SANDBOX"):
        pytest.skip(f"no sandbox on this machine: {isolation.problem}")
    if request.param == "root" and os.geteuid() != 0:
        pytest.skip("root mode needs root")
    base = Path(tempfile.mkdtemp(prefix=prefix))
    request.addfinalizer(lambda: shutil.rmtree(base, ignore_errors=True))
    return base
