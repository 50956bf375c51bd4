r"""Feedback that explains the grade and does not reveal the hidden tests.

nbgrader's ``generate_feedback`` renders the autograded notebook as it ran, hidden test code and
tracebacks included. :class:`ExplainGrades` (a preprocessor added to ``GenerateFeedback``) removes
the hidden blocks and the test cells' tracebacks, writes under each graded test cell the verdict of
the trusted re-verification (points and reason), and puts a summary table at the top.

Everything on the page but nbgrader's template came from the student: markdown cells, outputs,
exception messages quoted in reasons, even the student's name. :class:`SanitizedHTMLExporter`
(nbgrader's feedback exporter) therefore passes every rendered page through :func:`sanitize_page`
(the ``nh3`` sanitiser, an allow-list): no scripts, no event handlers, frames, forms, ``<meta>`` or
styles from the notebook, links only to ``http(s)`` addresses and images only as embedded
``data:image/...``.

The one script on a page is ours: MathJax, so that the formulas of the notebook's markdown
(``$...$``, ``$$...$$``) show as formulas. It is the copy the book vendors
(``book/_static/mathjax/tex-svg-full.js``: fonts included, nothing downloaded), inlined, so that
the page alone is the whole feedback and works offline (nbgrader releases feedback as single HTML
files). A Content-Security-Policy lets the browser run only the scripts whose SHA-256 hashes it
lists, ours, and load nothing from anywhere. MathJax reads the students' TeX as math only: the
TeX extensions that write HTML (``\href``, ``\class``, ``\style``, ``\cssId``) or load code
(``\require``) are switched off.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
from functools import cache
from pathlib import Path

import jinja2
import nh3
from nbconvert.exporters import HTMLExporter
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


_BODY_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del",
    "details", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6",
    "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp", "small",
    "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead",
    "tr", "u", "ul", "var",
}
_BODY_ATTRIBUTES = {
    "*": {"class", "id", "title", "lang", "dir"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align"},
    "ol": {"start"},
}
_IMAGE_DATA = re.compile(r"data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]*\Z")
_STYLE_BLOCK = re.compile(r"<style[^>]*>(.*?)</style>", re.DOTALL | re.IGNORECASE)
_BODY_OPEN = re.compile(r"<body([^>]*)>", re.IGNORECASE)
_BODY_CLASS = re.compile(r"""\sclass=["']([\w\s-]*)["']""")


def _allowed_url(tag: str, attribute: str, value: str) -> str | None:
    if attribute == "href":
        lowered = value.strip().lower()
        return value if lowered.startswith(("http://", "https://", "#")) else None
    if attribute == "src":
        return value if _IMAGE_DATA.match(value.strip()) else None
    return value


def sanitize_fragment(fragment: str) -> str:
    """``fragment`` with only the allowed tags, attributes and URLs (see the module docstring)."""
    return nh3.clean(fragment, tags=_BODY_TAGS, clean_content_tags={"script", "style"},
                     attributes=_BODY_ATTRIBUTES, url_schemes={"http", "https", "data"},
                     attribute_filter=_allowed_url, link_rel="noopener noreferrer nofollow")


# Blocks of a page whose text is never typeset (the grade table quotes student exceptions).
NO_MATH_CLASS = "tex2jax_ignore"
# The MathJax the book vendors; MATHJAX_CONFIG runs before it.
MATHJAX = Path(__file__).resolve().parents[1] / "book" / "_static" / "mathjax" / "tex-svg-full.js"
MATHJAX_CONFIG = "window.MathJax = " + json.dumps({
    "tex": {
        "inlineMath": [["$", "$"], ["\\(", "\\)"]],
        "displayMath": [["$$", "$$"], ["\\[", "\\]"]],
        # No TeX that writes HTML (\href, \class, \style, \cssId) or loads code (\require).
        "packages": {"[-]": ["html", "require", "autoload"]},
    },
    "svg": {"fontCache": "global"},
    "options": {"enableMenu": False, "ignoreHtmlClass": NO_MATH_CLASS},
}) + ";"
# Text that MathJax would typeset: $...$, $$...$$, \(...\) or \[...\].
_MATH = re.compile(r"\$|\\\(|\\\[")


@cache
def mathjax_scripts() -> str:
    """The page's MathJax: the configuration and the vendored script, inlined."""
    return (f"<script>{MATHJAX_CONFIG}</script>\n"
            f"<script>{MATHJAX.read_text(encoding='utf-8')}</script>\n")


def _script_hash(source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


@cache
def content_security_policy(math: bool) -> str:
    """Nothing is loaded from anywhere; the only scripts that run are MathJax's (with ``math``)."""
    scripts = (" ".join(_script_hash(s) for s in (MATHJAX_CONFIG, MATHJAX.read_text("utf-8")))
               if math else "'none'")
    return (f"default-src 'none'; script-src {scripts}; style-src 'unsafe-inline'; "
            "img-src data:; font-src data:; base-uri 'none'; form-action 'none'")


def sanitize_page(page: str, title: str = "feedback") -> str:
    """A whole HTML page rebuilt safely: the template's CSS (from the ``<head>``), a new title,
    the sanitised body, and MathJax if the body has math. Nothing before ``<body`` but the CSS is
    kept."""
    opening = _BODY_OPEN.search(page)
    head, body = (page[:opening.start()], page[opening.end():]) if opening else ("", page)
    styles = "\n".join(f"<style>{css}</style>" for css in _STYLE_BLOCK.findall(head))
    body_class = _BODY_CLASS.search(opening.group(1)) if opening else None
    body_attr = f' class="{body_class.group(1)}"' if body_class else ""
    body = re.split(r"</body\s*>", body, flags=re.IGNORECASE)[0] if opening else body
    body = sanitize_fragment(body)
    math = bool(_MATH.search(body))
    policy = html.escape(content_security_policy(math))
    return (f"<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{policy}\">\n"
            f"<title>{html.escape(title)}</title>\n{styles}\n</head>\n<body{body_attr}>\n"
            f"{body}\n{mathjax_scripts() if math else ''}</body>\n</html>\n")


class _CompiledTemplates(jinja2.BytecodeCache):
    """Jinja templates compiled once per process, not once per page: nbgrader makes a new
    exporter (and Jinja environment) for every page, and compiling its templates is a fifth of
    a page's time. A grading server compiles them before it forks (:func:`warm_up`)."""

    def __init__(self):
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


_COMPILED_TEMPLATES = _CompiledTemplates()


class SanitizedHTMLExporter(HTMLExporter):
    """nbconvert's HTML exporter whose pages go through :func:`sanitize_page`."""

    def _create_environment(self):
        environment = super()._create_environment()
        # Keyed by template name and source checksum: an edited template is compiled again.
        environment.bytecode_cache = _COMPILED_TEMPLATES
        return environment

    def from_notebook_node(self, nb, resources=None, **kwargs):
        output, resources = super().from_notebook_node(nb, resources, **kwargs)
        title = (resources or {}).get("nbgrader", {}).get("notebook") or "feedback"
        return sanitize_page(output, str(title)), resources


def warm_up() -> None:
    """Compile the templates of nbgrader's feedback page, configured by nbgrader's own
    ``GenerateFeedback``, by rendering an empty notebook (a grading server does it once, before
    it forks workers)."""
    from nbformat.v4 import new_code_cell, new_notebook
    from nbgrader.converters import GenerateFeedback
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    config = Config()
    config.HTMLExporter.sanitize_html = True
    config = GenerateFeedback(coursedir=CourseDirectory(config=config), config=config).config
    page = new_notebook(cells=[new_code_cell("x = 1"), new_markdown_cell("*x*")])
    resources = {"nbgrader": {"notebook": "warm-up", "score": 0, "max_score": 0, "late_penalty": 0}}
    SanitizedHTMLExporter(config=config).from_notebook_node(page, resources)


# Characters that HTML, Markdown or a table would interpret: as entities they are plain text.
_SPECIAL = set("&<>\"'\\`*_{}[]()#+!|$~:")


def _text(value: str) -> str:
    """Untrusted text (reasons quote student exceptions) made plain text in a Markdown table
    cell: no HTML, no links, no emphasis, no math."""
    return "".join(f"&#{ord(ch)};" if ch in _SPECIAL else " " if ch in "\r\n" else ch
                   for ch in value)


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
        f'<div class="{NO_MATH_CLASS}">',
        "",
        "| function | points | why points were lost |",
        "| --- | --- | --- |",
    ]
    for check in result["checks"]:
        rows.append(f"| `{check['name']}` | {check['points']:g} / {check['max_points']:g} | "
                    f"{_text(check.get('reason') or '')} |")
    if result.get("notes"):
        rows += ["", "Notes:", ""] + [f"- {_text(n)}" for n in result["notes"]]
    return "\n".join([*rows, "", "</div>"])


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
        # Notebook metadata (widget state, a title) would be written into the page as it is.
        nb.metadata = {k: v for k, v in nb.metadata.items() if k in ("kernelspec", "language_info")}
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
    page = (
        f"<body><h1>{html.escape(assignment)}: {result['total']:g} / {result['max_total']:g} "
        "points</h1>"
        f"<p>{html.escape(result.get('problem') or '')}</p>"
        "<table><tr><th>function</th><th>points</th><th>verdict</th><th>why points were lost</th>"
        f"</tr>{items}"
        f"</table><ul>{notes}</ul></body>"
    )
    return sanitize_page(page, f"{assignment}: feedback for {student}")
