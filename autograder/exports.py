"""Grades where instructors need them: the current grades as a Canvas or Moodle gradebook import.

``python -m autograder export ID --format canvas|moodle`` writes one CSV file that the LMS's
gradebook imports as it is; ``--format csv`` (the default) is the grader's own CSV
(:func:`autograder.gradebook.write_csv`), unchanged.

**Canvas** (Grades > Import). The format is that of Canvas's own gradebook export, which its
importer reads back: ``app/models/gradebook_exporter.rb`` and ``gradebook_importer.rb`` of
https://github.com/instructure/canvas-lms; an institution's summary of the rules:
https://teaching.resources.osu.edu/toolsets/carmencanvas/guides/calculating-final-grades/import-csv-file-carmen-grades.

* header ``Student, ID, SIS User ID, SIS Login ID, Section``, then one column per assignment
  titled ``Name (assignment id)`` (``--column-title``). Canvas finds the student by ``ID`` (its
  numeric user id), else by ``SIS User ID`` or ``SIS Login ID``, else by the name in ``Student``;
  it finds the assignment by the id in the title, else by the title, else creates one;
* a second row whose first cell is ``Points Possible`` (Canvas writes ``"    Points Possible"``)
  gives each assignment's points (Canvas sets the assignment's points possible from it);
* an empty cell (or ``-``) changes nothing; UTF-8, comma or semicolon separated; Canvas's export
  adds a UTF-8 byte-order mark when the user asks for one (for Excel), and its importer reads a
  file with or without it.

**Moodle** (Grades > Import > CSV file; https://docs.moodle.org/311/en/Grade_import and
``grade/import/csv/classes/load_data.php``, ``lib/csvlib.class.php`` of
https://github.com/moodle/moodle): any header; at import the instructor maps one column ("Map
from") to a user field ("Map to": ``username``, ``useridnumber``, ``useremail`` or ``userid``) and
each other column to a grade item, a new grade item or an item's feedback. ``-`` is "no grade".
One row whose user is not found stops the whole import, and a row with an empty identifier keeps
the student of the row before it, so every row written here has its identifiers. The encoding is
chosen at import (UTF-8 by default); Moodle removes a UTF-8 byte-order mark.

Both files are written in UTF-8 *with* a byte-order mark: both LMSs read it, and Excel needs it
to show non-ASCII names (``学生甲``) when the instructor opens the file first. Fields are quoted
as RFC 4180 says (Python's ``csv`` module).

**The roster** (``--roster FILE``) maps the grader's student ids (the file or folder names of the
LMS's submission export, Unicode NFC) to the LMS's identities. It is a CSV file (UTF-8, with or
without a byte-order mark) with a header row; column names are case-insensitive, other columns are
ignored:

=============  ======================================================================
``student``    required: the grader's student id (``学生甲`` for ``学生甲.ipynb``)
``name``       the student's name (Canvas: ``Student``; Moodle: ``Name``)
``canvas_id``  Canvas's numeric user id (the ``ID`` column of Canvas's gradebook export)
``sis_user_id``, ``sis_login_id``, ``section``: Canvas's columns of the same names
``username``, ``id_number``, ``email``: Moodle's user fields (``Username``, ``ID number``,
               ``Email address``)
=============  ======================================================================

A Canvas export needs at least one of ``canvas_id``, ``sis_user_id``, ``sis_login_id`` in every
row; a Moodle export needs at least one of ``username``, ``id_number``, ``email`` as a column,
filled in every row. With a roster the file has a row per roster student, in the roster's order;
graded students who are not in the roster are left out and named in a warning, and roster
students without a graded submission get an empty grade (``-`` for Moodle), or 0 with
``missing_zero``, and are named in a warning. Without a roster the grader's student id is written
where the LMS looks for a login (Canvas ``SIS Login ID`` and ``Student``, Moodle ``Username``),
with a warning saying so.
"""

from __future__ import annotations

import csv
import unicodedata
from dataclasses import dataclass, field

from autograder.gradebook import History, reason_text

FORMATS = ("csv", "canvas", "moodle")
ROSTER_COLUMNS = ("student", "name", "canvas_id", "sis_user_id", "sis_login_id", "section",
                  "username", "id_number", "email")
