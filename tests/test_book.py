"""The Jupyter Book: built once per session (``built_book`` in conftest.py), offline, warnings as
errors; then its HTML is checked statically and in a headless Chromium.

The static checks need no browser: every chapter page exists with its math and figures, every
demo notebook ran without errors, no page loads anything from the network, and every internal link
points at an existing file and anchor. The browser test renders pages with the vendored MathJax
and checks what a reader sees. It is skipped when Chromium is missing, unless the environment sets
``REQUIRE_CHROMIUM=1`` (``.ci/run`` does), in which case a missing Chromium is a failure.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

pytestmark = [pytest.mark.book, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ("rnn", "lstm_gru", "convlstm", "ctc")
FRONT_PAGES = ("intro", "setup", "notation", "glossary", "references")
BIB_KEYS = (
    "elman1990", "bengio1994", "pascanu2013", "schuster1997", "hochreiter1997", "gers2000",
    "cho2014", "shi2015", "srivastava2015", "graves2006", "graves2012", "hannun2017", "graves2014",
    "hannun2014", "shi2016crnn", "chung2014",
)


class PageParser(HTMLParser):
    """Collects what the checks need from one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.img_srcs: list[str] = []
        self.script_srcs: list[str] = []
        self.stylesheets: list[str] = []
        self.math_elements = 0
        self.cell_outputs = 0
        self.error_outputs = 0
        self.pasted_values = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        if tag == "a" and attrs.get("href") is not None:
            self.hrefs.append(attrs["href"])
        if tag == "img" and attrs.get("src"):
            self.img_srcs.append(attrs["src"])
        if tag == "script" and attrs.get("src"):
            self.script_srcs.append(attrs["src"])
        if tag == "link" and "stylesheet" in (attrs.get("rel") or "") and attrs.get("href"):
            self.stylesheets.append(attrs["href"])
        if "math" in classes:
            self.math_elements += 1
        if "cell_output" in classes:
            self.cell_outputs += 1
        if "traceback" in classes or ("output" in classes and "error" in classes):
            self.error_outputs += 1
        if "pasted-text" in classes:
            self.pasted_values += 1


