"""The Chinese edition (中文版): complete catalogues that follow the English text, pages that are
Chinese, the same pages in both editions, Chinese assignment notebooks, and the language switch.

The book's catalogues are ``locales/zh_CN/LC_MESSAGES/book/<page>.po`` (Sphinx's gettext
machinery), the assignments' ``locales/zh_CN/LC_MESSAGES/assignments/<id>.po``
(:mod:`autograder.translation`), the figure labels' ``locales/zh_CN/LC_MESSAGES/figures.po``
(:mod:`solutions.language`).
"""

from __future__ import annotations

import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from _translation import catalogue_problems, cjk_share, message_problems
from babel.messages.pofile import read_po

from autograder import translation
from autograder.checks import ASSIGNMENTS

ROOT = Path(__file__).resolve().parents[1]
LOCALE = ROOT / "locales" / "zh_CN" / "LC_MESSAGES"
CATALOGUES = sorted(LOCALE.rglob("*.po"))
# The share of CJK characters among the letters of a Chinese page's text, formulas and code left
# out. Names (PyTorch, LSTM, Graves), variables and English glosses keep it below 1; an English
# page scores 0.
MIN_CJK_SHARE = 0.6
# Pages Sphinx and Jupyter Book write for themselves, with no text of ours (index.html only
# redirects to book/intro.html).
GENERATED_PAGES = {"genindex.html", "search.html", "py-modindex.html"}
REDIRECT_PAGES = {"index.html"}


def messages(path: Path) -> dict[str, object]:
    with open(path, "rb") as f:
        return {m.id: m for m in read_po(f) if m.id and isinstance(m.id, str)}


# --------------------------------------------------------------------------- the catalogues


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda p: str(p.relative_to(LOCALE)))
def test_every_message_is_translated_and_keeps_formulas_code_and_roles(path):
    problems = catalogue_problems(path)
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems[:20])


def test_there_are_catalogues_for_the_book_the_assignments_and_the_figures():
    names = {str(p.relative_to(LOCALE)) for p in CATALOGUES}
    assert "figures.po" in names
    assert {f"assignments/{a}.po" for a in ASSIGNMENTS} <= names
    assert "book/rnn/01-recurrence.po" in names


def test_the_checker_catches_a_changed_formula_role_or_code():
    english = "See {cite}`graves2006` and {doc}`the forward pass <02-forward>`: $x_t$ and `h`."
    good = "见 {cite}`graves2006` 与 {doc}`前向计算 <02-forward>`：$x_t$ 与 `h`。"
    assert message_problems(english, good) == []
    assert message_problems(english, "") == ["no translation"]
    assert any("formulas" in p for p in message_problems(english, good.replace("$x_t$", "$x$")))
    assert any("roles" in p for p in message_problems(english, good.replace("graves2006", "g")))
    assert any("roles" in p for p in message_problems(english, good.replace("<02-forward>", "")))
    assert any("code" in p for p in message_problems(english, good.replace("`h`", "h")))


def stale_messages(template: Path, catalogue: Path) -> list[str]:
    """The English messages of a page (its gettext template) that its catalogue lacks, and the
    catalogue's messages that the page no longer has."""
    wanted, have = set(messages(template)), set(messages(catalogue))
    return ([f"not in the catalogue: {m[:80]!r}" for m in sorted(wanted - have)]
            + [f"no longer on the page: {m[:80]!r}" for m in sorted(have - wanted)])


def test_catalogues_follow_the_english_pages(book_messages):
    """A paragraph changed in English is missing from the catalogue until it is translated again
    (``make po`` brings it in, empty or marked fuzzy)."""
    templates = sorted(book_messages.rglob("*.pot"))
    assert len(templates) > 30, f"make pot wrote only {len(templates)} templates"
    problems = []
    for template in templates:
        page = template.relative_to(book_messages).with_suffix(".po")
        catalogue = LOCALE / page
        if not catalogue.is_file():
            problems.append(f"{page}: no catalogue (run make po and translate it)")
            continue
        problems += [f"{page}: {p}" for p in stale_messages(template, catalogue)]
    assert not problems, ("the catalogues do not follow the English pages (run `make po`, then "
                          "translate):\n" + "\n".join(problems[:30]))


def test_a_changed_english_paragraph_is_reported(book_messages, tmp_path):
    from babel.messages.pofile import write_po

    template = book_messages / "book" / "rnn" / "01-recurrence.pot"
    with open(template, "rb") as f:
        catalogue = read_po(f)
    paragraph = next(m for m in catalogue if m.id and len(m.id) > 60)
    catalogue.delete(paragraph.id)
    catalogue.add("A new sentence. " + paragraph.id)
    changed = tmp_path / "01-recurrence.pot"
    with open(changed, "wb") as f:
        write_po(f, catalogue)
    found = stale_messages(changed, LOCALE / "book" / "rnn" / "01-recurrence.po")
    assert any("not in the catalogue" in p and "A new sentence" in p for p in found), found
    assert any("no longer on the page" in p for p in found), found


