"""Fixtures shared by the book tests: the Jupyter Book, built once per test session in each
edition, and the headless Chromium that reads it (and the grader's feedback pages).

Only the book and its browser live here; every other test keeps its fixtures in its own file.
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

    output: Path  # the OUT folder of make; holds _build/
    html: Path  # the edition's HTML folder
    seconds: float  # wall time of the build
    log: str  # stdout and stderr of make and jupyter-book


# The make target of each edition (see the Makefile), and where it puts its HTML under OUT.
EDITIONS = {
    "public": ("book", "_build/html"),
    "instructor": ("book-instructor", "_build/instructor/_build/html"),
    "zh_CN": ("book-zh", "_build/zh/_build/html"),
}
# The make targets the tests run; the publish workflow may call only these (tests/test_publish.py).
TESTED_MAKE_TARGETS = ("test", "system-setup", *(t for t, _ in EDITIONS.values()), "site", "pot")


def run_make(target: str, output: Path, timeout: float = BUILD_TIMEOUT_S
             ) -> subprocess.CompletedProcess:
    """``make <target> OUT=<output>`` in ROOT with this interpreter's environment (its venv is
    taken as installed: make does not reinstall it)."""
    bin_dir = Path(sys.executable).parent
    cmd = ["make", "--no-print-directory", "-o", f"{bin_dir}/.installed", f"BIN={bin_dir}",
           f"OUT={output}", target]
    env = {k: v for k, v in os.environ.items() if k not in ("COURSE_EDITION", "COURSE_LANGUAGE")}
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=env)


def build_book(output: Path, edition: str = "public") -> BuiltBook:
    """Build an edition of the book (``public``, ``instructor`` or ``zh_CN``) into ``output`` with
    its make target: every warning (nitpicky mode included) is an error.

    The execution cache lives in ``output/_build/.jupyter_cache`` (the Chinese edition's in
    ``output/_build/zh/_build``), so a fresh ``output`` means a cold build that executes every
    demo notebook; the instructor edition reuses the public one's cache in the same ``output``.
    """
    target, html = EDITIONS[edition]
    started = time.perf_counter()
    proc = run_make(target, output)
    seconds = time.perf_counter() - started
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        problems = [line for line in log.splitlines()
                    if ("WARNING" in line or "ERROR" in line) and "IPKernelApp" not in line]
        pytest.fail(f"make {target} failed (exit {proc.returncode}):\n"
                    + "\n".join(problems[:60]) + "\n...\n" + log[-3000:])
    return BuiltBook(output, output / html, seconds, log)


@pytest.fixture(scope="session")
def book_output(tmp_path_factory) -> Path:
    """The OUT folder that every edition of this session is built into."""
    return tmp_path_factory.mktemp("book")


@pytest.fixture(scope="session")
def built_book(book_output) -> BuiltBook:
    """The whole book, built cold once per session with warnings as errors."""
    return build_book(book_output)


@pytest.fixture(scope="session")
def built_book_instructor(built_book) -> BuiltBook:
    """The instructor edition, built once per session beside the public one, from its execution
    cache: the code cells are the same in both editions, so it executes no notebook."""
    return build_book(built_book.output, edition="instructor")


@pytest.fixture(scope="session")
def built_book_zh(built_book) -> BuiltBook:
    """The Chinese edition, built cold once per session (its notebooks draw Chinese labels). Skips
    where no CJK font is installed (README: fonts-noto-cjk), unless REQUIRE_CJK_FONT=1."""
    from solutions.language import cjk_font

    try:
        cjk_font()
    except RuntimeError as error:
        if os.environ.get("REQUIRE_CJK_FONT") == "1":
            pytest.fail(f"{error}; REQUIRE_CJK_FONT=1 makes this a failure")
        pytest.skip(str(error))
    return build_book(built_book.output, edition="zh_CN")


@pytest.fixture(scope="session")
def built_site(built_book, built_book_zh) -> Path:
    """The site as published (``make site``): English at the root, Chinese under zh/."""
    proc = run_make("site", built_book.output, timeout=600)
    assert proc.returncode == 0, f"make site failed:\n{proc.stdout}{proc.stderr}"
    return built_book.output / "_build" / "site"


@pytest.fixture(scope="session")
def book_messages(built_book) -> Path:
    """The gettext templates of the English pages (``make pot``, from the public build's cache)."""
    proc = run_make("pot", built_book.output)
    assert proc.returncode == 0, f"make pot failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    return built_book.output / "_build" / "gettext" / "_build" / "gettext"


@pytest.fixture(scope="session")
def book_builder():
    """``build_book`` itself, for tests that need a second build (e.g. from a warm cache)."""
    return build_book


CHROMEDRIVER = "/usr/bin/chromedriver"


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A headless Chromium driven by selenium through the local chromedriver, one per module.
    Skipped where Chromium is missing, unless ``REQUIRE_CHROMIUM=1`` makes that a failure."""
    binary = chromium_binary()
    if binary is None or not Path(CHROMEDRIVER).exists():
        message = f"Chromium or {CHROMEDRIVER} not found (apt-get install chromium chromium-driver)"
        if os.environ.get("REQUIRE_CHROMIUM") == "1":
            pytest.fail(message + "; REQUIRE_CHROMIUM=1 makes this a failure")
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--window-size=1280,1024",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()
