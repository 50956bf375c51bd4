"""Session fixture shared by the book tests: the Jupyter Book, built once per test session.

Only the book lives here; every other test keeps its fixtures in its own file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# A cold build of the whole book takes a few minutes on 2 cores; this only guards against a hang.
BUILD_TIMEOUT_S = 45 * 60


@dataclass
class BuiltBook:
    """A book built from the working tree into a temporary folder."""

    output: Path  # the --path-output folder; holds _build/
    html: Path  # output / "_build" / "html"
    seconds: float  # wall time of the build
    log: str  # stdout and stderr of jupyter-book


def jupyter_book_command() -> list[str]:
    """The ``jupyter-book`` of this interpreter's environment (falls back to the one on PATH)."""
    here = Path(sys.executable).with_name("jupyter-book")
    exe = str(here) if here.exists() else shutil.which("jupyter-book")
    if exe is None:
        pytest.fail("jupyter-book is not installed (pip install -r requirements.txt)")
    return [exe]


def build_book(output: Path, edition: str = "public") -> BuiltBook:
    """Build the book from ROOT into ``output`` with the options of ``make book``: every warning
    (nitpicky mode included) is an error. ``edition`` is ``public`` or ``instructor``
    (``COURSE_EDITION``, read by book/_ext/editions.py).

    ``--path-output`` keeps the working tree clean, and the execution cache lives in
    ``output/_build/.jupyter_cache``, so a fresh ``output`` means a cold build that executes
    every demo notebook.
    """
    cmd = [*jupyter_book_command(), "build", str(ROOT), "--path-output", str(output),
           "--warningiserror", "--nitpick", "--keep-going"]
    env = {**os.environ, "COURSE_EDITION": edition}
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
                          env=env)
    seconds = time.perf_counter() - started
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        problems = [line for line in log.splitlines()
                    if ("WARNING" in line or "ERROR" in line) and "IPKernelApp" not in line]
        pytest.fail(f"jupyter-book build failed (exit {proc.returncode}):\n"
                    + "\n".join(problems[:60]) + "\n...\n" + log[-3000:])
    return BuiltBook(output, output / "_build" / "html", seconds, log)


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> BuiltBook:
    """The whole book, built cold once per session with warnings as errors."""
    return build_book(tmp_path_factory.mktemp("book"))


@pytest.fixture(scope="session")
def built_book_instructor(built_book, tmp_path_factory) -> BuiltBook:
    """The instructor edition, built once per session from a copy of the public build's
    execution cache: the code cells are the same in both editions, so it executes no notebook."""
    output = tmp_path_factory.mktemp("book-instructor")
    shutil.copytree(built_book.output / "_build" / ".jupyter_cache",
                    output / "_build" / ".jupyter_cache")
    return build_book(output, edition="instructor")


@pytest.fixture(scope="session")
def book_builder():
    """``build_book`` itself, for tests that need a second build (e.g. from a warm cache)."""
    return build_book
