"""Reading an LMS export: one submission per student, validated before anything runs.

A submissions folder holds, per student, ``<student>.ipynb``, a ``<student>/`` folder or a
``<student>.zip`` (any notebook name inside). Nothing here executes or unpacks anything to disk:
a zip's directory is read first and only the one notebook that will be graded is decompressed, in
memory and with a cap; folders are walked without following links, and only regular files are
read. Every problem (empty file, not JSON, not a notebook, another assignment's notebook, several
candidates, a zip bomb) becomes a :class:`Submission` with a ``problem`` that ends up in the grades
CSV.

Student ids keep their Unicode (NFC) and are safe folder names: a name that needs changing to be
one gets a short hash of the original, so two different names never become one student.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import unicodedata
import zipfile
from dataclasses import dataclass, field

import nbformat

from autograder.untrusted import UntrustedFileError, open_regular, read_bytes

MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024   # a notebook with its outputs; far above any honest one
MAX_FOLDER_FILES = 2000                 # files looked at inside one student's folder
MAX_ZIP_MEMBERS = 2000                  # entries in one zip's directory
MAX_ID_CHARS = 80                       # nbgrader's database allows 128 characters per id
_ID_PUNCTUATION = "_-.@"


@dataclass
class Submission:
    """One student's submission; ``notebook`` is None when ``problem`` says why it is not graded."""

    student: str
    origin: str
    sha256: str
    notebook: nbformat.NotebookNode | None = None
    problem: str | None = None
    notes: list[str] = field(default_factory=list)
    name: str = ""          # the file or folder name it came from, NFC, without the extension


def _id_char(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LN" or unicodedata.category(ch) in ("Mn", "Mc") or (
        ch in _ID_PUNCTUATION)