# The roster columns by which each LMS can find a student, in the order it tries them.
IDENTITY_COLUMNS = {
    "canvas": ("canvas_id", "sis_user_id", "sis_login_id"),
    "moodle": ("username", "id_number", "email"),
}
CANVAS_STUDENT_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
CANVAS_POINTS_POSSIBLE = "    Points Possible"   # as Canvas's own export writes it
MOODLE_STUDENT_COLUMNS = ("Name", "Username", "ID number", "Email address")
MOODLE_NO_GRADE = "-"


class ExportError(ValueError):
    """Bad input to an export; the message names the option or file at fault."""


@dataclass(frozen=True)
class Grade:
    """A student's current grade of one assignment, as the exports need it."""

    student: str        # the grader's student id (Unicode NFC)
    total: float
    max_total: float
    status: str         # full marks, partial, zero, invalid or error
    reason: str = ""    # what cost points, in one line ("" for full marks)


@dataclass
class Export:
    """What an export wrote: the file, its number of student rows, and the warnings."""

    path: str
    rows: int
    warnings: list[str] = field(default_factory=list)


def grades_from_history(rows: dict[str, dict]) -> list[Grade]:
    """The :class:`Grade` of every student from :meth:`History.latest`'s rows, by student id."""
    grades = []
    for student in sorted(rows):
        row = rows[student]
        grades.append(Grade(student=_nfc(student), total=float(row["total"]),
                            max_total=float(row["max_total"]), status=row["status"],
                            reason=reason_text(History.result(row))))
    return grades