@functools.cache
def parse_page(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def source_pages(chapter: str) -> list[Path]:
    """The chapter's pages; an .ipynb beside a .md of the same name is the page's launch twin."""
    folder = ROOT / "book" / chapter
    notebooks = [p for p in folder.glob("*.ipynb") if not p.with_suffix(".md").exists()]
    return sorted([*folder.glob("*.md"), *notebooks])


def is_notebook(source: Path) -> bool:
    """A page that myst-nb executes: an .ipynb, or MyST Markdown with a kernelspec."""
    if source.suffix == ".ipynb":
        return True
    text = source.read_text(encoding="utf-8")
    front_matter = text.split("\n---", 1)[0] if text.startswith("---") else ""
    return "kernelspec" in front_matter


def html_of(book, source: Path) -> Path:
    return book.html / source.relative_to(ROOT).with_suffix(".html")


def is_external(href: str) -> bool:
    return bool(urlsplit(href).scheme) or href.startswith("//")


def link_problem(target: Path, fragment: str) -> str | None:
    """Why a link to ``target#fragment`` is broken, or None if it is not."""
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return f"no file {target}"
    if fragment and target.suffix == ".html" and fragment not in parse_page(target).ids:
        return f"no id {fragment!r} in {target.name}"
    return None


def broken_links(page: Path, hrefs) -> list[str]:
    """The relative links of ``page`` that point at a missing file or anchor."""
    broken = []
    for href in hrefs:
        if is_external(href) or href.startswith(("mailto:", "javascript:")) or href in ("", "#"):
            continue
        parts = urlsplit(href)
        target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
        problem = link_problem(target, unquote(parts.fragment))
        if problem:
            broken.append(f"{href} ({problem})")
    return broken


# --------------------------------------------------------------------------- static checks


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_pages_are_built_with_math_and_figures(built_book, chapter):
    sources = source_pages(chapter)
    assert (ROOT / "book" / chapter / "index.md") in sources, f"book/{chapter}/index.md is missing"
    assert any(s.stem[:2].isdigit() for s in sources), f"book/{chapter} has no numbered pages"
    math_pages, images = 0, []
    for source in sources:
        page = html_of(built_book, source)
        assert page.is_file(), f"{source.relative_to(ROOT)} was not built into {page}"
        parsed = parse_page(page)
        html = page.read_text(encoding="utf-8")
        # a figure that reached the page as its text repr instead of an image
        assert "&lt;Figure size" not in html, f"{page.name}: a figure is shown as text"
        text = source.read_text(encoding="utf-8")
        if "$$" in text or "{math}" in text:
            assert parsed.math_elements > 0, f"{page.name}: the source has math, the HTML has none"
        math_pages += parsed.math_elements > 0
        images += [(page, src) for src in parsed.img_srcs if src.endswith((".png", ".svg"))]
    assert math_pages >= 2, f"chapter {chapter}: math on only {math_pages} pages"
    generated = [(p, s) for p, s in images if "_images/" in s]
    assert generated, f"chapter {chapter}: no generated figure (<img> of a PNG/SVG) on any page"
    for page, src in generated:
        image = (page.parent / src).resolve()
        assert image.is_file() and image.stat().st_size > 1000, f"{page.name}: empty figure {src}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_demo_notebooks_ran_without_errors(built_book, chapter):
    notebooks = [s for s in source_pages(chapter) if is_notebook(s)]
    assert notebooks, f"chapter {chapter} has no demo notebook"
    for source in notebooks:
        executed = built_book.output / "_build" / "jupyter_execute" / source.relative_to(ROOT)
        executed = executed.with_suffix(".ipynb")
        assert executed.is_file(), f"{source.name} was not executed ({executed} missing)"
        cells = [c for c in json.loads(executed.read_text())["cells"] if c["cell_type"] == "code"]
        assert cells, f"{source.name}: no code cells"
        for cell in cells:
            assert cell["execution_count"] is not None, f"{source.name}: a cell did not run"
            kinds = {out["output_type"] for out in cell["outputs"]}
            assert "error" not in kinds, f"{source.name}: a cell raised an error"
        parsed = parse_page(html_of(built_book, source))
        # An exercises page shows its results only as values glued into its answers.
        assert parsed.cell_outputs + parsed.pasted_values > 0, f"{source.name}: no results shown"
        assert parsed.error_outputs == 0, source.name
        ipynb = "_sources/" + source.relative_to(ROOT).with_suffix(".ipynb").as_posix()
        assert any(h.endswith(ipynb) for h in parsed.hrefs), f"{source.name}: no .ipynb download"


def test_launch_buttons_open_the_ipynb_twin_of_each_demo_page(built_book):
    for chapter in CHAPTERS:
        for source in (s for s in source_pages(chapter) if is_notebook(s)):
            twin = source.with_suffix(".ipynb")
            assert twin.is_file(), f"{twin.name} is missing: run python book/notebooks.py"
            hrefs = parse_page(html_of(built_book, source)).hrefs
            path = twin.relative_to(ROOT).as_posix()
            for service in ("https://colab.research.google.com/github/", "https://mybinder.org/v2/"):
                links = [h for h in hrefs if h.startswith(service)]
                assert links, f"{source.name}: no launch button for {service}"
                assert all(h.endswith(path) for h in links), (source.name, links)


def test_front_pages_and_bibliography(built_book):
    for name in FRONT_PAGES:
        assert (built_book.html / "book" / f"{name}.html").is_file(), name
    bib = (ROOT / "book" / "references.bib").read_text(encoding="utf-8")
    keys = set(re.findall(r"@\w+\{([^,\s]+),", bib))
    assert set(BIB_KEYS) <= keys, f"missing bibtex keys: {sorted(set(BIB_KEYS) - keys)}"
    references = (built_book.html / "book" / "references.html").read_text(encoding="utf-8")
    for title in ("Finding structure in time", "Long short-term memory",
                  "Connectionist temporal classification", "Sequence modeling with"):
        # the bibliography style may change the case of titles
        assert title.lower() in references.lower(), f"{title!r} is not in the bibliography"


def test_math_uses_the_vendored_mathjax_and_nothing_loads_from_the_network(built_book):
    mathjax = built_book.html / "_static" / "mathjax" / "tex-svg-full.js"
    assert mathjax.is_file() and mathjax.stat().st_size > 1_000_000
    pages = sorted(built_book.html.rglob("*.html"))
    assert len(pages) > 20
    for page in pages:
        parsed = parse_page(page)
        remote = [s for s in parsed.script_srcs + parsed.stylesheets if is_external(s)]
        assert not remote, f"{page.relative_to(built_book.html)} loads {remote}"
        if parsed.math_elements:
            local = [s for s in parsed.script_srcs if "_static/mathjax/tex-svg-full.js" in s]
            assert local, f"{page.name} has math but does not load the vendored MathJax"


def test_no_internal_link_is_broken(built_book):
    problems = []
    for page in sorted(built_book.html.rglob("*.html")):
        for link in broken_links(page, parse_page(page).hrefs):
            problems.append(f"{page.relative_to(built_book.html)}: {link}")
    assert not problems, "broken internal links:\n" + "\n".join(problems[:50])


def test_cached_rebuild_executes_no_notebook(built_book, book_builder, tmp_path):
    """A rebuild that finds the execution cache executes no notebook (execute_notebooks: cache)."""
    cache = built_book.output / "_build" / ".jupyter_cache"
    assert cache.is_dir(), "the cold build left no execution cache"
    shutil.copytree(cache, tmp_path / "_build" / ".jupyter_cache")
    rebuilt = book_builder(tmp_path)
    assert "Executing notebook" not in rebuilt.log, "a notebook was executed despite the cache"
    # Time is reported, not asserted: a test must not depend on the machine's speed.
    print(f"cold build {built_book.seconds:.0f} s, cached rebuild {rebuilt.seconds:.0f} s")


# --------------------------------------------------------------------------- in the browser


@pytest.fixture(scope="module")
def served_book(built_book):
    """The built HTML served over HTTP on 127.0.0.1 (an ephemeral port)."""
    handler = functools.partial(QuietHandler, directory=str(built_book.html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's signature)
        pass


# Console messages that are not failures of the book: the browser's automatic favicon request;
# sphinx-thebe (loaded by jupyter-book, unused here: launch_buttons.thebe is false) declares its
# THEBE_JS_URL constant in two inline scripts; the pydata theme reports an unset colour mode on a
# fresh profile.
KNOWN_CONSOLE_NOISE = ("favicon.ico", "'THEBE_JS_URL' has already been declared",
                       "Got invalid theme mode")

# Prose as the reader sees it: code, outputs and the MathJax output itself are left out, so raw
# TeX in a code listing is not mistaken for unrendered math.
VISIBLE_PROSE_JS = """
const main = document.querySelector('main') || document.body;
const copy = main.cloneNode(true);
copy.querySelectorAll('pre, code, .highlight, .cell_output, mjx-container, script, style')
    .forEach(e => e.remove());
return copy.innerText;
"""
# Sphinx loads MathJax only on pages with math; on the others there is nothing to wait for.
WAIT_FOR_MATHJAX_JS = """
const done = arguments[arguments.length - 1];
const start = Date.now();
if (!document.querySelector('script[src*="mathjax"]')) { done('ok'); return; }
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


def browser_pages() -> list[str]:
    pages = [f"book/{name}.html" for name in ("intro", "notation", "glossary", "references")]
    for chapter in CHAPTERS:
        pages += [str(s.relative_to(ROOT).with_suffix(".html")) for s in source_pages(chapter)]
    return pages


def test_pages_render_math_and_links_in_chromium(built_book, served_book, browser):
    failures = []
    for rel in browser_pages():
        browser.get(urljoin(served_book, rel))
        status = browser.execute_async_script(WAIT_FOR_MATHJAX_JS)
        if status != "ok":
            failures.append(f"{rel}: {status}")
            continue
        counts = browser.execute_script("""
            const math = document.querySelectorAll('.math');
            return {
              math: math.length,
              rendered: [...math].filter(e => e.querySelector('mjx-container')).length,
              errors: document.querySelectorAll('[data-mml-node="merror"], mjx-merror').length,
            };""")
        if counts["rendered"] != counts["math"]:
            failures.append(f"{rel}: {counts['math'] - counts['rendered']} math elements "
                            f"not rendered by MathJax")
        if counts["errors"]:
            failures.append(f"{rel}: {counts['errors']} TeX errors")
        prose = browser.execute_script(VISIBLE_PROSE_JS)
        for raw in ("$$", "\\frac", "\\begin{", "\\(", "\\["):
            if raw in prose:
                at = prose.index(raw)
                failures.append(f"{rel}: raw {raw!r} in the text: ...{prose[at - 40:at + 40]}...")
        resources = browser.execute_script(
            "return performance.getEntriesByType('resource').map(r => r.name);")
        remote = [r for r in resources if not r.startswith(served_book)]
        if remote:
            failures.append(f"{rel}: requested from the network: {remote[:3]}")
        console = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"
                   and not any(noise in e["message"] for noise in KNOWN_CONSOLE_NOISE)]
        if console:
            failures.append(f"{rel}: console errors: {console[:3]}")
        # a.href is the absolute URL the browser resolved; map the local ones back to files. The
        # language switch leads to the other edition, which only the assembled site has
        # (tests/test_translation.py follows it there).
        hrefs = browser.execute_script(
            "return [...document.querySelectorAll('a[href]:not(.course-language-switch)')]"
            ".map(a => a.href);")
        for href in hrefs:
            if not href.startswith(served_book):
                continue
            parts = urlsplit(href)
            problem = link_problem(built_book.html / unquote(parts.path).lstrip("/"),
                                   unquote(parts.fragment))
            if problem:
                failures.append(f"{rel}: broken link {href} ({problem})")
    assert not failures, "\n".join(failures)


def test_browser_sees_a_rendered_equation(built_book, served_book, browser):
    """One concrete equation: the RNN recurrence on the RNN chapter's first page is an SVG."""
    browser.get(urljoin(served_book, "book/rnn/01-recurrence.html"))
    assert browser.execute_async_script(WAIT_FOR_MATHJAX_JS) == "ok"
    time.sleep(0.2)
    svg_count = browser.execute_script(
        "return document.querySelectorAll('.math mjx-container svg').length;")
    assert svg_count > 5


# A phone in portrait: the window width at which the equations used to be cut off.
NARROW_WINDOW = (420, 900)
# What a reader of a narrow window cannot see: for every displayed equation, the part of its box
# outside the viewport or cut off by an ancestor that hides overflow (a box that scrolls is fine:
# the reader can scroll it), whether it is too wide for its box without being able to scroll,
# and whether its equation number covers it or sits beside it while it is clipped (the number
# then marks the cut as the equation's end); for every code cell's input, whether it scrolls
# sideways. Lengths in CSS pixels; 1 px of slack for rounding.
NARROW_LAYOUT_JS = """
const viewport = document.documentElement.clientWidth;
const problems = [];
const scrolls = s => s === 'auto' || s === 'scroll';
function describe(el) {
  const math = el.closest('div.math');
  return (math && math.id ? '#' + math.id : el.tagName.toLowerCase()) + ' '
    + (el.textContent || '').trim().slice(0, 40);
}
for (const eq of document.querySelectorAll('div.math > mjx-container[display="true"]')) {
  const box = eq.getBoundingClientRect();
  if (box.width === 0) continue;  // inside a collapsed dropdown
  if (box.left < -1 || box.right > viewport + 1) {
    problems.push(`${describe(eq)}: spans ${box.left.toFixed(0)}..${box.right.toFixed(0)} px `
                  + `of a ${viewport} px viewport`);
  }
  for (let a = eq.parentElement; a && a !== document.body; a = a.parentElement) {
    const style = getComputedStyle(a);
    if (style.overflowX === 'visible') continue;
    const clip = a.getBoundingClientRect();
    if (box.right > clip.right + 1 || box.left < clip.left - 1) {
      problems.push(`${describe(eq)}: cut off by a ${a.tagName.toLowerCase()}.${a.className} `
                    + `that ends at ${clip.right.toFixed(0)} px (equation ends at `
                    + `${box.right.toFixed(0)} px)`);
      break;
    }
  }
  if (eq.scrollWidth > eq.clientWidth + 1 && !scrolls(getComputedStyle(eq).overflowX)) {
    problems.push(`${describe(eq)}: ${eq.scrollWidth} px wide in a ${eq.clientWidth} px box `
                  + `that does not scroll`);
  }
  const number = eq.parentElement.querySelector(':scope > span.eqno');
  if (number) {
    const n = number.getBoundingClientRect();
    const sameRow = n.top < box.bottom - 1 && n.bottom > box.top + 1;
    const covers = sameRow && n.left < box.right - 1 && n.right > box.left + 1;
    const besideTheCut = sameRow && eq.scrollWidth > eq.clientWidth + 1;
    if (n.right > viewport + 1 || covers || besideTheCut) {
      problems.push(`${describe(eq)}: equation number at ${n.left.toFixed(0)}..`
                    + `${n.right.toFixed(0)} px ${covers ? 'covers' : 'sits beside'} the `
                    + `${besideTheCut ? 'clipped ' : ''}equation at `
                    + `${box.left.toFixed(0)}..${box.right.toFixed(0)} px`);
    }
  }
}
for (const pre of document.querySelectorAll('div.cell_input pre')) {
  if (pre.getBoundingClientRect().width === 0) continue;  // folded (hide-input)
  if (pre.scrollWidth > pre.clientWidth + 1) {
    problems.push(`code cell "${pre.textContent.trim().slice(0, 40)}": ${pre.scrollWidth} px `
                  + `of code in a ${pre.clientWidth} px box scrolls sideways`);
  }
}
return {viewport: viewport, problems: problems};
"""


def test_narrow_window_shows_whole_equations_and_code(built_book, served_book, browser):
    """At 420 px, every displayed equation fits on the screen or scrolls in its own box, its
    number does not cover it, and code wraps instead of scrolling sideways."""
    browser.set_window_size(*NARROW_WINDOW)
    try:
        failures = []
        for rel in browser_pages():
            browser.get(urljoin(served_book, rel))
            assert browser.execute_async_script(WAIT_FOR_MATHJAX_JS) == "ok", rel
            layout = browser.execute_script(NARROW_LAYOUT_JS)
            assert layout["viewport"] <= NARROW_WINDOW[0], layout["viewport"]
            failures += [f"{rel}: {problem}" for problem in layout["problems"]]
    finally:
        browser.set_window_size(1280, 1024)
    assert not failures, f"{len(failures)} layout problems at {NARROW_WINDOW[0]} px:\n" + "\n".join(
        failures[:40])