def test_assignment_catalogues_follow_the_student_notebooks():
    for assignment in ASSIGNMENTS:
        for lang in translation.TRANSLATED_LANGUAGES:
            missing = translation.untranslated(assignment, lang)
            assert not missing, f"{assignment} ({lang}): untranslated paragraphs, run " \
                f"`python -m autograder.translation update` and translate: {missing[:3]}"


# --------------------------------------------------------------------------- the notebooks


def test_chinese_notebooks_are_the_english_ones_with_translated_instructions():
    for assignment in ASSIGNMENTS:
        folder = ROOT / "notebooks" / assignment
        english = nbformat.read(folder / f"{assignment}.ipynb", as_version=4)
        twin_path = folder / translation.twin_name(assignment, "zh_CN")
        assert twin_path.is_file(), f"{twin_path} missing (python -m autograder release)"
        twin = nbformat.read(twin_path, as_version=4)
        expected = translation.translate_notebook(
            english, translation.translations(translation.catalogue_path(assignment, "zh_CN")))
        assert [c.source for c in twin.cells] == [c.source for c in expected.cells], (
            f"{twin_path.name} is out of date (python -m autograder release)")
        assert len(twin.cells) == len(english.cells)
        for a, b in zip(english.cells, twin.cells, strict=True):
            assert a.cell_type == b.cell_type
            if a.cell_type == "code":
                assert a.source == b.source
            grading_a, grading_b = a.metadata.get("nbgrader", {}), b.metadata.get("nbgrader", {})
            assert {k: v for k, v in grading_a.items() if k != "checksum"} == {
                k: v for k, v in grading_b.items() if k != "checksum"}
        text = "\n".join(c.source for c in twin.cells if c.cell_type == "markdown")
        assert cjk_share(text) > MIN_CJK_SHARE, f"{twin_path.name} is not mostly Chinese"


def test_translate_notebook_names_the_missing_paragraphs():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("Hello there, reader.")])
    with pytest.raises(translation.MissingTranslation, match="Hello there"):
        translation.translate_notebook(nb, {})
    assert translation.translate_notebook(nb, {"Hello there, reader.": "读者你好。"}
                                          ).cells[0].source == "读者你好。"


def test_paragraphs_keep_displayed_equations_and_fences_whole():
    text = "One.\n\n$$\na\n\nb\n$$\n\n```python\nx = 1\n\ny = 2\n```\n\nTwo\nlines."
    assert translation.paragraphs(text) == [
        "One.", "$$\na\n\nb\n$$", "```python\nx = 1\n\ny = 2\n```", "Two\nlines."]


# --------------------------------------------------------------------------- the Chinese build


class MainText(HTMLParser):
    """The text of a page's article, without formulas, code, cell outputs, scripts and tables
    (whose cells hold names, numbers and, in the glossary, pinyin and the English terms)."""

    SKIP_TAGS = {"script", "style", "pre", "code", "math", "svg", "mjx-container", "table"}
    SKIP_CLASSES = {"math", "cell_output", "highlight", "output", "headerlink", "bibtex",
                    "citation", "cell_input", "toggle-details__summary", "glued"}

    def __init__(self):
        super().__init__()
        self.depth_in_article = 0
        self.skipping: list[str] = []
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = set((attrs.get("class") or "").split())
        if tag == "article" or (self.depth_in_article and tag not in ("br", "img", "hr", "input",
                                                                       "meta", "link", "wbr")):
            self.depth_in_article += 1
        if self.skipping or tag in self.SKIP_TAGS or classes & self.SKIP_CLASSES:
            if tag not in ("br", "img", "hr", "input", "meta", "link", "wbr"):
                self.skipping.append(tag)

    def handle_endtag(self, tag):
        if self.skipping and self.skipping[-1] == tag:
            self.skipping.pop()
        if self.depth_in_article:
            self.depth_in_article -= 1

    def handle_data(self, data):
        if self.depth_in_article and not self.skipping:
            self.parts.append(data)


def main_text(page: Path) -> str:
    parser = MainText()
    parser.feed(page.read_text(encoding="utf-8"))
    text = " ".join(parser.parts)
    return re.sub(r"\\\(.*?\\\)|\\\[.*?\\\]|\$\$.*?\$\$", " ", text, flags=re.DOTALL)


def content_pages(html: Path) -> set[str]:
    return {str(p.relative_to(html)) for p in html.rglob("*.html")
            if p.name not in GENERATED_PAGES and "_static" not in p.parts
            and str(p.relative_to(html)) not in REDIRECT_PAGES}


def test_both_editions_have_the_same_pages(built_book, built_book_zh):
    english, chinese = content_pages(built_book.html), content_pages(built_book_zh.html)
    assert english == chinese, (f"only in English: {sorted(english - chinese)}; "
                                f"only in Chinese: {sorted(chinese - english)}")


