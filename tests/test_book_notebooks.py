"""The .ipynb twins of the demo pages (``book/notebooks.py``), which the launch buttons open.

Their first cell must make the page run where it is opened: in the course's environment it does
nothing; on Binder (the repository checked out, the package not installed) it puts the repository on
``sys.path``; on Colab (the notebook opened alone) it clones the repository and moves into the
page's folder. Each case runs the cell in a fresh interpreter from which the installed package is
hidden.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("book_notebooks", ROOT / "book" / "notebooks.py")
notebooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(notebooks)

PAGE = ROOT / "book" / "rnn" / "05-demo.md"

# Run in the child before the set-up cell: hide the editable install of `solutions` (and, when
# asked, myst_nb), as on Binder or Colab.
HIDE = """\
import importlib.util, json, os, sys
sys.meta_path = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")
                 and "__editable__" not in repr(f)]
sys.path = [p for p in sys.path if p and os.path.abspath(p) != {root!r}]
if {hide_myst}:
    _find_spec = importlib.util.find_spec
    importlib.util.find_spec = lambda name, *a: None if name == "myst_nb" else _find_spec(name, *a)
"""

REPORT = """
import solutions
from myst_nb import glue
glue("answer", 42)
print(json.dumps({"cwd": os.getcwd(), "solutions": solutions.__file__}))
"""


def setup_cell(page: Path) -> str:
    cells = json.loads(notebooks.twin(page))["cells"]
    return "".join(cells[0]["source"])


def run_cell(code: str, cwd: Path, hide: bool = True, hide_myst: bool = False) -> dict:
    prelude = HIDE.format(root=str(ROOT), hide_myst=hide_myst) if hide else "import json, os\n"
    proc = subprocess.run([sys.executable, "-c", prelude + code + REPORT], cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    return {**json.loads(lines[-1]), "stdout": proc.stdout}


def test_every_demo_page_has_an_up_to_date_twin(capsys):
    pages = notebooks.demo_pages()
    assert len(pages) >= 4 * 2, [p.name for p in pages]  # each chapter has demos
    assert notebooks.main(["--check"]) == 0, capsys.readouterr().out


def test_twin_has_the_page_cells_after_the_set_up_cell_and_no_outputs():
    import jupytext

    twin = json.loads(notebooks.twin(PAGE))
    page = jupytext.read(PAGE)
    assert [c["cell_type"] for c in twin["cells"][1:]] == [c.cell_type for c in page.cells]
    assert ["".join(c["source"]) for c in twin["cells"][1:]] == [c.source for c in page.cells]
    assert all(c.get("outputs", []) == [] for c in twin["cells"])
    assert twin["metadata"]["kernelspec"]["name"] == "python3"


def test_set_up_cell_does_nothing_in_the_course_environment():
    folder = PAGE.parent
    result = run_cell(setup_cell(PAGE), folder, hide=False)
    assert result["cwd"] == str(folder)
    assert Path(result["solutions"]).is_relative_to(ROOT)


def test_set_up_cell_finds_the_checked_out_repository_as_on_binder():
    folder = PAGE.parent
    probe = subprocess.run(
        [sys.executable, "-c", HIDE.format(root=str(ROOT), hide_myst=False)
         + "print(importlib.util.find_spec('solutions'))"],
        cwd=folder, capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "None", "the prelude failed to hide the installed package"
    result = run_cell(setup_cell(PAGE), folder, hide_myst=True)
    assert result["cwd"] == str(folder)
    assert Path(result["solutions"]).is_relative_to(ROOT)
    assert "42" in result["stdout"]  # the stand-in glue shows the value


def test_set_up_cell_clones_the_repository_when_the_notebook_is_opened_alone(tmp_path):
    branch = subprocess.run(["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    if not branch or branch == "HEAD":
        pytest.skip("the checkout is not on a branch: nothing to clone by name")
    code = setup_cell(PAGE)
    url, configured = notebooks.repository()
    assert f'"{url}"' in code and f'"{configured}"' in code
    code = code.replace(f'"{url}"', repr(ROOT.as_uri())).replace(f'"{configured}"', repr(branch))
    result = run_cell(code, tmp_path, hide_myst=True)
    clone = tmp_path / ROOT.name  # the clone is named after the repository's URL
    assert result["cwd"] == str(clone / "book" / "rnn")
    assert Path(result["solutions"]).is_relative_to(clone)
    assert (clone / "results").is_dir()  # the pages read committed results relative to their folder
