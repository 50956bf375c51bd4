"""``export --format canvas|moodle``: the Canvas and Moodle gradebook import files, and the roster.

The expected columns are those the LMSs document and read (see the docstring of
``autograder/exports.py`` for the sources): Canvas's header ``Student, ID, SIS User ID,
SIS Login ID, Section, <assignment>`` and its ``Points Possible`` row; Moodle's free header whose
identifier and grade columns are mapped at import, with ``-`` for "no grade".
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.cli import build_parser, main
from autograder.exports import (
    CANVAS_POINTS_POSSIBLE,
    ExportError,
    Grade,
    grades_from_history,
    read_roster,
    write_lms_csv,
)
from autograder.gradebook import History
from autograder.pipeline import COURSE_ID
from autograder.records import CheckGrade, Result

ROOT = Path(__file__).resolve().parents[1]
BOM = b"\xef\xbb\xbf"
JOSE_NFC, JOSE_NFD = "Jos\u00e9", "Jose\u0301"   # one name, two Unicode spellings

GRADES = [
    Grade("alice", 15, 15, "full marks"),
    Grade("学生甲", 11, 15, "partial", "rnn_backward: dWh differs (max error 0.3)"),
    Grade(JOSE_NFC, 4.5, 15, "partial", "rnn_forward: wrong shape"),
    Grade("bob, jr", 0, 15, "invalid", 'notebook: broken JSON "{"'),
]

CANVAS_ROSTER = f"""student,name,canvas_id,sis_user_id,sis_login_id,section
学生甲,张三,1002,S-2,zhang3,Section 1
{JOSE_NFD},"García, José",1003,S-3,jgarcia,Section 2
carol,Carol King,1004,S-4,cking,Section 1
alice,Alice Liddell,1001,S-1,aliddell,Section 1
"""

MOODLE_ROSTER = f"""Student,Name,Email,ID_Number
alice,Alice Liddell,alice@example.edu,A1
{JOSE_NFD},"García, José",jose@example.edu,A3
carol,Carol King,carol@example.edu,A4
学生甲,张三,zhang3@example.edu,A2
"""


def write(path: Path, text: str, bom: bool = False) -> str:
    path.write_bytes((BOM if bom else b"") + text.encode())
    return str(path)


def read_rows(path: str) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return list(csv.reader(f))


def export(tmp_path, lms, roster_text=None, **options):
    roster = read_roster(write(tmp_path / "roster.csv", roster_text), lms) if roster_text else None
    out = str(tmp_path / f"{lms}.csv")
    result = write_lms_csv(out, lms, GRADES, points_possible=15, title=options.pop("title", "rnn"),
                           roster=roster, **options)
    return result, read_rows(out)


def test_canvas_file_has_canvas_columns_and_the_points_possible_row(tmp_path):
    result, rows = export(tmp_path, "canvas", CANVAS_ROSTER, title="RNN (4242)")
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "RNN (4242)"]
    assert rows[1] == [CANVAS_POINTS_POSSIBLE, "", "", "", "", "15"]
    assert "Points Possible" in rows[1][0]   # what Canvas's importer looks for
    assert rows[2:] == [   # the roster's order; its identities; NFD and NFC José are one student
        ["张三", "1002", "S-2", "zhang3", "Section 1", "11"],
        ["García, José", "1003", "S-3", "jgarcia", "Section 2", "4.5"],
        ["Carol King", "1004", "S-4", "cking", "Section 1", ""],
        ["Alice Liddell", "1001", "S-1", "aliddell", "Section 1", "15"],
    ]
    assert result.rows == 4


def test_roster_gaps_are_warnings_naming_the_students(tmp_path):
    result, rows = export(tmp_path, "canvas", CANVAS_ROSTER)
    assert "bob, jr" not in {row[0] for row in rows}
    left_out, without = result.warnings
    assert "not in the roster" in left_out and "bob, jr" in left_out
    assert "without a graded submission" in without and "carol" in without
    assert "empty grade" in without


def test_missing_zero_gives_roster_students_without_a_submission_zero(tmp_path):
    result, rows = export(tmp_path, "canvas", CANVAS_ROSTER, missing_zero=True)
    assert rows[4][0] == "Carol King" and rows[4][-1] == "0"
    assert "--missing-zero" in result.warnings[1]


def test_canvas_without_roster_uses_the_grader_ids_as_logins_and_says_so(tmp_path):
    result, rows = export(tmp_path, "canvas")
    assert rows[2:] == [   # by student id, code point order
        [JOSE_NFC, "", "", JOSE_NFC, "", "4.5"],
        ["alice", "", "", "alice", "", "15"],
        ["bob, jr", "", "", "bob, jr", "", "0"],
        ["学生甲", "", "", "学生甲", "", "11"],
    ]
    (warning,) = result.warnings
    assert "no --roster" in warning and "SIS Login ID" in warning


def test_moodle_file_has_identifiers_grade_and_feedback_columns(tmp_path):
    result, rows = export(tmp_path, "moodle", MOODLE_ROSTER)
    assert rows[0] == ["Name", "Username", "ID number", "Email address", "rnn", "rnn (Feedback)"]
    assert rows[1] == ["Alice Liddell", "", "A1", "alice@example.edu", "15",
                       "15/15 points (full marks)"]
    assert rows[2][:5] == ["García, José", "", "A3", "jose@example.edu", "4.5"]
    assert rows[3] == ["Carol King", "", "A4", "carol@example.edu", "-", ""]   # "-": no grade
    assert rows[4] == ["张三", "", "A2", "zhang3@example.edu", "11",
                       "11/15 points (partial): rnn_backward: dWh differs (max error 0.3)"]
    assert len(rows) == 5 and "bob, jr" in result.warnings[0]


def test_moodle_without_roster_uses_the_grader_ids_as_usernames_and_says_so(tmp_path):
    result, rows = export(tmp_path, "moodle")
    assert [row[:2] for row in rows[1:]] == [[JOSE_NFC, JOSE_NFC], ["alice", "alice"],
                                             ["bob, jr", "bob, jr"], ["学生甲", "学生甲"]]
    assert rows[3][5] == '0/15 points (invalid): notebook: broken JSON "{"'
    assert "no --roster" in result.warnings[0] and "Username" in result.warnings[0]


@pytest.mark.parametrize("lms", ["canvas", "moodle"])
def test_files_are_utf8_with_a_byte_order_mark_and_quoted(tmp_path, lms):
    export(tmp_path, lms)
    raw = (tmp_path / f"{lms}.csv").read_bytes()
    assert raw.startswith(BOM)   # Excel shows 学生甲 only with it; both LMSs read it
    text = raw[len(BOM):].decode("utf-8")
    assert '"bob, jr"' in text and "学生甲" in text
    if lms == "moodle":
        assert '"0/15 points (invalid): notebook: broken JSON ""{"""' in text


