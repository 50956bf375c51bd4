"""The glossary (book/glossary.md): every "Introduced in" link lands on a page that uses the term.

Each row of the glossary's tables is ``| 中文 | pinyin | English | {doc}`page` |``. The test reads
the linked page's source (MyST Markdown; no build needed) and looks for the English term in it:
case-insensitively, with simple inflections allowed (``spike`` finds ``spikes``, ``merging`` finds
``merges``), words separated by spaces, line breaks or hyphens, and the page's Chinese glosses in
parentheses ignored (``many-to-one (多对一) map`` contains ``many-to-one map``).

How the English column is read:
- ``a / b``: both ``a`` and ``b`` are terms, and the page must contain each;
- text in parentheses is a remark or an abbreviation, not required: ``recurrent neural network
  (RNN)`` needs ``recurrent neural network``, ``(machine) translation`` needs ``translation``;
- math (``$...$``) is dropped: ``forward variable $\\alpha$`` needs ``forward variable``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
GLOSSARY = BOOK / "glossary.md"

ROW = re.compile(r"^\|(?P<zh>[^|]+)\|(?P<pinyin>[^|]+)\|(?P<english>[^|]+)\|(?P<where>[^|]+)\|\s*$")
DOC_LINK = re.compile(r"\{doc\}`(?:[^`<]*<)?(?P<target>[^`>]+)>?`")
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
SUFFIXES = ("ing", "ies", "es", "ed", "s", "e", "y")


@dataclass(frozen=True)
class Entry:
    chinese: str
    english: str
    target: str  # the {doc} target, relative to book/

    @property
    def terms(self) -> list[str]:
        """The English terms the page must contain: alternatives split at " / ", remarks in
        parentheses and math removed."""
        text = re.sub(r"\$[^$]*\$", " ", self.english)
        text = re.sub(r"\([^)]*\)", " ", text)
        return [" ".join(part.split()) for part in text.split(" / ") if part.strip()]


def parse_glossary(text: str) -> list[Entry]:
    """Every table row of the glossary that has a {doc} link in its last column."""
    entries = []
    for line in text.splitlines():
        row = ROW.match(line.strip())
        if row is None or set(row["zh"].strip()) <= {"-", " "}:
            continue
        link = DOC_LINK.search(row["where"])
        if link is None:
            continue
        entries.append(Entry(row["zh"].strip(), row["english"].strip(), link["target"].strip()))
    return entries


def page_source(target: str) -> Path | None:
    """The source file of a {doc} target (``rnn/index``), or None if there is none."""
    for suffix in (".md", ".ipynb"):
        path = BOOK / f"{target}{suffix}"
        if path.exists():
            return path
    return None


def searchable(text: str) -> str:
    """Page text as the term search sees it: lower case, without Chinese glosses in parentheses
    (full-width or ASCII), Markdown emphasis or backquotes, whitespace collapsed."""
    def drop_chinese_gloss(match: re.Match) -> str:
        return " " if CJK.search(match.group()) else match.group()

    text = re.sub(r"[（(][^()（）]*[）)]", drop_chinese_gloss, text)
    text = re.sub(r"[*_`]", "", text)
    return " ".join(text.lower().split())


def stem(word: str) -> str:
    """A crude stem: the word without one common English ending (kept at 4 letters or more)."""
    for suffix in SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def term_pattern(term: str) -> re.Pattern:
    """Matches ``term`` with each word inflected (stem + any letters) and any run of spaces or
    hyphens between the words."""
    words = [w for w in re.split(r"[\s\-]+", term.lower()) if w]
    parts = [re.escape(stem(w)) + r"\w*" for w in words]
    return re.compile(r"(?<!\w)" + r"[\s\-]+".join(parts))


def missing_terms(glossary_text: str) -> list[str]:
    """One line for every glossary row whose linked page does not exist or lacks a term."""
    problems = []
    for entry in parse_glossary(glossary_text):
        source = page_source(entry.target)
        if source is None:
            problems.append(f"{entry.chinese}: {{doc}}`{entry.target}` is not a page of the book")
            continue
        text = searchable(source.read_text(encoding="utf-8"))
        for term in entry.terms:
            if not term_pattern(term).search(text):
                problems.append(f"{entry.chinese}: {term!r} does not occur on {entry.target}")
    return problems


def test_glossary_has_its_tables():
    entries = parse_glossary(GLOSSARY.read_text(encoding="utf-8"))
    assert len(entries) >= 100, f"only {len(entries)} glossary rows were parsed"
    assert all(entry.terms for entry in entries)


def test_every_introduced_in_link_lands_on_a_page_with_the_term():
    problems = missing_terms(GLOSSARY.read_text(encoding="utf-8"))
    assert not problems, "glossary links to pages without the term:\n" + "\n".join(problems)


def test_keyword_extraction_is_not_keyword_spotting():
    """关键字提取 is keyword extraction; keyword spotting (关键词检测) is another task."""
    rows = {e.chinese: e.english for e in parse_glossary(GLOSSARY.read_text(encoding="utf-8"))}
    assert rows["关键字提取"] == "keyword extraction"


@pytest.mark.parametrize(
    ("term", "text", "found"),
    [
        ("spikes", "a sharp spike appears", True),
        ("merging", "first merges runs of repeated symbols", True),
        ("many-to-one map", "defines a many-to-one (多对一) map from paths", True),
        ("sequence to sequence", "or sequence-to-sequence models", True),
        ("recurrent neural network", "a recurrent\nneural network", True),
        ("keyword extraction", "keyword spotting (关键字提取)", False),
        ("convolution kernel", "the kernel of a convolution", False),
    ],
)
def test_term_search(term, text, found):
    assert bool(term_pattern(term).search(searchable(text))) is found


def test_a_wrong_link_is_reported():
    wrong = (
        "| 中文 | Pinyin | English | Introduced in |\n| --- | --- | --- | --- |\n"
        "| 卷积 | juǎnjī | convolution | {doc}`ctc/01-alignment` |\n"
        "| 空字符 | kōng zìfú | blank (symbol) | {doc}`no/such-page` |\n"
    )
    assert missing_terms(wrong) == [
        "卷积: 'convolution' does not occur on ctc/01-alignment",
        "空字符: {doc}`no/such-page` is not a page of the book",
    ]
