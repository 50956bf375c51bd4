"""Generate the student versions of the assignments into ``notebooks/<assignment>/``.

For each assignment this

1. computes the fixtures of the visible tests from the reference package with a fixed seed and
   writes them, with a copy of each file the registry (:mod:`autograder.assignments`) releases with
   the notebook (``solutions/gradcheck.py``, marked as generated), next to the instructor's
   notebook in ``autograder/source/<assignment>/`` (nbgrader releases the files of that folder with
   the notebook and restores them, unmodified, before it autogrades a submission);
2. runs nbgrader's ``generate_assignment`` in a temporary copy of the course, so that no runtime
   folder or gradebook is left in the tree: solutions become stubs, hidden tests disappear, outputs
   are cleared;
3. makes each stub name its function, and copies the result to ``notebooks/<assignment>/``;
4. writes the translated twins of the notebook (``<assignment>.zh_CN.ipynb``, see
   :mod:`autograder.translation`) for the assignments that have catalogues.

``python -m autograder release [ID ...]`` (or ``python -m autograder.release``) runs it;
:func:`check_release_up_to_date` regenerates into a temporary folder and lists what differs.
Every file it writes is generated: ``.gitattributes`` marks them (``linguist-generated``).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

import nbformat
import numpy as np

from autograder import assignments as registry
from autograder.translation import TRANSLATED_LANGUAGES, catalogue_path, write_twins

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SOURCE = HERE / "source"
NOTEBOOKS = ROOT / "notebooks"

GENERIC_STUB = 'raise NotImplementedError("Replace this line with your code (see the docstring).")'
_STUB_LINE = re.compile(r"^(\s*)" + re.escape(GENERIC_STUB) + r"\s*$")
_DEFINITION = re.compile(r"^(\s*)(def|class)\s+(\w+)")


def make_fixtures(assignment: str) -> dict[str, np.ndarray]:
    """The fixtures of ``assignment``'s visible tests (seed 0, float64); see
    :mod:`autograder.checks.fixtures`."""
    declared = registry.get(assignment)
    if declared.fixtures is None:
        return {}
    return {k: np.asarray(v) for k, v in declared.fixtures(np.random.default_rng(0)).items()}


def generated_header(source: str) -> str:
    """The comment that opens a released copy of the repository's file ``source``."""
    return (f"# Generated from {source} by `python -m autograder release`; do not edit.\n"
            f"# Edit {source} and release again.\n")


def released_copy(source: str) -> bytes:
    """The content of the released copy of ``source`` (a path from the repository's root): a
    Python file with :func:`generated_header` on top, anything else as it is."""
    content = (ROOT / source).read_bytes()
    if source.endswith(".py"):
        return generated_header(source).encode() + content
    return content


# ------------------------------------------------------------------------------------------------
# Generating the student versions.


def _name_stubs(source: str) -> str:
    """Replace the generic stub message by one that names the function (``Class.method``)."""
    lines = source.split("\n")
    for i, line in enumerate(lines):
        match = _STUB_LINE.match(line)
        if not match:
            continue
        indent, names = len(match.group(1)), []
        for previous in reversed(lines[:i]):
            definition = _DEFINITION.match(previous)
            if definition and len(definition.group(1)) < indent:
                names.insert(0, definition.group(3))
                indent = len(definition.group(1))
        name = ".".join(names) or "this cell"
        lines[i] = (f'{match.group(1)}raise NotImplementedError("{name}: not implemented yet; '
                    'replace this line with your code (see the docstring).")')
    return "\n".join(lines)


def nbgrader_env() -> dict[str, str]:
    """The environment for an nbgrader subprocess: the interpreter's ``bin`` folder first on PATH,
    because nbgrader runs ``alembic`` (installed there) to open its gradebook."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` with fixed timestamps, so that the same arrays give the same bytes (and
    regenerating unchanged fixtures leaves git clean)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, value in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(value), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)),
                             buffer.getvalue())


def extra_files(assignment: str) -> list[str]:
    """The names of the generated files released with ``assignment``'s notebook."""
    declared = registry.get(assignment)
    names = [Path(source).name for source in declared.released_files]
    return names + (["fixtures.npz"] if declared.fixtures is not None else [])


