"""What crosses a process or machine boundary in grading: a :class:`Job` in, a :class:`Result` out.

Both are plain dataclasses with a ``version`` and a JSON form (``to_json``/``from_json``; bytes as
base64), so that a job can be graded by a worker on another machine that shares no file system
with the grader: the job carries the submitted notebook's bytes, and names the template (the
assignment's nbgrader gradebook and reference outputs) by a :class:`TemplateRef`, whose bytes the
engine sends once per worker.

A :class:`Result` is also what the course keeps: ``results/<id>/<student>.json`` and each row of
the grading history hold :meth:`Result.to_dict` (without the files). Rows written before results
had a version (version 0: the worker's untyped dict) are migrated when read; a record of an
unknown version is refused with :class:`RecordVersionError`.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field

from autograder.sandbox import Limits

JOB_VERSION = 1
RESULT_VERSION = 1
STATUSES = ("full marks", "partial", "zero", "invalid", "error")


class RecordVersionError(ValueError):
    """A job or result record of a version this grader cannot read."""


def _check_version(kind: str, found, expected: int) -> None:
    if found != expected:
        raise RecordVersionError(f"{kind} record version {found!r} is not supported: expected "
                                 f"version {expected} (written by another version of the grader?)")


def _encode(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _decode(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text, validate=True)


@dataclass(frozen=True)
class TemplateRef:
    """An assignment's template, by content: the fingerprint of the source notebook, checks and
    grader it was built from, and the SHA-256 of its tar.gz bytes."""

    assignment: str
    fingerprint: str
    sha256: str

    @property
    def key(self) -> str:
        """A name for the unpacked template in a worker's cache."""
        return f"{self.assignment}-{self.fingerprint}-{self.sha256[:16]}"


@dataclass
class Job:
    """Everything a worker needs to grade one submission, and nothing machine-specific: the uid
    a sandbox runs as is leased on the machine that runs the job."""

    assignment: str
    student: str
    notebook: bytes                  # the submitted .ipynb as collected and validated (JSON)
    template: TemplateRef
    course_id: str
    limits: Limits                   # of every sandboxed process (the re-verification's)
    timeout: float                   # seconds per notebook cell and per function's hidden cases
    time_limit: float                # seconds for the whole job, after which it is killed
    max_output_bytes: int            # output kept per notebook cell
    sandboxed: bool = True           # False (--unsandboxed): resource limits only
    notes: list[str] = field(default_factory=list)   # from collecting the submission
    keep_folder: bool = False        # --keep-jobs: leave the worker's folder for debugging
    version: int = JOB_VERSION

    def to_json(self) -> str:
        data = asdict(self)
        data["notebook"] = _encode(self.notebook)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str | bytes) -> Job:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"a job record must be a JSON object, got {type(data).__name__}")
        _check_version("job", data.get("version"), JOB_VERSION)
        data["notebook"] = _decode(data["notebook"])
        data["template"] = TemplateRef(**data["template"])
        data["limits"] = Limits(**data["limits"])
        return cls(**data)


@dataclass
class CheckGrade:
    """The trusted grade of one graded function (one check of :mod:`autograder.checks`)."""

    name: str
    points: float
    max_points: float
    reason: str | None = None          # why points were lost; None with full marks
    kernel_error: str | None = None    # the error the notebook's run showed in its test cell
    kernel_score: float | None = None  # nbgrader's score of that cell (no hidden tests: it ran)

    @property
    def verdict(self) -> str:
        return "passed" if self.points >= self.max_points else "failed"

    def to_dict(self) -> dict:
        # "kernel" is the key results had before they had a version.
        return {"name": self.name, "points": self.points, "max_points": self.max_points,
                "verdict": self.verdict, "reason": self.reason, "kernel": self.kernel_error,
                "kernel_score": self.kernel_score}

    @classmethod
    def from_dict(cls, data: dict) -> CheckGrade:
        return cls(name=data["name"], points=data["points"], max_points=data["max_points"],
                   reason=data.get("reason"), kernel_error=data.get("kernel"),
                   kernel_score=data.get("kernel_score"))


