"""Feedback that explains the grade and does not reveal the hidden tests.

nbgrader's ``generate_feedback`` renders the autograded notebook as it ran, hidden test code and
tracebacks included. :class:`ExplainGrades` (a preprocessor added to ``GenerateFeedback``) removes
the hidden blocks and the test cells' tracebacks, writes under each graded test cell the verdict of
the trusted re-verification (points and reason), and puts a summary table at the top.
"""

from __future__ import annotations

import html
import json
import os
import re

from nbformat.v4 import new_markdown_cell, new_output
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

HIDDEN_BLOCK = re.compile(r"[ \t]*#+\s*BEGIN HIDDEN TESTS.*?#+\s*END HIDDEN TESTS[^\n]*",
                          re.DOTALL)
HIDDEN_NOTE = "# (hidden tests: not shown)"


def hide_tests(source: str) -> str:
    """``source`` without its hidden test blocks (an unterminated block hides the rest)."""
    source = HIDDEN_BLOCK.sub(HIDDEN_NOTE, source)
    start = re.search(r"#+\s*BEGIN HIDDEN TESTS", source)
    return source if start is None else source[:start.start()] + HIDDEN_NOTE


def _text(value: str) -> str:
    """Untrusted text (reasons quote student exceptions) made safe for a Markdown table cell."""
    return html.escape(value).replace("|", "&#124;").replace("\n", " ")


def verdict(check: dict) -> str:
    mark = "passed" if check["points"] == check["max_points"] else "FAILED"
    line = f"{check['name']}: {check['points']:g} / {check['max_points']:g} points ({mark})"
    return line if not check.get("reason") else f"{line}\n  why: {check['reason']}"


def summary_markdown(result: dict) -> str:
    rows = [
        "## Grade",
        "",
        f"**{result['total']:g} / {result['max_total']:g} points.** Each function is graded by "
        "running it on the hidden cases outside your notebook and comparing with the reference.",
        "",
        "| function | points | why points were lost |",
        "| --- | --- | --- |",
    ]
    for check in result["checks"]:
        rows.append(f"| `{check['name']}` | {check['points']:g} / {check['max_points']:g} | "
                    f"{_text(check.get('reason') or '')} |")
    if result.get("notes"):
        rows += ["", "Notes:", ""] + [f"- {_text(n)}" for n in result["notes"]]
    return "\n".join(rows)


def load_result(results_dir: str, student: str) -> dict | None:
    path = os.path.join(results_dir, f"{student}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


class ExplainGrades(NbGraderPreprocessor):
    """Hide the hidden tests and add the trusted verdict of every graded function."""

    results_dir = Unicode(
        "", help="Folder with one <student>.json per student (written by the grading pipeline)"
    ).tag(config=True)

    def preprocess(self, nb, resources):
        student = resources.get("nbgrader", {}).get("student")
        result = load_result(self.results_dir, student) if self.results_dir and student else None
        by_grade_id = {f"test_{c['name']}": c for c in (result or {}).get("checks", [])}
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            hidden = "HIDDEN TESTS" in cell.source
            cell.source = hide_tests(cell.source)
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if grade_id in by_grade_id or hidden:
                # A traceback quotes the hidden test code: keep only what the student wrote.
                cell.outputs = [o for o in cell.get("outputs", []) if o.output_type != "error"]
            if grade_id in by_grade_id:
                cell.outputs.append(new_output("stream", name="stdout",
                                               text=verdict(by_grade_id[grade_id]) + "\n"))
        if result is not None:
            nb.cells.insert(0, new_markdown_cell(summary_markdown(result)))
        return nb, resources


def standalone_html(student: str, assignment: str, result: dict) -> str:
    """A feedback page for a submission that nbgrader could not render (e.g. not a notebook)."""
    items = "".join(
        f"<tr><td><code>{html.escape(c['name'])}</code></td><td>{c['points']:g} / "
        f"{c['max_points']:g}</td>"
        f"<td>{'passed' if c['points'] == c['max_points'] else 'FAILED'}</td>"
        f"<td>{html.escape(c.get('reason') or '')}</td></tr>"
        for c in result["checks"]
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.get("notes", []))
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(assignment)}: feedback for {html.escape(student)}</title></head>"
        f"<body><h1>{html.escape(assignment)}: {result['total']:g} / {result['max_total']:g} "
        "points</h1>"
        f"<p>{html.escape(result.get('problem') or '')}</p>"
        "<table><tr><th>function</th><th>points</th><th>verdict</th><th>why points were lost</th>"
        f"</tr>{items}"
        f"</table><ul>{notes}</ul></body></html>"
    )
