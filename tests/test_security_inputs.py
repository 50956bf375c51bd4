"""The trusted grader treats everything the student side wrote as hostile (issue 12, inputs).

Crafted ``ctc`` submissions are graded beside a correct (``学生甲``) and a stub (``学生乙``)
notebook, in ONE ``grade`` run per mode: as root, and as an unprivileged user (the grader run by
root as a throwaway uid, as an instructor without root runs it). The crafted ones:

* ``outputs`` (cases 2, 3, 7): in the re-verification child it turns its output files into links to
  a file only the grader may read, into FIFOs, and into an ``.npz`` declaring a 128 MiB array of
  compressed zeros (twice the bound); in the notebook's run it leaves a link and a FIFO in its
  folder and displays scripts; its markdown cells and an exception message carry scripts, event
  handlers, frames, a refresh and ``javascript:`` links;
* ``scratch`` (case 4): forbidden calls hidden under ``if True:``, behind ``import_module('tor' +
  'ch')`` and ``getattr``, and behind names no static scan can read (caught at run time);
* ``helper`` (cases 5, 6): an honest ``ctc_grad`` that calls the notebook's ``log_softmax``, and a
  hook on the notebook's shell that records and prints every cell it runs;
* ``学生甲``/``学生乙``, ``a b``/``a_b`` (case 8), and two zip bombs (case 3).

Each test reads the shared outcome: the grades, the reasons, the feedback pages and what the attack
cells reported from the notebook's run. The unit tests at the end pin down the readers one by one.
"""

from __future__ import annotations