def status_of(total: float, max_total: float) -> str:
    """The status of a graded submission from its points."""
    if total >= max_total:
        return "full marks"
    return "partial" if total > 0 else "zero"


@dataclass
class Result:
    """The grade of one submission: per function, the status, notes, timings and, when nbgrader
    ran, the autograded notebook and the feedback page (bytes, as the worker made them)."""

    student: str
    assignment: str
    checks: list[CheckGrade]
    status: str                          # one of STATUSES
    problem: str | None = None           # why the submission was not graded (status "invalid")
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)   # seconds per phase
    notebook_ran: bool | None = None     # the whole notebook ran (None: not tried)
    autograded: bytes | None = None      # the .ipynb nbgrader ran
    feedback: bytes | None = None        # the feedback .html
    version: int = RESULT_VERSION

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    @property
    def total(self) -> float:
        return sum(c.points for c in self.checks)

    @property
    def max_total(self) -> float:
        return sum(c.max_points for c in self.checks)

    @classmethod
    def scored(cls, student: str, assignment: str, checks: list[CheckGrade],
               notes: list[str]) -> Result:
        """A graded submission, its status decided by its points."""
        total, max_total = sum(c.points for c in checks), sum(c.max_points for c in checks)
        return cls(student, assignment, checks, status_of(total, max_total), notes=notes)

    @classmethod
    def unscored(cls, student: str, assignment: str, max_points: dict[str, float], status: str,
                 problem: str | None = None, notes: list[str] = ()) -> Result:
        """Zero points for every function: an invalid submission, or one the grader failed on."""
        checks = [CheckGrade(name, 0, points) for name, points in max_points.items()]
        return cls(student, assignment, checks, status, problem=problem, notes=list(notes))

    def to_dict(self, files: bool = False) -> dict:
        """The record as JSON-ready data; the autograded notebook and the feedback only with
        ``files`` (base64)."""
        data = {"version": self.version, "student": self.student, "assignment": self.assignment,
                "checks": [c.to_dict() for c in self.checks], "total": self.total,
                "max_total": self.max_total, "status": self.status, "problem": self.problem,
                "notes": list(self.notes), "timings": dict(self.timings),
                "notebook_ran": self.notebook_ran}
        if files:
            data["autograded"] = _encode(self.autograded)
            data["feedback"] = _encode(self.feedback)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Result:
        """Read :meth:`to_dict`'s data, or migrate an unversioned result of an older grader."""
        if not isinstance(data, dict):
            raise ValueError(f"a result record must be a JSON object, got {type(data).__name__}")
        version = data.get("version", 0)
        if version == 0:
            return _from_version_0(data)
        _check_version("result", version, RESULT_VERSION)
        return cls(student=data["student"], assignment=data["assignment"],
                   checks=[CheckGrade.from_dict(c) for c in data["checks"]],
                   status=data["status"], problem=data.get("problem"),
                   notes=list(data.get("notes", [])), timings=dict(data.get("timings", {})),
                   notebook_ran=data.get("notebook_ran"),
                   autograded=_decode(data.get("autograded")),
                   feedback=_decode(data.get("feedback")))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(files=True))

    @classmethod
    def from_json(cls, text: str | bytes) -> Result:
        return cls.from_dict(json.loads(text))


def _from_version_0(data: dict) -> Result:
    """A result as the grader wrote it before results had a version: the same verdicts, the
    status stored beside them, files as paths in the course folder (not carried over)."""
    checks = [CheckGrade.from_dict(c) for c in data["checks"]]
    status = data.get("status")
    if status not in STATUSES:
        total, max_total = sum(c.points for c in checks), sum(c.max_points for c in checks)
        status = "invalid" if data.get("problem") else status_of(total, max_total)
    return Result(student=data["student"], assignment=data.get("assignment", ""), checks=checks,
                  status=status, problem=data.get("problem"), notes=list(data.get("notes", [])),
                  notebook_ran=data.get("kernel_ok"))