def test_a_roster_with_a_byte_order_mark_and_capitalised_columns_is_read(tmp_path):
    path = write(tmp_path / "roster.csv", MOODLE_ROSTER, bom=True)
    roster = read_roster(path, "moodle")
    assert [entry["student"] for entry in roster] == ["alice", JOSE_NFC, "carol", "学生甲"]
    assert roster[0]["email"] == "alice@example.edu" and roster[0]["line"] == "2"


@pytest.mark.parametrize("lms, text, message", [
    ("canvas", "name,canvas_id\nAlice,1\n", "no 'student' column"),
    ("canvas", "student,name,section\nalice,Alice,1\n",
     "needs at least one of the columns canvas_id, sis_user_id, sis_login_id"),
    ("moodle", "student,canvas_id\nalice,1\n",
     "needs at least one of the columns username, id_number, email"),
    ("canvas", "student,canvas_id\nalice,1\nbob,2\nalice,3\n",
     "line 4: student id 'alice' is also on line 2"),
    ("canvas", f"student,canvas_id\n{JOSE_NFC},1\n{JOSE_NFD},2\n", "is also on line 2"),
    ("canvas", "student,canvas_id\n,1\n", "line 2: empty 'student' cell"),
    ("canvas", "student,canvas_id,sis_user_id\nalice,,\n", "Canvas cannot find them"),
    ("canvas", "student,canvas_id\nalice,u-17\n", "canvas_id 'u-17'"),
    ("moodle", "student,email\nalice,a@x.edu\nbob,\n", "line 3: student 'bob' has an empty email"),
    ("moodle", "student,email\nalice,a@x.edu\nbob,a@x.edu\n", "email 'a@x.edu' is also on line 2"),
    ("canvas", "student,student,canvas_id\na,b,1\n", "student appear more than once"),
    ("canvas", "", "empty file"),
])
def test_a_bad_roster_is_an_error_naming_the_option_and_the_line(tmp_path, lms, text, message):
    path = write(tmp_path / "roster.csv", text)
    with pytest.raises(ExportError) as error:
        read_roster(path, lms)
    assert str(error.value).startswith(f"--roster {path}: ") and message in str(error.value)