import html.parser
import io
import json
import os
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest
from _hostile import (
    ROOT,
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
from autograder.checks import CHECKS, find_forbidden, forbidden_operator_calls, get_check
from autograder.feedback import mathjax_scripts, sanitize_page, summary_markdown
from autograder.submissions import collect, student_id
from autograder.untrusted import UntrustedFileError, copy_files, load_npz, read_bytes

ASSIGNMENT = "ctc"
MAX = {c.name: c.points for c in CHECKS[ASSIGNMENT]}
# Seconds per cell and per check: no crafted code hangs, and a check that imports PyTorch on a
# loaded CI machine must not be cut short.
TIMEOUT = 30
UNPRIVILEGED_UID = 63001  # outside the range the grader leases uids from
ISOLATION = sandbox.probe()
CORRECT, STUB = "学生甲", "学生乙"
# The grader's own peak memory while it reads two zip bombs and grades everything (a zip bomb
# took it to 2.4 GB); it imports nbgrader and the reference package, about 400 MB.
MAX_GRADER_RSS_MB = 1024


def outputs_attack(secret: str) -> str:
    """Hostile output files, a link, a FIFO and scripts in the notebook's run (the
    re-verification child)."""
    return f"""
import json, os, sys, zipfile
import numpy as np
if sys.argv and sys.argv[0].endswith('verify_child.py'):
    _savez, _dump = np.savez, json.dump

    def _npz_bomb(path):
        header = __import__('io').BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {{'descr': '<f8', 'fortran_order': False, 'shape': (2 ** 24,)}})
        with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as archive:
            with archive.open('c0/loss.npy', 'w', force_zip64=True) as member:
                member.write(header.getvalue())
                for _ in range(8):
                    member.write(bytes(2 ** 24))

    def _replace(path, how):
        if os.path.lexists(path):
            os.remove(path)
        if how == 'link':
            os.symlink({secret!r}, path)
        elif how == 'fifo':
            os.mkfifo(path)
        else:
            _npz_bomb(path)

    _npz_attacks = {{'extend_with_blanks.npz': 'link', 'ctc_backward.npz': 'fifo',
                    'ctc_loss.npz': 'bomb'}}
    _json_attacks = {{'ctc_collapse.json': 'link', 'ctc_forward.json': 'fifo'}}

    def _hostile_savez(path, *args, **kwargs):
        _savez(path, *args, **kwargs)
        if os.path.basename(str(path)) in _npz_attacks:
            _replace(str(path), _npz_attacks[os.path.basename(str(path))])

    def _hostile_dump(value, f, *args, **kwargs):
        _dump(value, f, *args, **kwargs)
        name = os.path.basename(getattr(f, 'name', ''))
        if name in _json_attacks:
            f.close()
            _replace(f.name, _json_attacks[name])

    np.savez, json.dump = _hostile_savez, _hostile_dump
else:
    planted = {{}}
    for name, make in (('leak.txt', lambda p: os.symlink({secret!r}, p)), ('pipe', os.mkfifo)):
        try:
            make(name)
            planted[name] = True
        except OSError as error:
            planted[name] = type(error).__name__
    from IPython.display import HTML, Javascript, display
    display(HTML('<script>document.title = "owned"</script><img src=x onerror="alert(1)">'
                 '<iframe src="https://example.invalid/"></iframe>'))
    display(Javascript('alert(2)'))
    {report_code("outputs", "planted")}
"""


HOSTILE_MARKDOWN = """## My notes

Notes on [a fine link](https://example.org/) before the hostile part.

<script>alert('markdown')</script>
<img src="x" onerror="alert('img')">
<iframe src="javascript:alert('frame')"></iframe>
<meta http-equiv="refresh" content="0; url=javascript:alert('meta')">
<a href="javascript:alert('link')">a link</a> and [another](javascript:alert('md')) and
<svg onload="alert('svg')"><circle r="4"/></svg> <form action="https://example.invalid/">
<input name="password"></form> <object data="javascript:alert('object')"></object>
<a href="#grade">an anchor</a>
"""

HOSTILE_REASON = ('<a href="javascript:alert(1)">x</a> [click](javascript:alert(2)) '
                  '<img src=x onerror=alert(3)>')


def scratch_cells() -> list[str]:
    """Three ways around the static "from scratch" scan, one per function."""
    if_true = """
if True:
    def ctc_loss(log_probs, labels, blank=0):
        import torch
        lp = torch.from_numpy(log_probs)[:, None, :]
        targets = torch.tensor([list(labels)], dtype=torch.long)
        return float(torch.nn.functional.ctc_loss(lp, targets, [lp.shape[0]], [len(labels)],
                                                  blank=blank, reduction='sum'))
"""
    computed = """
import importlib
def greedy_decode(log_probs, blank=0):
    library = importlib.import_module('tor' + 'ch')
    best = getattr(library, 'arg' + 'max')(library.from_numpy(log_probs), dim=1)
    return ctc_collapse(best.tolist(), blank)
"""
    unreadable = """
_honest_ctc_grad = ctc_grad
def ctc_grad(log_probs, labels, blank=0):
    library = __import__(bytes([116, 111, 114, 99, 104]).decode())
    loss = getattr(library.nn.functional, bytes([99, 116, 99, 95, 108, 111, 115, 115]).decode())
    lp = library.from_numpy(log_probs)[:, None, :]
    if len(labels):
        loss(lp, library.tensor([list(labels)]), [lp.shape[0]], [len(labels)], blank=blank)
    return _honest_ctc_grad(log_probs, labels, blank)
"""
    return [if_true, computed, unreadable]


HOOK = """
import sys
seen_cells = []
def _spy(info):
    seen_cells.append(info.raw_cell)
    print(info.raw_cell)
get_ipython().events.register('pre_run_cell', _spy)
"""

HOOK_REPORT = report_code("hook", "{'cells': seen_cells, 'modules': sorted(m for m in sys.modules "
                                  "if m.split('.')[0] in ('solutions', 'autograder'))}")


def helper_notebook():
    """Honest answers; ``ctc_grad`` uses the set-up cell's ``log_softmax``; a hook on the shell
    right after the set-up cell records every cell that runs after it."""
    nb = solved_notebook(ASSIGNMENT)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "solution_ctc_grad":
            assert "return np.exp(log_probs) - posterior" in cell.source
            cell.source = cell.source.replace("return np.exp(log_probs) - posterior",
                                              "return np.exp(log_softmax(log_probs)) - posterior")
    setup = next(i for i, c in enumerate(nb.cells) if "def log_softmax" in c.source)
    nb.cells.insert(setup + 1, nbformat.v4.new_code_cell(HOOK))
    return with_cells(nb, HOOK_REPORT)


def outputs_notebook(secret: str):
    nb = solved_notebook(ASSIGNMENT)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "solution_greedy_decode":
            cell.source = ("def greedy_decode(log_probs, blank=0):\n"
                           f"    raise ValueError({HOSTILE_REASON!r})")
    nb.cells.insert(1, nbformat.v4.new_markdown_cell(HOSTILE_MARKDOWN))
    nb.metadata["title"] = "</title><script>alert('title')</script>"
    return with_cells(nb, outputs_attack(secret))


def zip_bombs(export: Path) -> None:
    """100 members of 20 MB of zeros (2 MB compressed), and one 200 MB notebook of spaces."""
    with zipfile.ZipFile(export / "many.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        zeros = bytes(20_000_000)
        for i in range(100):
            archive.writestr(f"part{i}.ipynb", zeros)
    with zipfile.ZipFile(export / "huge.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{ASSIGNMENT}.ipynb", b" " * 200_000_000)


# The peak memory of this process (VmHWM: unlike ru_maxrss, not inherited from the parent).
PEAK_KB = "int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])"
# Runs the command line and reports the grader process's own peak memory.
MEASURED_MAIN = (
    "import sys\n"
    "from autograder.cli import main\n"
    "try:\n    code = main(sys.argv[1:])\n"
    "finally:\n"
    f"    print('PEAK_KB', {PEAK_KB}, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


@pytest.fixture(scope="session", params=["root", "user"])
def graded(request):
    """One grade run of every crafted submission in one mode, and what it left behind."""
    mode = request.param
    root = os.geteuid() == 0
    base = mode_folder(request, ISOLATION, "inputs-")
    home, export, course = base / "home", base / "export", base / "course"
    home.mkdir()
    export.mkdir()
    secret_text = f"SECRET-{uuid.uuid4().hex}"
    secret = base / "instructor-only.txt"
    secret.write_text(secret_text)
    notebooks = {
        CORRECT: solved_notebook(ASSIGNMENT),
        STUB: release_notebook(ASSIGNMENT),
        "outputs": outputs_notebook(str(secret)),
        "scratch": with_cells(solved_notebook(ASSIGNMENT), *scratch_cells()),
        "helper": helper_notebook(),
    }
    for student, nb in notebooks.items():
        nbformat.write(nb, export / f"{student}.ipynb")
    (export / "a b.ipynb").write_bytes(b"")
    (export / "a_b.ipynb").write_bytes(b"")
    zip_bombs(export)
    if mode == "user" and root:
        for path in [base, *base.rglob("*")]:
            os.chown(path, UNPRIVILEGED_UID, UNPRIVILEGED_UID)
    os.chmod(secret, 0o600)

    command = [sys.executable, "-c", MEASURED_MAIN, "grade", ASSIGNMENT, str(export),
               "--course-dir", str(course), "--jobs", "2", "--timeout", str(TIMEOUT),
               "--no-progress"]
    if mode == "user" and root:
        command = as_user(command, UNPRIVILEGED_UID)
    run = subprocess.run(command, cwd=ROOT, env=dict(os.environ, HOME=str(home)), text=True,
                         capture_output=True, timeout=1800)
    assert run.returncode == 0, run.stderr[-3000:]
    rss_kb = int(run.stderr.rsplit("PEAK_KB", 1)[1].split()[0])
    return {"mode": mode, "rows": grade_rows(course, ASSIGNMENT), "course": course, "base": base,
            "secret": secret_text, "stdout": run.stdout, "rss_mb": rss_kb / 1024}


def points(graded, student) -> dict[str, float]:
    return {name: float(graded["rows"][student][name]) for name in MAX}


def reason(graded, student) -> str:
    return graded["rows"][student]["reason"]


def feedback(graded, student) -> str:
    return (graded["course"] / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text(
        encoding="utf-8")


def reports(graded, student) -> dict:
    path = graded["course"] / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    return notebook_reports(path)


class _Elements(html.parser.HTMLParser):
    """Every start tag of a page with its attributes."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def live_content(page: str) -> list[str]:
    """What in ``page`` a browser would run or follow: scripts, frames, objects, forms, meta
    refreshes, event handlers, and links or sources that are not http(s), anchors or images.
    The grader's own MathJax (exactly :func:`mathjax_scripts`) and its Content-Security-Policy
    are not counted (tests/test_feedback_math.py covers them)."""
    parser = _Elements()
    parser.feed(page.replace(mathjax_scripts(), ""))
    found = []
    for tag, attrs in parser.tags:
        if tag in ("script", "iframe", "frame", "object", "embed", "form", "svg", "base"):
            found.append(tag)
        if tag == "meta" and attrs.get("http-equiv", "").lower() not in (
                "", "content-security-policy"):
            found.append("meta http-equiv")
        for name, value in attrs.items():
            value = value.strip().lower()
            if name.startswith("on"):
                found.append(f"{tag} {name}")
            if name == "href" and not value.startswith(("http://", "https://", "#")):
                found.append(f"{tag} href={value[:40]}")
            if name in ("src", "data", "action") and not value.startswith("data:image/"):
                found.append(f"{tag} {name}={value[:40]}")
    return found


# ---------------------------------------------------------------------------------------------
# The grading run: every case, in both modes.

@pytest.mark.grading
@pytest.mark.slow
class TestHostileInputs:
    def test_correct_and_stub_are_graded_as_usual(self, graded):
        assert points(graded, CORRECT) == MAX, reason(graded, CORRECT)
        assert graded["rows"][CORRECT]["status"] == "full marks"
        assert sum(points(graded, STUB).values()) == 0
        assert "not implemented" in reason(graded, STUB)

    def test_unicode_names_stay_distinct_students(self, graded):
        rows = graded["rows"]
        assert {CORRECT, STUB, "a_b", student_id("a b")} <= set(rows)
        assert "student" not in rows
        assert not any("ignored" in row["reason"] for row in rows.values())
        for name in (CORRECT, STUB):
            assert (graded["course"] / "feedback" / name / ASSIGNMENT).is_dir()

    def test_output_files_that_are_links_are_not_followed(self, graded):
        got = points(graded, "outputs")
        assert got["ctc_collapse"] == got["extend_with_blanks"] == 0
        text = reason(graded, "outputs")
        assert "ctc_collapse.json is a symbolic link" in text
        assert "extend_with_blanks.npz is a symbolic link" in text

    def test_output_files_that_are_fifos_do_not_block(self, graded):
        got = points(graded, "outputs")
        assert got["ctc_forward"] == got["ctc_backward"] == 0
        text = reason(graded, "outputs")
        assert "ctc_forward.json is not a regular file" in text
        assert "ctc_backward.npz is not a regular file" in text

    def test_an_npz_bomb_is_refused_before_decompression(self, graded):
        assert points(graded, "outputs")["ctc_loss"] == 0
        text = reason(graded, "outputs").split("ctc_loss:", 1)[1].split(";")[0]
        assert "ctc_loss.npz declares" in text and "bytes of arrays" in text

    def test_honest_functions_of_a_hostile_submission_keep_their_points(self, graded):
        got = points(graded, "outputs")
        assert got["ctc_grad"] == MAX["ctc_grad"]
        assert got["prefix_beam_search"] == MAX["prefix_beam_search"]
        assert got["greedy_decode"] == 0 and "raised ValueError" in reason(graded, "outputs")

    def test_the_grader_never_reads_a_file_through_a_students_link(self, graded):
        secret = graded["secret"]
        assert secret not in json.dumps(graded["rows"], ensure_ascii=False)
        for path in graded["course"].rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert secret.encode() not in path.read_bytes(), path
        autograded = graded["course"] / "autograded" / "outputs" / ASSIGNMENT
        assert not any(p.is_symlink() or p.is_fifo() for p in autograded.rglob("*"))
        assert not (graded["course"] / "feedback" / "outputs" / ASSIGNMENT / "leak.txt").exists()

    def test_zip_bombs_are_refused_and_the_grader_stays_small(self, graded):
        rows = graded["rows"]
        assert rows["many"]["status"] == "invalid"
        assert "100 notebooks in many.zip and none named 'ctc.ipynb'" in rows["many"]["reason"]
        assert rows["huge"]["status"] == "invalid"
        assert "larger than 20 MB" in rows["huge"]["reason"]
        assert graded["rss_mb"] < MAX_GRADER_RSS_MB

    def test_forbidden_call_under_if_true_is_caught(self, graded):
        assert points(graded, "scratch")["ctc_loss"] == 0
        assert "ctc_loss: must be written from scratch, but uses torch" in reason(graded, "scratch")

    def test_forbidden_call_through_computed_names_is_caught(self, graded):
        assert points(graded, "scratch")["greedy_decode"] == 0
        assert "greedy_decode: must be written from scratch, but uses torch" in reason(
            graded, "scratch")

    def test_forbidden_operator_is_caught_when_it_runs(self, graded):
        assert points(graded, "scratch")["ctc_grad"] == 0
        assert "ctc_grad: must be written from scratch, but runs aten::" in reason(
            graded, "scratch")
        assert "ctc_loss" in reason(graded, "scratch").split("ctc_grad:", 1)[1].split(";")[0]

    def test_scratch_submission_keeps_its_honest_functions(self, graded):
        got = points(graded, "scratch")
        honest = set(MAX) - {"ctc_loss", "ctc_grad", "greedy_decode"}
        assert {name: got[name] for name in honest} == {name: MAX[name] for name in honest}

    def test_helpers_of_the_read_only_cells_work_in_the_reverification(self, graded):
        assert points(graded, "helper") == MAX, reason(graded, "helper")
        assert "helpers changed" not in reason(graded, "helper")

    def test_the_notebook_runs_no_hidden_test_and_imports_nothing_of_the_grader(self, graded):
        hook = reports(graded, "helper")["hook"]
        assert any("ctc_grad" in cell for cell in hook["cells"])  # the hook saw the test cells
        for cell in hook["cells"]:
            assert "run_check" not in cell and "HIDDEN TESTS" not in cell, cell
        assert not any(m.startswith(("solutions", "autograder.checks")) for m in hook["modules"])

    @pytest.mark.parametrize("student", [CORRECT, STUB, "outputs", "scratch", "helper"])
    def test_feedback_holds_no_hidden_test_and_no_reference_value(self, graded, student):
        from autograder.checks import reference_namespace, run_case

        page = feedback(graded, student)
        for leak in ("run_check", "BEGIN HIDDEN TESTS", "autograder.checks", "import solutions",
                     "from solutions"):
            assert leak not in page, leak
        check = get_check(ASSIGNMENT, "ctc_loss")
        reference = reference_namespace(ASSIGNMENT)
        for case in check.make_cases():
            value = float(run_case(check, reference, case)[0]["loss"])
            if np.isfinite(value):
                assert repr(value) not in page and f"{value:.10f}" not in page

    @pytest.mark.parametrize("student", [CORRECT, STUB, "outputs", "scratch", "helper", "many",
                                         "a_b"])
    def test_feedback_has_no_live_script_or_link(self, graded, student):
        assert live_content(feedback(graded, student)) == []

    def test_hostile_markdown_and_outputs_arrive_as_harmless_text(self, graded):
        page = feedback(graded, "outputs")
        assert "My notes" in page and 'href="https://example.org/"' in page
        assert "alert('markdown')" not in page  # a script's content is dropped, not shown
        assert "owned" not in page.split("</title>")[0]

    def test_exception_messages_in_the_grade_table_are_text(self, graded):
        page = feedback(graded, "outputs")
        table = page.split("why points were lost", 1)[1].split("</table>", 1)[0]
        assert "raised ValueError" in table and "javascript:alert(2)" in table
        assert live_content(table) == []


# ---------------------------------------------------------------------------------------------
# The readers, one by one (no grading run).

def test_read_bytes_refuses_links_fifos_and_big_files(tmp_path):
    (tmp_path / "secret").write_text("secret")
    (tmp_path / "link").symlink_to(tmp_path / "secret")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "big").write_bytes(bytes(101))
    for name, why in (("link", "symbolic link"), ("fifo", "not a regular file"),
                      ("big", "larger than 100 bytes")):
        with pytest.raises(UntrustedFileError, match=why):
            read_bytes(str(tmp_path / name), 100)
    assert read_bytes(str(tmp_path / "secret"), 100) == b"secret"


def test_load_npz_checks_headers_before_decompressing(tmp_path):
    np.savez(tmp_path / "fine.npz", **{"c0/x": np.arange(6.0).reshape(2, 3),
                                       "c1/y": np.asfortranarray(np.eye(3))})
    arrays = load_npz(str(tmp_path / "fine.npz"))
    assert np.array_equal(arrays["c0/x"], np.arange(6.0).reshape(2, 3))
    assert np.array_equal(arrays["c1/y"], np.eye(3))

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (10**7,)})
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", header.getvalue() + bytes(8 * 10**7))
    with pytest.raises(UntrustedFileError, match="declares 80000128 bytes"):
        load_npz(str(tmp_path / "bomb.npz"), max_total_bytes=10**6)
    with pytest.raises(UntrustedFileError, match="'x' is larger than 1000000 bytes"):
        load_npz(str(tmp_path / "bomb.npz"), max_total_bytes=10**9, max_array_bytes=10**6)
    # A small member whose .npy header claims a big array: refused from the header alone.
    with zipfile.ZipFile(tmp_path / "liar.npz", "w") as archive:
        archive.writestr("x.npy", header.getvalue() + bytes(100))
    with pytest.raises(UntrustedFileError, match=r"shape \(10000000,\) is larger"):
        load_npz(str(tmp_path / "liar.npz"), max_array_bytes=10**6)

    np.save(tmp_path / "objects.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(tmp_path / "objects.npz", "w") as archive:
        archive.write(tmp_path / "objects.npy", "o.npy")
    with pytest.raises(UntrustedFileError, match="non-numeric dtype object"):
        load_npz(str(tmp_path / "objects.npz"))


def test_copy_files_copies_regular_files_only(tmp_path):
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "notebook.ipynb").write_text("{}")
    (source / "sub" / "data.txt").write_text("data")
    (source / "link").symlink_to("/etc/hostname")
    (source / "folder-link").symlink_to("/etc")
    os.mkfifo(source / "sub" / "fifo")
    assert sorted(copy_files(str(source), str(tmp_path / "target"))) == [
        "notebook.ipynb", "sub/data.txt"]
    assert not (tmp_path / "target" / "link").exists()


def test_student_ids_keep_unicode_and_never_collide():
    assert student_id("学生甲") == "学生甲" and student_id("学生乙") == "学生乙"
    assert student_id("e\u0301te\u0301") == "\u00e9t\u00e9"  # NFC
    assert student_id("a_b") == "a_b"
    assert student_id("a b") != "a_b" and student_id("a b").startswith("a_b-")
    assert student_id("a/b") != student_id("a b")
    for name in ("../x", ".hidden", "-rf", "x*?[y]", "a\u202eb", "x" * 300, ""):
        safe = student_id(name)
        assert safe and safe[0] not in ".-" and len(safe) <= 80
        assert not set(safe) & set("/\\*?[]\u202e ")


def test_two_names_that_would_share_an_id_are_an_error(tmp_path, monkeypatch):
    for name in ("alice", "bob"):
        nbformat.write(release_notebook(ASSIGNMENT), tmp_path / f"{name}.ipynb")
    monkeypatch.setattr("autograder.submissions.student_id", lambda name: "same")
    (only,) = collect(str(tmp_path), ASSIGNMENT, {})
    assert only.notebook is None and only.problem.startswith("error: 'alice.ipynb', 'bob.ipynb'")


def test_one_students_files_in_two_unicode_forms_are_one_student(tmp_path):
    nbformat.write(release_notebook(ASSIGNMENT), tmp_path / "e\u0301.ipynb")
    nbformat.write(release_notebook(ASSIGNMENT), tmp_path / "\u00e9.ipynb")
    (only,) = collect(str(tmp_path), ASSIGNMENT, {})
    assert only.student == "\u00e9" and any("older" in note for note in only.notes)


def test_a_zip_is_read_without_decompressing_the_other_members(tmp_path):
    zip_bombs(tmp_path)
    code = ("import sys\nfrom autograder.submissions import collect\n"
            "for s in collect(sys.argv[1], 'ctc', {}):\n    print(s.student, s.problem)\n"
            f"print({PEAK_KB} // 1024)\n")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, cwd=ROOT, timeout=300, check=True)
    *lines, peak_mb = run.stdout.splitlines()
    assert any(line.startswith("many 100 notebooks") for line in lines), lines
    assert any(line.startswith("huge the file is larger than 20 MB") for line in lines), lines
    # Reading every member would take 2 GB; the one chosen member is read with a cap.
    assert int(peak_mb) < 300


def test_sanitize_page_keeps_text_and_drops_everything_live():
    page = sanitize_page(
        "<html><head><script src='https://cdn.example/x.js'></script><style>p{color:red}</style>"
        f"</head><body class='jp-Notebook'>{HOSTILE_MARKDOWN}<p>kept</p>"
        "<img src='data:image/png;base64,AAAA'></body></html>", title="ctc")
    assert live_content(page) == []
    assert "<p>kept</p>" in page and "p{color:red}" in page and "data:image/png" in page
    assert 'href="#grade"' in page and "a link</a>" in page


def test_reasons_in_the_grade_table_are_plain_text():
    result = {"total": 0, "max_total": 1, "notes": ["<b>note</b>"],
              "checks": [{"name": "greedy_decode", "points": 0, "max_points": 1,
                          "reason": HOSTILE_REASON}]}
    text = summary_markdown(result)
    for raw in ("<", ">", "[", "](", "javascript:"):
        assert raw not in text.split("| --- |")[1]


def test_static_scan_looks_inside_blocks_and_folds_strings():
    check = get_check(ASSIGNMENT, "ctc_loss")
    hidden = {
        "if": "if True:\n    def ctc_loss(lp, l, blank=0):\n        import torch\n"
              "        return torch.nn.functional.ctc_loss(lp, l)\n",
        "try": "try:\n    import torch.nn.functional as F\nexcept ImportError:\n    pass\n"
               "def ctc_loss(lp, l, blank=0):\n    return F.ctc_loss(lp, l)\n",
        "computed": "import importlib\ndef ctc_loss(lp, l, blank=0):\n"
                    "    m = importlib.import_module('tor' + 'ch')\n"
                    "    return getattr(m.nn.functional, 'ctc' + '_loss')(lp, l)\n",
        "joined": "def ctc_loss(lp, l, blank=0):\n    return getattr(getattr(__import__(f'{\"tor\"}"
                  "ch'), 'nn').functional, ''.join(['ctc', '_loss']))(lp, l)\n",
        "nested": "def ctc_loss(lp, l, blank=0):\n    def inner():\n        import torch as T\n"
                  "        return T.ctc_loss\n    return inner()(lp)\n",
    }
    for how, source in hidden.items():
        assert find_forbidden(source, check), how
    honest = "import numpy as np\ndef ctc_loss(lp, l, blank=0):\n    return float(-lp.sum())\n"
    assert find_forbidden(honest, check) == []


def test_forbidden_operators_follow_each_checks_rule():
    numpy_layer, module = get_check(ASSIGNMENT, "ctc_loss"), get_check("lstm_gru", "LSTMCell")
    # The numpy functions may not run PyTorch at all; a module may, but no recurrent kernel.
    assert forbidden_operator_calls(numpy_layer, ["aten::mm"]) == ["aten::mm"]
    assert forbidden_operator_calls(numpy_layer, ["aten::add", "aten::_ctc_loss"])[0] == (
        "aten::_ctc_loss")
    assert forbidden_operator_calls(module, ["aten::mm", "aten::sigmoid"]) == []
    for op in ("lstm", "lstm_cell", "_thnn_fused_lstm_cell", "gru_cell", "rnn_tanh",
               "_cudnn_rnn"):
        assert forbidden_operator_calls(module, [f"aten::{op}"]) == [f"aten::{op}"]


def test_the_worker_limits_its_own_memory():
    code = ("from autograder.worker import limit_own_memory\nlimit_own_memory(1024)\n"
            "try:\n    bytearray(6 * 2**30)\nexcept MemoryError:\n    print('refused')\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert run.stdout.strip() == "refused", run.stderr[-2000:]


def test_the_summary_prints_no_terminal_escape_sequences():
    from autograder.pipeline import Outcome, summary
    from autograder.records import CheckGrade, Result

    reason_with_escapes = "raised ValueError: \x1b]0;owned\x07\x1b[2J\rfake line"
    outcome = Outcome(graded=[Result("s", "rnn", [CheckGrade("f", 0, 1, reason_with_escapes)],
                                     "zero")])
    text = summary(outcome)
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    assert "raised ValueError: ?]0;owned??[2J?fake line" in text