def _write_extras(assignment: str, folder: Path) -> None:
    """Write the fixtures (``fixtures.npz``) and the released files into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    declared = registry.get(assignment)
    if declared.fixtures is not None:
        save_npz(folder / "fixtures.npz", make_fixtures(assignment))
    for source in declared.released_files:
        (folder / Path(source).name).write_bytes(released_copy(source))


def build(ids: Iterable[str], dest: Path) -> None:
    """Generate the student versions of ``ids`` into ``dest/<id>/`` (replaced if present)."""
    ids = list(ids)
    with tempfile.TemporaryDirectory(prefix="release-") as tmp:
        course = Path(tmp)
        shutil.copyfile(HERE / "nbgrader_config.py", course / "nbgrader_config.py")
        for assignment in ids:
            shutil.copytree(SOURCE / assignment, course / "source" / assignment,
                            ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
            _write_extras(assignment, course / "source" / assignment)
            result = subprocess.run(
                [sys.executable, "-m", "nbgrader", "generate_assignment", assignment, "--force",
                 "--no-db"],
                cwd=course, capture_output=True, text=True, check=False, env=nbgrader_env(),
            )
            if result.returncode != 0:
                raise RuntimeError(f"nbgrader generate_assignment {assignment} failed:\n"
                                   f"{result.stdout}\n{result.stderr}")
            released = course / "release" / assignment
            target = dest / assignment
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(released, target)
            notebook_path = target / f"{assignment}.ipynb"
            notebook = nbformat.read(notebook_path, as_version=4)
            for cell in notebook.cells:
                if cell.cell_type == "code":
                    cell.source = _name_stubs(cell.source)
                    cell.outputs = []
                    cell.execution_count = None
            nbformat.write(notebook, notebook_path)
            if all(catalogue_path(assignment, lang).exists() for lang in TRANSLATED_LANGUAGES):
                write_twins([assignment], dest)


def release(ids: Iterable[str] | None = None) -> list[Path]:
    """Regenerate the fixtures in ``autograder/source/<id>/`` and the student versions in
    ``notebooks/<id>/``; returns the folders written."""
    ids = list(ids or registry.ASSIGNMENTS)
    unknown = [i for i in ids if i not in registry.ASSIGNMENTS]
    if unknown:
        raise ValueError(f"unknown assignment(s) {unknown}; expected some of "
                         f"{list(registry.ASSIGNMENTS)}")
    for assignment in ids:
        _write_extras(assignment, SOURCE / assignment)
    build(ids, NOTEBOOKS)
    return [NOTEBOOKS / assignment for assignment in ids]


def _same_arrays(a: Path, b: Path) -> bool:
    with np.load(a) as fa, np.load(b) as fb:
        return sorted(fa.files) == sorted(fb.files) and all(
            fa[k].shape == fb[k].shape and np.allclose(fa[k], fb[k], rtol=1e-12, atol=1e-14)
            for k in fa.files
        )


def _compare_folder(fresh: Path, current: Path, problems: list[str]) -> None:
    fresh_files = {p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file()}
    current_files = {p.relative_to(current) for p in current.rglob("*") if p.is_file()}
    for name in sorted(fresh_files ^ current_files):
        where = "missing from" if name in fresh_files else "not generated for"
        problems.append(f"{name} is {where} {current}")
    for name in sorted(fresh_files & current_files):
        a, b = fresh / name, current / name
        if name.suffix == ".npz":
            same = _same_arrays(a, b)
        elif name.suffix == ".ipynb":
            same = [(c.cell_type, c.source) for c in nbformat.read(a, as_version=4).cells] == [
                (c.cell_type, c.source) for c in nbformat.read(b, as_version=4).cells]
        else:
            same = a.read_bytes() == b.read_bytes()
        if not same:
            problems.append(f"{current / name} is out of date")


def check_release_up_to_date(ids: Iterable[str] | None = None) -> list[str]:
    """What differs between the committed student versions (and the fixtures next to the source
    notebooks) and a fresh generation; an empty list when everything is up to date."""
    ids = list(ids or registry.ASSIGNMENTS)
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="release-check-") as tmp:
        build(ids, Path(tmp))
        for assignment in ids:
            _compare_folder(Path(tmp) / assignment, NOTEBOOKS / assignment, problems)
            for extra in extra_files(assignment):
                fresh, current = Path(tmp) / assignment / extra, SOURCE / assignment / extra
                if not current.exists():
                    problems.append(f"{current} is missing")
                elif extra.endswith(".npz") and not _same_arrays(fresh, current):
                    problems.append(f"{current} is out of date")
                elif extra.endswith(".py") and fresh.read_bytes() != current.read_bytes():
                    problems.append(f"{current} is out of date")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autograder.release",
        description="Generate the student versions of the assignments into notebooks/<id>/.",
    )
    parser.add_argument("ids", nargs="*", metavar="ID",
                        help="assignments to release (default: all of "
                             f"{', '.join(registry.ASSIGNMENTS)})")
    args = parser.parse_args(argv)
    try:
        folders = release(args.ids or None)
    except ValueError as error:
        parser.error(str(error))
    for folder in folders:
        print(f"wrote {folder.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