def test_every_chinese_page_is_mostly_chinese(built_book, built_book_zh):
    shares = {page: cjk_share(main_text(built_book_zh.html / page))
              for page in sorted(content_pages(built_book_zh.html))}
    low = {page: round(share, 2) for page, share in shares.items() if share < MIN_CJK_SHARE}
    assert not low, f"pages whose text is not mostly Chinese (share of CJK letters): {low}"
    english = cjk_share(main_text(built_book.html / "book" / "rnn" / "02-bptt.html"))
    assert english < 0.1, f"the measure is wrong: the English page scores {english:.2f}"


def test_chinese_build_is_declared_chinese_and_uses_chinese_figures(built_book_zh):
    page = (built_book_zh.html / "book" / "ctc" / "01-alignment.html").read_text(encoding="utf-8")
    assert re.search(r'<html[^>]*lang="zh[-_]CN"', page), "the page does not declare zh-CN"
    drawn = re.findall(r'src="[^"]*_images/([\w.-]+\.svg)"', page)  # book/figures' SVGs
    assert len(drawn) >= 2 and all(name.endswith(".zh_CN.svg") for name in drawn), drawn


def test_chinese_notebook_figures_use_a_cjk_font(built_book_zh):
    """The Chinese build ran its notebooks with COURSE_LANGUAGE=zh_CN: their figures were drawn
    with a CJK font, without a missing-glyph warning."""
    log = built_book_zh.log
    assert "missing from font" not in log and "Glyph" not in log, "a figure lacks glyphs"
    executed = built_book_zh.output / "_build" / "zh" / "_build" / "jupyter_execute"
    outputs = "".join(p.read_text(encoding="utf-8") for p in executed.rglob("*.ipynb"))
    assert "missing from font" not in outputs and "findfont" not in outputs


# --------------------------------------------------------------------------- in the browser


@pytest.mark.parametrize(
    "page", ["book/rnn/02-bptt.html", "book/ctc/index.html", "book/intro.html"])
def test_language_switch_goes_to_the_same_page_and_back(built_site, browser, page):
    from selenium.webdriver.common.by import By

    browser.get((built_site / page).as_uri())
    browser.find_element(By.CSS_SELECTOR, "a.course-language-switch").click()
    assert browser.current_url == (built_site / "zh" / page).as_uri()
    assert browser.execute_script("return document.documentElement.lang").startswith("zh")
    browser.find_element(By.CSS_SELECTOR, "a.course-language-switch").click()
    assert browser.current_url == (built_site / page).as_uri()


def test_math_renders_in_both_editions(built_site, browser):
    from test_book import WAIT_FOR_MATHJAX_JS

    for page in ("book/rnn/02-bptt.html", "zh/book/rnn/02-bptt.html"):
        browser.get((built_site / page).as_uri())
        assert browser.execute_async_script(WAIT_FOR_MATHJAX_JS) == "ok", page
        rendered = browser.execute_script(
            "return document.querySelectorAll('mjx-container').length")
        assert rendered > 10, f"{page}: MathJax rendered no formula"
        errors = browser.execute_script("return document.querySelectorAll('mjx-merror').length")
        assert errors == 0, f"{page}: {errors} formula(s) failed to render"


# --------------------------------------------------------------------------- grading


def solved(notebook: Path, assignment: str) -> nbformat.NotebookNode:
    """``notebook`` with every solution cell replaced by the instructor's answer."""
    source = nbformat.read(ROOT / "autograder" / "source" / assignment / f"{assignment}.ipynb",
                           as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    return nb


@pytest.mark.grading
@pytest.mark.slow
def test_the_chinese_notebook_grades_like_the_english_one(tmp_path):
    """A solved Chinese twin gets full marks; a folder with both notebooks is graded on the one
    changed last, and the reason says so."""
    import csv
    import subprocess
    import sys

    folder = ROOT / "notebooks" / "rnn"
    twin = folder / translation.twin_name("rnn", "zh_CN")
    export = tmp_path / "export"
    (export / "alice").mkdir(parents=True)
    nbformat.write(solved(twin, "rnn"), export / "alice" / twin.name)
    (export / "bob").mkdir()
    shutil.copyfile(folder / "rnn.ipynb", export / "bob" / "rnn.ipynb")
    nbformat.write(solved(twin, "rnn"), export / "bob" / twin.name)
    os.utime(export / "bob" / "rnn.ipynb", (1_000_000_000, 1_000_000_000))
    run = subprocess.run([sys.executable, "-m", "autograder", "grade", "rnn", str(export),
                          "--course-dir", str(tmp_path / "course"), "--no-progress"],
                         capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    with open(tmp_path / "course" / "grades-rnn.csv", encoding="utf-8") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    assert rows["alice"]["total"] == rows["alice"]["max_total"] == "15", rows["alice"]
    assert rows["bob"]["total"] == "15", rows["bob"]
    assert "rnn.ipynb and rnn.zh_CN.ipynb were both submitted: graded 'rnn.zh_CN.ipynb'" in (
        rows["bob"]["reason"])
