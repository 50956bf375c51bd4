"""The book's two editions and its assignment archives: a local Sphinx extension (``_config.yml``
loads it through ``sphinx: local_extensions``).

**Editions.** The public book (``make book``) shows no code of a graded function: a student could
copy it. The pages put that code in ``{only} instructor`` blocks, which only the instructor edition
(``make book-instructor``) renders. The environment variable ``COURSE_EDITION`` chooses:
``public`` (the default) or ``instructor``, which adds the Sphinx tag ``instructor``.

**Assignment archives.** Each assignment's student folder ``notebooks/<id>/`` (the notebook and the
files its visible checks need) is zipped at build time into ``book/_assignments/<id>.zip``
(git-ignored), which the chapter's exercises page offers with ``{download}``. The archive holds the
folder as ``<id>/...``. It is rewritten only when its content changes, and its bytes depend only on
the files' names and contents, so concurrent builds write the same file.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from io import BytesIO
from pathlib import Path

from sphinx.application import Sphinx

EDITIONS = ("public", "instructor")
ROOT = Path(__file__).resolve().parents[2]
STUDENT_FOLDERS = ROOT / "notebooks"
ARCHIVES = ROOT / "book" / "_assignments"
# Files an editor or a run of the notebook leaves behind; not part of the assignment.
IGNORED_NAMES = ("__pycache__", ".ipynb_checkpoints", ".DS_Store")
# A fixed timestamp (zip's earliest) keeps the archive's bytes independent of file times.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def edition() -> str:
    """The edition that ``COURSE_EDITION`` asks for; ``ValueError`` naming it if unknown."""
    value = os.environ.get("COURSE_EDITION", "public") or "public"
    if value not in EDITIONS:
        raise ValueError(f"COURSE_EDITION: expected one of {EDITIONS}, got {value!r}")
    return value


def assignment_files(assignment: str) -> list[Path]:
    """The files of ``notebooks/<assignment>/`` that the archive holds, sorted."""
    folder = STUDENT_FOLDERS / assignment
    notebook = folder / f"{assignment}.ipynb"
    if not notebook.is_file():
        raise FileNotFoundError(f"no student notebook {notebook} (python -m autograder release)")
    return sorted(p for p in folder.rglob("*") if p.is_file()
                  and not any(part in IGNORED_NAMES for part in p.relative_to(folder).parts))


def archive_bytes(assignment: str) -> bytes:
    """The zip archive of the assignment's student folder, with its files under ``<id>/``."""
    folder = STUDENT_FOLDERS / assignment
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in assignment_files(assignment):
            name = f"{assignment}/{path.relative_to(folder).as_posix()}"
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def write_archives(app: Sphinx) -> None:
    """``builder-inited``: (re)write ``book/_assignments/<id>.zip`` for every assignment."""
    from autograder.checks import ASSIGNMENTS

    ARCHIVES.mkdir(parents=True, exist_ok=True)
    for assignment in ASSIGNMENTS:
        target = ARCHIVES / f"{assignment}.zip"
        content = archive_bytes(assignment)
        if target.is_file() and target.read_bytes() == content:
            continue
        # Write beside the target and rename: a concurrent build never sees half an archive.
        with tempfile.NamedTemporaryFile(dir=ARCHIVES, suffix=".part", delete=False) as part:
            part.write(content)
        os.chmod(part.name, 0o644)
        os.replace(part.name, target)


def setup(app: Sphinx) -> dict:
    if edition() == "instructor":
        app.tags.add("instructor")
    app.connect("builder-inited", write_archives)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
