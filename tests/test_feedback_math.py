r"""Math in the feedback pages: rendered by the vendored MathJax, and nothing else runs.

Specification in short: a feedback page whose markdown has math (``$\alpha$``, ``$$\sum_t x_t$$``)
carries the book's vendored MathJax inlined (no network, no file beside it), a
Content-Security-Policy that lets only that script run, and none of the scripts a student wrote;
TeX that would write HTML (``\href``) is not available to students; the grade table, which quotes
student exceptions, is never typeset. In headless Chromium (``chromium`` and
``/usr/bin/chromedriver``; skipped without them unless ``REQUIRE_CHROMIUM=1``) the page, opened
from disk with no server, shows the formulas as MathJax output.
"""

from __future__ import annotations

import base64
import hashlib
import html.parser

import nbformat
import pytest

from autograder.feedback import (
    MATHJAX,
    NO_MATH_CLASS,
    SanitizedHTMLExporter,
    mathjax_scripts,
    sanitize_page,
    summary_markdown,
)

MATH_MARKDOWN = r"""## My derivation

The learning rate is $\alpha$, and the loss sums over time:

$$\sum_t x_t$$

A link in TeX would be HTML: $\href{javascript:alert('tex')}{click}$.

<script>alert('markdown')</script>
<img src="x" onerror="alert('img')">
"""

RESULT = {"total": 1, "max_total": 3, "notes": [],
          "checks": [{"name": "scale", "points": 1, "max_points": 1, "reason": None},
                     {"name": "shift", "points": 0, "max_points": 2,
                      "reason": "raised ValueError: expected $x_t$ <script>alert('reason')"}]}


class _Scripts(html.parser.HTMLParser):
    """The scripts of a page (their attributes and text) and its meta http-equiv values."""

    def __init__(self):
        super().__init__()
        self.scripts: list[tuple[dict, str]] = []
        self.policies: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.scripts.append((attrs, ""))
            self._in_script = True
        if tag == "meta" and (attrs.get("http-equiv") or "").lower() == "content-security-policy":
            self.policies.append(attrs.get("content") or "")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)


def parse(page: str) -> _Scripts:
    parser = _Scripts()
    parser.feed(page)
    return parser


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _directives(policy: str) -> dict[str, list[str]]:
    return {name: values for name, *values in (d.split() for d in policy.split(";") if d.strip())}


@pytest.fixture(scope="module")
def page() -> str:
    """The feedback page of a notebook with math and hostile markdown, as nbgrader renders it."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(summary_markdown(RESULT)),
                nbformat.v4.new_markdown_cell(MATH_MARKDOWN),
                nbformat.v4.new_code_cell("price = '$5'  # a dollar in code is not math")]
    output, _ = SanitizedHTMLExporter().from_notebook_node(nb, {"nbgrader": {"notebook": "scale"}})
    return output


def test_page_with_math_inlines_the_vendored_mathjax_and_loads_nothing(page):
    scripts = parse(page).scripts
    assert len(scripts) == 2, "the configuration and MathJax, nothing else"
    assert all(attrs == {} for attrs, _ in scripts), "inline: no src, nothing to fetch"
    assert scripts[1][1] == MATHJAX.read_text(encoding="utf-8")
    assert "window.MathJax" in scripts[0][1]
    assert "http://" not in scripts[0][1] and "https://" not in scripts[0][1]


def test_content_security_policy_allows_exactly_the_pages_own_scripts(page):
    parsed = parse(page)
    (policy,) = parsed.policies
    directives = _directives(policy)
    assert directives["default-src"] == ["'none'"]
    assert sorted(directives["script-src"]) == sorted(_sha256(text) for _, text in parsed.scripts)
    assert "'unsafe-inline'" not in directives["script-src"]
    # The policy comes before anything the browser would run.
    assert page.index("Content-Security-Policy") < page.index("<script")


def test_students_scripts_are_not_on_the_page(page):
    student_part = page.replace(mathjax_scripts(), "")
    assert "alert('markdown')" not in student_part and "onerror" not in student_part
    assert "<script>alert('reason')" not in student_part  # quoted as text: &lt;script&gt;
    assert r"$\alpha$" in page and r"\sum_t x_t" in page
    # The grade table quotes student text: it sits in a block MathJax skips.
    table = page.split("why points were lost", 1)[0].rsplit("<div", 1)[1]
    assert f'class="{NO_MATH_CLASS}"' in table


def test_page_without_math_has_no_script_at_all():
    result = {**RESULT, "checks": [{"name": "scale", "points": 0, "max_points": 1,
                                    "reason": "not a notebook"}]}
    page = sanitize_page(f"<body><p>{result['checks'][0]['reason']}</p></body>", "scale")
    parsed = parse(page)
    assert parsed.scripts == []
    (policy,) = parsed.policies
    assert _directives(policy)["script-src"] == ["'none'"]


# ------------------------------------------------------------------------------------------------
# In a browser, from disk

WAIT_FOR_MATHJAX_JS = """
const done = arguments[arguments.length - 1];
const start = Date.now();
(function poll() {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    MathJax.startup.promise.then(() => done('ok'), e => done('error: ' + e));
  } else if (Date.now() - start > 30000) {
    done('MathJax did not start');
  } else {
    setTimeout(poll, 50);
  }
})();
"""


def test_math_is_rendered_offline_from_the_page_alone(page, browser, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    path = tmp_path / "scale.html"
    path.write_text(page, encoding="utf-8")
    browser.get(path.as_uri())
    assert browser.execute_async_script(WAIT_FOR_MATHJAX_JS) == "ok"
    rendered = browser.find_elements(By.CSS_SELECTOR, "mjx-container")
    assert len(rendered) >= 2, "inline and display math"
    assert browser.find_elements(By.CSS_SELECTOR, "mjx-container[display='true']")
    # \href is not available: no link comes out of the student's TeX.
    links = browser.execute_script(
        "return [...document.querySelectorAll('mjx-container a, mjx-container [href]')]"
        ".map(e => e.getAttribute('href') || e.getAttribute('xlink:href'))")
    assert links == []
    # The grade table and the code are shown as written.
    assert browser.find_elements(By.CSS_SELECTOR, f".{NO_MATH_CLASS} mjx-container") == []
    assert browser.find_elements(By.CSS_SELECTOR, "pre mjx-container") == []
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 -- raises when no script raised an alert
    errors = [entry["message"] for entry in browser.get_log("browser")
              if entry["level"] == "SEVERE" and "favicon.ico" not in entry["message"]]
    assert errors == []
