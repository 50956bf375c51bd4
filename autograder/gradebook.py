"""The course's records: nbgrader's gradebook plus a history of every grading.

nbgrader keeps one submission per student and assignment. The grading history (a table
``autograder_history`` in the same database, so ``--db postgresql://...`` shares it too) keeps every
grading: the submission's SHA-256, the grader's fingerprint, the scores and the reasons. The latest
row of a student is the current grade; a re-submission marks the previous row superseded, which is
how "the old grade stays on record". The same rows decide what a rerun may skip. Each row's
``result`` column holds :meth:`autograder.records.Result.to_dict` (rows of older graders are
migrated when read: :meth:`History.result`).
"""

from __future__ import annotations

import csv
import datetime
import json
import warnings

import sqlalchemy as sa

from autograder.records import Result

_metadata = sa.MetaData()
history = sa.Table(
    "autograder_history", _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("course_id", sa.String(128), nullable=False),
    sa.Column("assignment", sa.String(128), nullable=False, index=True),
    sa.Column("student", sa.String(128), nullable=False, index=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("graded_at", sa.String(32), nullable=False),
    sa.Column("total", sa.Float, nullable=False),
    sa.Column("max_total", sa.Float, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("result", sa.Text, nullable=False),   # Result.to_dict() as JSON
    sa.Column("superseded", sa.Boolean, nullable=False, default=False),
)


class History:
    """The ``autograder_history`` table in the database at ``db_url``."""

    def __init__(self, db_url: str, course_id: str):
        self.engine = sa.create_engine(db_url)
        self.course_id = course_id
        _metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def _current(self, assignment: str):
        return sa.and_(history.c.course_id == self.course_id, history.c.assignment == assignment,
                       history.c.superseded.is_(False))

    def latest(self, assignment: str) -> dict[str, dict]:
        """The current row of every student of ``assignment``, by student id."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(history).where(self._current(assignment))).mappings()
            return {row["student"]: dict(row) for row in rows}

    @staticmethod
    def result(row: dict) -> Result:
        """The :class:`Result` a row holds (the files are not kept in the history)."""
        return Result.from_dict(json.loads(row["result"]))

    def record(self, assignment: str, result: Result, sha256: str, fingerprint: str) -> None:
        """Add a grading; the student's previous one stays, marked superseded."""
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        with self.engine.begin() as conn:
            conn.execute(history.update()
                         .where(self._current(assignment), history.c.student == result.student)
                         .values(superseded=True))
            conn.execute(history.insert().values(
                course_id=self.course_id, assignment=assignment, student=result.student,
                sha256=sha256, fingerprint=fingerprint, graded_at=now, total=result.total,
                max_total=result.max_total, status=result.status,
                result=json.dumps(result.to_dict()), superseded=False))

    def all_rows(self, assignment: str, student: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(history).where(
                history.c.course_id == self.course_id, history.c.assignment == assignment,
                history.c.student == student).order_by(history.c.id)).mappings()
            return [dict(r) for r in rows]


def write_csv(path: str, assignment: str, check_names: list[str], rows: dict[str, dict]) -> int:
    """One line per student: the points of each function, the total, the status and the reasons."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", *check_names, "total", "max_total", "status", "reason",
                         "graded_at"])
        for student in sorted(rows):
            row = rows[student]
            result = History.result(row)
            points = {c.name: c.points for c in result.checks}
            writer.writerow([student, *(_num(points.get(n, 0)) for n in check_names),
                             _num(row["total"]), _num(row["max_total"]), row["status"],
                             reason_text(result), row["graded_at"]])
    return len(rows)


def _num(value: float) -> str:
    return f"{value:g}"


def reason_text(result: Result) -> str:
    """Everything that cost points, in one cell: ``"rnn_backward: dWh differs ...; notes"``."""
    parts = [result.problem] if result.problem else []
    parts += [f"{c.name}: {c.reason}" for c in result.checks if c.reason]
    parts += result.notes
    return "; ".join(parts)


def update_nbgrader(db_url: str, course_id: str, assignment: str, result: Result) -> None:
    """Write the trusted scores into nbgrader's gradebook (manual score overrides auto score)."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url, course_id) as gb, warnings.catch_warnings():
        # nbgrader 0.9 with SQLAlchemy 2 warns about its own autoflush; the rows are right.
        warnings.simplefilter("ignore", sa.exc.SAWarning)
        gb.update_or_create_student(result.student)
        gb.update_or_create_submission(assignment, result.student)
        for check in result.checks:
            try:
                grade = gb.find_grade(f"test_{check.name}", assignment, assignment,
                                      result.student)
            except MissingEntry:
                continue
            grade.auto_score = check.kernel_score
            grade.manual_score = check.points
            grade.needs_manual_grade = False
        gb.db.commit()