def read_roster(path: str, lms: str) -> list[dict[str, str]]:
    """The rows of the roster at ``path``, checked for an export to ``lms`` (canvas or moodle).

    Each row is a dict of every :data:`ROSTER_COLUMNS` name (``""`` where the file has no such
    column), plus ``line``, its line number in the file. Raises :class:`ExportError`, naming
    ``--roster`` and the line, for a missing ``student`` column, no identity column for ``lms``,
    an empty or duplicate student id, a row the LMS could not match, or an identity two rows share.
    """
    where = f"--roster {path}"
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            lines = list(csv.reader(f))
    except FileNotFoundError:
        raise ExportError(f"{where}: no such file") from None
    except UnicodeDecodeError as error:
        raise ExportError(f"{where}: not UTF-8 text ({error.reason} at byte {error.start}); "
                          f"save the roster as CSV UTF-8") from None
    if not lines:
        raise ExportError(f"{where}: empty file; expected a header row with a 'student' column")
    header = [name.strip().lower() for name in lines[0]]
    repeated = sorted({name for name in header if name and header.count(name) > 1})
    if repeated:
        raise ExportError(f"{where}: column(s) {', '.join(repeated)} appear more than once")
    if "student" not in header:
        raise ExportError(f"{where}: no 'student' column (the grader's student id); columns "
                          f"found: {', '.join(repr(h) for h in header)}")
    identity = IDENTITY_COLUMNS[lms]
    present = [name for name in identity if name in header]
    if not present:
        raise ExportError(f"{where}: a {lms.capitalize()} export needs at least one of the "
                          f"columns {', '.join(identity)}; columns found: "
                          f"{', '.join(repr(h) for h in header)}")
    index = {name: header.index(name) for name in ROSTER_COLUMNS if name in header}
    roster: list[dict[str, str]] = []
    first_line: dict[str, int] = {}
    for number, cells in enumerate(lines[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue
        entry = {name: _nfc(cells[i]) if i < len(cells) else "" for name, i in index.items()}
        entry = {name: entry.get(name, "") for name in ROSTER_COLUMNS}
        student = entry["student"]
        if not student:
            raise ExportError(f"{where}: line {number}: empty 'student' cell")
        if student in first_line:
            raise ExportError(f"{where}: line {number}: student id {student!r} is also on line "
                              f"{first_line[student]}")
        first_line[student] = number
        _check_identity(entry, lms, present, f"{where}: line {number}")
        roster.append({**entry, "line": str(number)})
    for name in identity:
        seen: dict[str, str] = {}
        for entry in roster:
            value = entry[name]
            if value and value in seen:
                raise ExportError(f"{where}: line {entry['line']}: {name} {value!r} is also "
                                  f"on line {seen[value]} (two students, one LMS identity)")
            seen.setdefault(value, entry["line"])
    return roster


def _check_identity(entry: dict[str, str], lms: str, present: list[str], where: str) -> None:
    if lms == "canvas":
        if not any(entry[name] for name in present):
            raise ExportError(f"{where}: student {entry['student']!r} has none of "
                              f"{', '.join(present)}, so Canvas cannot find them")
        if entry["canvas_id"] and not entry["canvas_id"].isdigit():
            raise ExportError(f"{where}: canvas_id {entry['canvas_id']!r} of student "
                              f"{entry['student']!r} is not a number (Canvas's user ids are)")
    else:
        # Moodle skips a row whose mapped identifier is empty, so every identity column given
        # must be filled: the instructor may map from any of them.
        for name in present:
            if not entry[name]:
                raise ExportError(f"{where}: student {entry['student']!r} has an empty {name}; "
                                  f"Moodle could not match the row (fill it, or drop the "
                                  f"column and map from another)")


def write_lms_csv(path: str, lms: str, grades: list[Grade], points_possible: float,
                  title: str, roster: list[dict[str, str]] | None = None,
                  missing_zero: bool = False) -> Export:
    """Write ``grades`` as ``lms``'s gradebook import file (canvas or moodle) at ``path``.

    ``title`` heads the grade column (for Canvas, ``Name (assignment id)``); ``points_possible``
    is the assignment's maximum. ``roster`` comes from :func:`read_roster`; without it every
    graded student gets a row under the grader's student id. Returns the :class:`Export`, whose
    warnings name the students left out or without a grade.
    """
    if lms not in IDENTITY_COLUMNS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)} (canvas or moodle "
                          f"here); got {lms!r}")
    if not title.strip():
        raise ExportError("--column-title must not be empty")
    by_student = {_nfc(g.student): g for g in grades}
    warnings: list[str] = []
    if roster is None:
        where = ("'SIS Login ID' and 'Student'" if lms == "canvas" else "'Username'")
        warnings.append(
            f"no --roster: the grader's student ids are written as {where}; the "
            f"{lms.capitalize()} import matches them only if they are the students' "
            f"{'login ids or names' if lms == 'canvas' else 'usernames'}. Give --roster FILE "
            f"to map them to {lms.capitalize()}'s identities.")
        people = [_unrostered(student) for student in sorted(by_student)]
    else:
        people = roster
        listed = {entry["student"] for entry in roster}
        unlisted = sorted(set(by_student) - listed)
        if unlisted:
            warnings.append(f"{len(unlisted)} graded student(s) not in the roster, left out of "
                            f"the file: {', '.join(unlisted)}")
        missing = [entry["student"] for entry in roster if entry["student"] not in by_student]
        if missing:
            given = "0 (--missing-zero)" if missing_zero else "an empty grade"
            warnings.append(f"{len(missing)} roster student(s) without a graded submission, "
                            f"given {given}: {', '.join(missing)}")
    with open(path, "w", newline="", encoding="utf-8-sig") as f:
        writer = csv.writer(f)
        if lms == "canvas":
            writer.writerow([*CANVAS_STUDENT_COLUMNS, title])
            writer.writerow([CANVAS_POINTS_POSSIBLE, "", "", "", "", _points(points_possible)])
        else:
            writer.writerow([*MOODLE_STUDENT_COLUMNS, title, f"{title} (Feedback)"])
        for person in people:
            grade = by_student.get(person["student"])
            if grade is not None:
                score = _points(grade.total)
                feedback = _feedback(grade)
            elif missing_zero:
                score, feedback = "0", "no submission"
            else:
                score, feedback = ("" if lms == "canvas" else MOODLE_NO_GRADE), ""
            name = person["name"] or person["student"]
            if lms == "canvas":
                writer.writerow([name, person["canvas_id"], person["sis_user_id"],
                                 person["sis_login_id"], person["section"], score])
            else:
                writer.writerow([name, person["username"], person["id_number"], person["email"],
                                 score, feedback])
    return Export(path=path, rows=len(people), warnings=warnings)


def _unrostered(student: str) -> dict[str, str]:
    person = dict.fromkeys(ROSTER_COLUMNS, "")
    person.update(student=student, sis_login_id=student, username=student)
    return person


def _feedback(grade: Grade) -> str:
    text = f"{_points(grade.total)}/{_points(grade.max_total)} points ({grade.status})"
    return f"{text}: {grade.reason}" if grade.reason else text


def _points(value: float) -> str:
    return f"{value:g}"


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text.strip())