def student_id(name: str) -> str:
    """The student id of a file or folder name (nbgrader uses it as a folder name).

    Letters and digits of any script are kept (``学生甲`` stays ``学生甲``), in Unicode's NFC form;
    other characters (spaces, slashes, glob and control characters) become ``_``, and a leading
    ``.`` or ``-`` too. A name that had to change, or is longer than ``MAX_ID_CHARS``, gets
    ``-`` and 8 hex digits of the SHA-256 of its NFC form, so ids stay distinct: ``a b`` becomes
    ``a_b-<hash>``, never ``a_b``.
    """
    original = unicodedata.normalize("NFC", name)
    cleaned = "".join(ch if _id_char(ch) else "_" for ch in original)
    if cleaned[:1] in (".", "-"):
        cleaned = "_" + cleaned[1:]
    if cleaned == original and 0 < len(cleaned) <= MAX_ID_CHARS:
        return cleaned
    digest = hashlib.sha256(original.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{cleaned[:MAX_ID_CHARS - 9] or 'student'}-{digest}"


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
    if len(data) > MAX_NOTEBOOK_BYTES:
        return None, f"the file is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB"
    if not data.strip():
        return None, "the file is empty"
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


def accepted_names(assignment: str) -> list[str]:
    """The notebook names graded as ``assignment``: the English one and its translated twins."""
    from autograder.translation import TRANSLATED_LANGUAGES, twin_name

    return [f"{assignment}.ipynb"] + [twin_name(assignment, lang) for lang in TRANSLATED_LANGUAGES]


def _pick(candidates: list[str], assignment: str, where: str, notes: list[str],
          modified=lambda name: 0.0):
    """The path of the notebook to grade among ``candidates``, or None and the reason.

    A notebook named as released (``<id>.ipynb``, or a translated twin such as
    ``<id>.zh_CN.ipynb``) is graded; if several are there, the one modified last (``modified``:
    name -> time), the English one on a tie, and a note says which.
    """
    names = accepted_names(assignment)
    wanted = names[0]
    exact = {}
    for n in sorted(candidates, key=len):
        base = os.path.basename(n)
        if base in names and base not in exact:
            exact[base] = n
    if len(exact) == 1:
        return next(iter(exact.values())), None
    if exact:
        order = sorted(exact, key=lambda base: (-modified(exact[base]), names.index(base)))
        notes.append(f"{' and '.join(sorted(exact))} were both submitted: graded {order[0]!r}, "
                     "the one changed last")
        return exact[order[0]], None
    if len(candidates) == 1:
        notes.append(f"the notebook was named {os.path.basename(candidates[0])!r}, graded as "
                     f"{wanted!r}")
        return candidates[0], None
    if not candidates:
        return None, f"no notebook (.ipynb) in {where}"
    listed = ", ".join(sorted(os.path.basename(n) for n in candidates)[:5])
    return None, f"{len(candidates)} notebooks in {where} and none named {wanted!r}: {listed}"


def _skip(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _from_zip(path: str, assignment: str, notes: list[str]):
    try:
        fd = open_regular(path, None)
    except UntrustedFileError as error:
        return None, f"the zip file cannot be read ({error})"
    try:
        with os.fdopen(fd, "rb") as f, zipfile.ZipFile(f) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_ZIP_MEMBERS:
                return None, f"the zip file has more than {MAX_ZIP_MEMBERS} entries"
            members = {m.filename: m for m in infos if m.filename.endswith(".ipynb")
                       and not m.is_dir() and not _skip(m.filename)}
            # Decide from the names alone, then decompress the chosen member only.
            chosen, problem = _pick(list(members), assignment, os.path.basename(path), notes,
                                    lambda name: time.mktime(members[name].date_time + (0, 0, -1)))
            if problem is not None:
                return None, problem
            return _read_member(zf, members[chosen]), None
    except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError, EOFError,
            ValueError) as error:
        return None, f"not a readable zip file ({error})"


def _read_member(zf: zipfile.ZipFile, member: zipfile.ZipInfo) -> bytes:
    """At most ``MAX_NOTEBOOK_BYTES + 1`` decompressed bytes of ``member``, whatever its header
    declares (one byte over the cap is enough for :func:`parse_notebook` to refuse it)."""
    chunks, size = [], 0
    with zf.open(member) as f:
        while size <= MAX_NOTEBOOK_BYTES:
            chunk = f.read(min(1 << 20, MAX_NOTEBOOK_BYTES + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    return b"".join(chunks)


def _from_folder(path: str, assignment: str, notes: list[str]):
    candidates = []
    seen = 0
    for root, dirs, files in os.walk(path):  # os.walk does not follow links to folders
        dirs[:] = [d for d in dirs if not _skip(d)]
        for name in files:
            seen += 1
            if seen > MAX_FOLDER_FILES:
                break
            if name.endswith(".ipynb") and not _skip(name):
                candidates.append(os.path.relpath(os.path.join(root, name), path))
    chosen, problem = _pick(candidates, assignment, f"folder {os.path.basename(path)}/", notes,
                            lambda name: os.lstat(os.path.join(path, name)).st_mtime)
    if problem is not None:
        return None, problem
    return _read(os.path.join(path, chosen), MAX_NOTEBOOK_BYTES, "notebook")


def _read(path: str, max_bytes: int, what: str) -> tuple[bytes | None, str | None]:
    """The bytes of a regular file (not a link, FIFO or device), or None and the reason."""
    try:
        return read_bytes(path, max_bytes), None
    except UntrustedFileError as error:
        if "larger than" in str(error):
            return None, f"the {what} is larger than {max_bytes // 2**20} MB"
        return None, f"the {what} cannot be read ({error})"


def load_one(path: str, assignment: str, known: dict[str, set[str]]) -> Submission:
    """Read the submission at ``path`` (file, folder or zip) of one student.

    ``known`` maps assignment ids to the grade ids of their source notebooks, to recognise a
    notebook of the wrong assignment.
    """
    name = os.path.basename(path.rstrip("/"))
    stem, ext = os.path.splitext(name)
    notes: list[str] = []
    is_folder = os.path.isdir(path) and not os.path.islink(path)
    if is_folder:
        stem = name
    student = student_id(stem)
    nfc = unicodedata.normalize("NFC", stem)
    if is_folder:
        data, problem = _from_folder(path, assignment, notes)
    elif ext.lower() == ".zip":
        data, problem = _from_zip(path, assignment, notes)
    elif ext.lower() == ".ipynb":
        data, problem = _read(path, MAX_NOTEBOOK_BYTES, "notebook")
    else:
        return Submission(student, path, _sha(name.encode()), name=nfc,
                          problem=f"{name!r} is not a notebook (.ipynb), folder or .zip")
    if problem is not None:
        return Submission(student, path, _sha((data or b"") + problem.encode()), problem=problem,
                          notes=notes, name=nfc)
    sha = _sha(data)
    nb, problem = parse_notebook(data)
    if problem is not None:
        return Submission(student, path, sha, problem=problem, notes=notes, name=nfc)
    ids = grade_ids(nb)
    mine = known.get(assignment, set())
    if ids and mine and not ids & mine:
        others = [(len(ids & other), a) for a, other in known.items() if a != assignment]
        best = max(others, default=(0, None))
        if best[0]:
            problem = f"this is the notebook of assignment {best[1]!r}, not {assignment!r}"
        else:
            problem = f"the notebook has none of the cells of assignment {assignment!r}"
        return Submission(student, path, sha, problem=problem, notes=notes, name=nfc)
    if not ids:
        notes.append("the notebook has no nbgrader cell metadata (not the released notebook?)")
    return Submission(student, path, sha, notebook=nb, notes=notes, name=nfc)


def collect(folder: str, assignment: str, known: dict[str, set[str]]) -> list[Submission]:
    """Every submission in ``folder``, one per student (the newest if a student has several).

    Entries of the same name (``alice.ipynb`` and ``alice.zip``, or one name in two Unicode
    normal forms) are the same student. Entries of different names never merge: should two of
    them ever get one id, both become an error that names the two entries.
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"no submissions folder {folder!r}")
    by_student: dict[str, tuple[float, Submission]] = {}
    collisions: dict[str, list[str]] = {}
    for name in sorted(os.listdir(folder)):
        if name.startswith("."):
            continue
        path = os.path.join(folder, name)
        submission = load_one(path, assignment, known)
        mtime = os.lstat(path).st_mtime
        if submission.student in by_student:
            old_time, old = by_student[submission.student]
            if old.name != submission.name:
                collisions.setdefault(submission.student, [os.path.basename(old.origin)]).append(
                    name)
                continue
            newer, older = (submission, old) if mtime >= old_time else (old, submission)
            newer.notes.append(f"also found {os.path.basename(older.origin)!r} (older), ignored")
            by_student[submission.student] = (max(mtime, old_time), newer)
        else:
            by_student[submission.student] = (mtime, submission)
    for student, names in collisions.items():
        listed = ", ".join(repr(n) for n in names)
        by_student[student] = (0.0, Submission(
            student, os.path.join(folder, names[0]), _sha("\0".join(names).encode()),
            problem=f"error: {listed} all map to the student id {student!r}; rename them so "
                    "that each student has one name", name=student))
    return [s for _, s in sorted(by_student.values(), key=lambda t: t[1].student)]
