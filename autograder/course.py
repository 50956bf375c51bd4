"""The course folder of a grading run and the templates its jobs are graded against.

The course folder (``--course-dir``, git-ignored ``autograder/.work`` by default) holds nbgrader's
layout: ``source/``, ``release/``, ``submitted/<student>/<id>/``, ``autograded/``, ``feedback/``,
the SQLite gradebook (unless ``--db``), plus ``results/<id>/<student>.json`` (the verdicts),
``history/`` (replaced feedback) and ``.grader/`` (templates keyed by the grader's fingerprint,
and in ``.grader/archives/`` the same packed for workers).

Only the grading parent (:mod:`autograder.pipeline`) writes here. A worker gets the template as a
tar.gz archive (:class:`Template`), so it needs no access to this folder.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

import nbformat

from autograder import checks as checks_module
from autograder.assignments import extra_assignment_files
from autograder.records import TemplateRef
from autograder.submissions import grade_ids

if TYPE_CHECKING:
    from autograder.pipeline import Settings

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


@dataclass(frozen=True)
class Template:
    """An assignment's template: nbgrader's gradebook for it (``gradebook.db``), its released
    notebook and data files (``release/``, ``source/``), and the re-verification's cases and
    reference outputs (``cases.json``, ``cases.npz``, ``reference.npz``)."""

    folder: str          # in the course folder
    ref: TemplateRef
    archive: bytes       # the folder as a tar.gz, for workers


def _sha_files(paths: list[str]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.encode())
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


def pack_folder(folder: str) -> bytes:
    """``folder`` as a tar.gz whose bytes depend only on the files' names and contents."""

    def normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        return info

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(root, name)
                tar.add(path, arcname=os.path.relpath(path, folder), filter=normalised)
    return gzip.compress(raw.getvalue(), mtime=0)


class Course:
    """The runtime course folder and its gradebook."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.root = os.path.abspath(settings.course_dir)
        os.makedirs(self.root, exist_ok=True)
        # Gradebook, submissions and feedback live here: no other user may enter (unless the
        # folder is someone else's, shared on purpose).
        if os.stat(self.root).st_uid == os.geteuid():
            os.chmod(self.root, 0o700)
        self.db_url = settings.db_url or f"sqlite:///{os.path.join(self.root, 'gradebook.db')}"

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def source_notebook(self, assignment: str) -> str:
        path = os.path.join(self.settings.source_dir, assignment, f"{assignment}.ipynb")
        if not os.path.exists(path):
            raise FileNotFoundError(f"no source notebook for assignment {assignment!r}: {path}")
        return path

    def fingerprint(self, assignment: str) -> str:
        """Changes whenever the source notebook, the checks or the grader change (extra
        assignments' modules included)."""
        source = os.path.join(self.settings.source_dir, assignment)
        files = sorted(os.path.join(d, f) for d, _, fs in os.walk(source) for f in fs
                       if ".ipynb_checkpoints" not in d)
        grader = sorted(os.path.join(PACKAGE_DIR, f) for f in os.listdir(PACKAGE_DIR)
                        if f.endswith(".py"))
        checks = sorted(os.path.join(PACKAGE_DIR, "checks", f)
                        for f in os.listdir(os.path.join(PACKAGE_DIR, "checks"))
                        if f.endswith(".py"))
        # Assignments registered through AUTOGRADER_EXTRA_ASSIGNMENTS are part of the grader.
        return _sha_files(files + grader + checks + extra_assignment_files())[:16]

    def nbgrader_api(self, root: str, db_url: str):
        from nbgrader.apps import NbGraderAPI
        from nbgrader.coursedir import CourseDirectory
        from traitlets.config import Config

        c = Config()
        c.CourseDirectory.root = root
        c.CourseDirectory.db_url = db_url
        c.CourseDirectory.course_id = self.settings.course_id
        c.GenerateAssignment.create_assignment = True
        c.ClearHiddenTests.begin_test_delimeter = "BEGIN HIDDEN TESTS"
        c.ClearHiddenTests.end_test_delimeter = "END HIDDEN TESTS"
        return NbGraderAPI(coursedir=CourseDirectory(config=c), config=c)

    def _generate(self, root: str, db_url: str, assignment: str) -> None:
        target = os.path.join(root, "source", assignment)
        if os.path.exists(target):
            shutil.rmtree(target)
        shutil.copytree(os.path.join(self.settings.source_dir, assignment), target,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        result = self.nbgrader_api(root, db_url).generate_assignment(assignment, force=True)
        if not result["success"]:
            raise RuntimeError(f"nbgrader generate_assignment failed for {assignment!r}:\n"
                               f"{result.get('log')}\n{result.get('error')}")

    def prepare(self, assignment: str) -> str:
        """The template folder of ``assignment`` (built if the fingerprint is new)."""
        if assignment not in checks_module.CHECKS:
            raise KeyError(f"unknown assignment {assignment!r}; expected one of "
                           f"{sorted(checks_module.CHECKS)}")
        self.source_notebook(assignment)
        fingerprint = self.fingerprint(assignment)
        template = self.path(".grader", f"{assignment}-{fingerprint}")
        if not os.path.exists(template):
            from autograder.verify import prepare_reference

            building = tempfile.mkdtemp(prefix=f".{assignment}-", dir=self.path())
            self._generate(building, f"sqlite:///{os.path.join(building, 'gradebook.db')}",
                           assignment)
            prepare_reference(assignment, building)
            os.makedirs(os.path.dirname(template), exist_ok=True)
            os.replace(building, template)
        # The course's own gradebook must know the assignment (and its current version).
        marker = self.path(".grader", f"main-{assignment}.json")
        wanted = {"fingerprint": fingerprint, "db": self.db_url}
        current = json.load(open(marker)) if os.path.exists(marker) else None
        if current != wanted:
            self._generate(self.root, self.db_url, assignment)
            with open(marker, "w") as f:
                json.dump(wanted, f)
        return template

    def template(self, assignment: str) -> Template:
        """:meth:`prepare`'s folder, with its archive (packed once per fingerprint)."""
        folder = self.prepare(assignment)
        archive_path = self.path(".grader", "archives", os.path.basename(folder) + ".tar.gz")
        if not os.path.exists(archive_path):
            os.makedirs(os.path.dirname(archive_path), exist_ok=True)
            partial = archive_path + f".{os.getpid()}"
            with open(partial, "wb") as f:
                f.write(pack_folder(folder))
            os.replace(partial, archive_path)
        with open(archive_path, "rb") as f:
            archive = f.read()
        ref = TemplateRef(assignment, self.fingerprint(assignment),
                          hashlib.sha256(archive).hexdigest())
        return Template(folder, ref, archive)

    def known_grade_ids(self) -> dict[str, set[str]]:
        known = {}
        for assignment in checks_module.CHECKS:
            path = os.path.join(self.settings.source_dir, assignment, f"{assignment}.ipynb")
            if os.path.exists(path):
                known[assignment] = grade_ids(nbformat.read(path, as_version=4))
        return known
