"""Reading an LMS export: one submission per student, validated before anything runs.

A submissions folder holds, per student, ``<student>.ipynb``, a ``<student>/`` folder or a
``<student>.zip`` (any notebook name inside). Nothing here executes or unpacks anything to disk:
zip members are read in memory with a size cap, folders are walked without following links, and
every problem (empty file, not JSON, not a notebook, another assignment's notebook, several
candidates) becomes a :class:`Submission` with a ``problem`` that ends up in the grades CSV.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from dataclasses import dataclass, field

import nbformat

MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024   # a notebook with its outputs; far above any honest one
MAX_FOLDER_FILES = 2000                 # files looked at inside one student's folder


@dataclass
class Submission:
    """One student's submission; ``notebook`` is None when ``problem`` says why it is not graded."""

    student: str
    origin: str
    sha256: str
    notebook: nbformat.NotebookNode | None = None
    problem: str | None = None
    notes: list[str] = field(default_factory=list)


def student_id(name: str) -> str:
    """A safe student id from a file or folder name (nbgrader uses it as a folder name)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.@-]+", "_", name).strip("._-")
    return cleaned[:100] or "student"


def grade_ids(nb) -> set[str]:
    ids = set()
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if isinstance(meta, dict) and isinstance(meta.get("grade_id"), str):
            ids.add(meta["grade_id"])
    return ids


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_notebook(data: bytes) -> tuple[nbformat.NotebookNode | None, str | None]:
    """The notebook in ``data``, or None and a short reason."""
    if not data.strip():
        return None, "the file is empty"
    if len(data) > MAX_NOTEBOOK_BYTES:
        return None, f"the file is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB"
    try:
        raw = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        return None, "not a Jupyter notebook (not UTF-8 text)"
    except json.JSONDecodeError as error:
        return None, f"not a valid notebook: broken JSON ({error.msg} at line {error.lineno})"
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        return None, "not a Jupyter notebook (no list of cells)"
    try:
        nb = nbformat.reads(json.dumps(raw), as_version=4)
        for cell in nb.cells:
            if not isinstance(cell.get("source", ""), str) or "cell_type" not in cell:
                raise ValueError("malformed cell")
    except Exception as error:  # noqa: BLE001 -- any error in an untrusted file is a verdict
        return None, f"not a valid Jupyter notebook ({str(error).splitlines()[0][:120]})"
    return nb, None


def _pick(candidates: dict[str, bytes], assignment: str, where: str, notes: list[str]):
    wanted = f"{assignment}.ipynb"
    exact = [n for n in candidates if os.path.basename(n) == wanted]
    if exact:
        return candidates[sorted(exact, key=len)[0]], None
    if len(candidates) == 1:
        (name, data), = candidates.items()
        notes.append(f"the notebook was named {os.path.basename(name)!r}, graded as {wanted!r}")
        return data, None
    if not candidates:
        return None, f"no notebook (.ipynb) in {where}"
    names = ", ".join(sorted(os.path.basename(n) for n in candidates)[:5])
    return None, f"{len(candidates)} notebooks in {where} and none named {wanted!r}: {names}"


def _skip(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _from_zip(path: str, assignment: str, notes: list[str]):
    try:
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.infolist() if m.filename.endswith(".ipynb")
                       and not m.is_dir() and not _skip(m.filename)]
            candidates = {}
            for member in members[:MAX_FOLDER_FILES]:
                # Reading one byte over the cap is enough for parse_notebook to refuse a zip bomb.
                with zf.open(member) as f:
                    candidates[member.filename] = f.read(MAX_NOTEBOOK_BYTES + 1)
    except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError) as error:
        return None, f"not a readable zip file ({error})"
    return _pick(candidates, assignment, os.path.basename(path), notes)


def _from_folder(path: str, assignment: str, notes: list[str]):
    candidates = {}
    seen = 0
    for root, dirs, files in os.walk(path):  # os.walk does not follow links to folders
        dirs[:] = [d for d in dirs if not _skip(d)]
        for name in files:
            seen += 1
            full = os.path.join(root, name)
            if seen > MAX_FOLDER_FILES:
                break
            if name.endswith(".ipynb") and not _skip(name) and not os.path.islink(full):
                candidates[os.path.relpath(full, path)] = _read(full)
    return _pick(candidates, assignment, f"folder {os.path.basename(path)}/", notes)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(MAX_NOTEBOOK_BYTES + 1)


def load_one(path: str, assignment: str, known: dict[str, set[str]]) -> Submission:
    """Read the submission at ``path`` (file, folder or zip) of one student.

    ``known`` maps assignment ids to the grade ids of their source notebooks, to recognise a
    notebook of the wrong assignment.
    """
    name = os.path.basename(path.rstrip("/"))
    stem, ext = os.path.splitext(name)
    notes: list[str] = []
    if os.path.isdir(path) and not os.path.islink(path):
        student, (data, problem) = student_id(name), _from_folder(path, assignment, notes)
    elif ext.lower() == ".zip":
        student, (data, problem) = student_id(stem), _from_zip(path, assignment, notes)
    elif ext.lower() == ".ipynb" and not os.path.islink(path):
        student, data, problem = student_id(stem), _read(path), None
    else:
        student = student_id(stem)
        return Submission(student, path, _sha(name.encode()),
                          problem=f"{name!r} is not a notebook (.ipynb), folder or .zip")
    if problem is not None:
        return Submission(student, path, _sha((data or b"") + problem.encode()), problem=problem,
                          notes=notes)
    sha = _sha(data)
    nb, problem = parse_notebook(data)
    if problem is not None:
        return Submission(student, path, sha, problem=problem, notes=notes)
    ids = grade_ids(nb)
    mine = known.get(assignment, set())
    if ids and mine and not ids & mine:
        others = [(len(ids & other), a) for a, other in known.items() if a != assignment]
        best = max(others, default=(0, None))
        if best[0]:
            problem = f"this is the notebook of assignment {best[1]!r}, not {assignment!r}"
        else:
            problem = f"the notebook has none of the cells of assignment {assignment!r}"
        return Submission(student, path, sha, problem=problem, notes=notes)
    if not ids:
        notes.append("the notebook has no nbgrader cell metadata (not the released notebook?)")
    return Submission(student, path, sha, notebook=nb, notes=notes)


def collect(folder: str, assignment: str, known: dict[str, set[str]]) -> list[Submission]:
    """Every submission in ``folder``, one per student (the newest if a student has several)."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"no submissions folder {folder!r}")
    by_student: dict[str, tuple[float, Submission]] = {}
    for name in sorted(os.listdir(folder)):
        if name.startswith("."):
            continue
        path = os.path.join(folder, name)
        submission = load_one(path, assignment, known)
        mtime = os.lstat(path).st_mtime
        if submission.student in by_student:
            old_time, old = by_student[submission.student]
            newer, older = (submission, old) if mtime >= old_time else (old, submission)
            newer.notes.append(f"also found {os.path.basename(older.origin)!r} (older), ignored")
            by_student[submission.student] = (max(mtime, old_time), newer)
        else:
            by_student[submission.student] = (mtime, submission)
    return [s for _, s in sorted(by_student.values(), key=lambda t: t[1].student)]