def test_a_roster_that_is_missing_or_not_utf8_is_an_error(tmp_path):
    with pytest.raises(ExportError, match="--roster .*: no such file"):
        read_roster(str(tmp_path / "nowhere.csv"), "canvas")
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("student,canvas_id\nJosé,1\n".encode("latin-1"))
    with pytest.raises(ExportError, match="not UTF-8"):
        read_roster(str(latin1), "canvas")


def test_an_unknown_format_is_an_error_naming_the_option(tmp_path):
    with pytest.raises(ExportError, match="--format must be one of csv, canvas, moodle"):
        write_lms_csv(str(tmp_path / "x.csv"), "blackboard", GRADES, 15, "rnn")


def test_grades_are_read_from_the_history_rows(tmp_path):
    result = {"student": "学生甲", "total": 11.0, "max_total": 15.0, "status": "partial",
              "checks": [{"name": "rnn_backward", "points": 0, "max_points": 4,
                          "reason": "dWh differs"}], "notes": ["a cell ran longer than 60 s"]}
    rows = {"学生甲": {"total": 11.0, "max_total": 15.0, "status": "partial",
                       "result": json.dumps(result)}}
    assert grades_from_history(rows) == [
        Grade("学生甲", 11.0, 15.0, "partial",
              "rnn_backward: dWh differs; a cell ran longer than 60 s")]


# The command line, on a course folder whose history is written directly (no grading run).

def _record(history: History, student: str, total: float) -> None:
    result = Result(student, "rnn", [
        CheckGrade("rnn_forward", min(total, 2.0), 2, None if total == 15 else "wrong values"),
        CheckGrade("rnn_backward", total - min(total, 2.0), 13)],
        status="full marks" if total == 15 else "partial")
    history.record("rnn", result, sha256="0" * 64, fingerprint="f" * 64)


@pytest.fixture
def course(tmp_path) -> Path:
    folder = tmp_path / "course"
    folder.mkdir()
    history = History(f"sqlite:///{folder / 'gradebook.db'}", COURSE_ID)
    try:
        _record(history, "alice", 15)
        _record(history, "学生甲", 11)
    finally:
        history.close()
    return folder


def test_export_canvas_through_the_command_line(course, tmp_path):
    roster = write(tmp_path / "roster.csv", CANVAS_ROSTER)
    out = tmp_path / "canvas.csv"
    run = subprocess.run(
        [sys.executable, "-m", "autograder", "export", "rnn", "--format", "canvas",
         "--roster", roster, "--column-title", "RNN (4242)", "--course-dir", str(course),
         "-o", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(out)
    assert "warning: 2 roster student(s) without a graded submission" in run.stderr
    rows = read_rows(str(out))
    assert rows[0][-1] == "RNN (4242)" and rows[1][-1] == "15"   # the rnn checks' points
    assert [row[-1] for row in rows[2:]] == ["11", "", "", "15"]


def test_export_default_is_the_graders_csv_as_before(course, capsys):
    assert main(["export", "rnn", "--course-dir", str(course)]) == 0
    path = capsys.readouterr().out.strip()
    assert path == str(course / "grades-rnn.csv")
    header = read_rows(path)[0]
    assert header[0] == "student" and header[-5:] == ["total", "max_total", "status", "reason",
                                                       "graded_at"]
    assert not Path(path).read_bytes().startswith(BOM)


def test_export_moodle_writes_next_to_the_graders_csv_by_default(course, capsys):
    assert main(["export", "rnn", "--format", "moodle", "--course-dir", str(course)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(course / "grades-rnn-moodle.csv")
    assert "warning: no --roster" in captured.err


def test_export_refuses_a_bad_roster_and_roster_options_on_the_csv_format(course, tmp_path,
                                                                          capsys):
    roster = write(tmp_path / "roster.csv", "name\nAlice\n")
    assert main(["export", "rnn", "--format", "canvas", "--roster", roster,
                 "--course-dir", str(course)]) == 2
    assert f"export: --roster {roster}: no 'student' column" in capsys.readouterr().err
    assert main(["export", "rnn", "--roster", roster, "--course-dir", str(course)]) == 2
    assert "apply to --format canvas or moodle" in capsys.readouterr().err


def test_export_format_choices_are_checked_and_documented(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["export", "rnn", "--format", "blackboard"])
    assert exit_info.value.code == 2
    assert "--format" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["export", "--help"])
    text = capsys.readouterr().out
    for option in ("--format", "--roster", "--missing-zero", "--column-title", "canvas", "moodle"):
        assert option in text
