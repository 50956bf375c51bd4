"""The figures of the Chinese edition: every label of the code has a translation, and the figures
drawn with ``COURSE_LANGUAGE=zh_CN`` show Chinese text in a font that has its glyphs.

``solutions.language.tr`` translates a label from ``locales/zh_CN/LC_MESSAGES/figures.po``; the
labels of the code are the string literals passed to ``tr`` (``tests/_figure_labels.py`` finds
them in ``solutions/``, ``book/figures/`` and the code cells of ``book/*/*.md``).
"""

from __future__ import annotations

import io
import logging
import os
import re
import string
import sys
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib
import pytest
from _figure_labels import all_tr_calls, msgids
from babel.messages.pofile import read_po
from matplotlib import font_manager

from solutions import language
from solutions.language import tr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book"))
import figures  # noqa: E402 (book/figures, on the path above)

CATALOGUE = language.catalogue_path("zh_CN")
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
SVG_TEXT = "{http://www.w3.org/2000/svg}text"
# matplotlib's complaints about a character that the font lacks: a warning for plain text, a log
# record for the text around $...$ (mathtext)
MISSING_GLYPH = re.compile(r"missing from font|does not have a glyph")
# English term -> its Chinese term in the Chinese glossary (the term the Chinese edition's text
# uses, locales/zh_CN/LC_MESSAGES/book/glossary.po): a label with the term uses the term
GLOSSARY_TERMS = {
    "gradient": "梯度",
    "loss": "损失",
    "perplexity": "困惑度",
    "time step": "时间步",
    "forget gate": "遗忘门",
    "input gate": "输入门",
    "output gate": "输出门",
    "encoder": "编码器",
    "decoder": "解码器",
    "peephole": "窥视孔",
    "elementwise": "逐元素",
    "blank": "空白符",
    "hidden state": "隐状态",
    "greedy decoding": "贪心解码",
    "beam width": "束宽",
    "mean squared error": "均方误差",
    "character error rate": "字符错误率",
    "sequence accuracy": "序列准确率",
}


def clear_language_caches():
    language.catalogue.cache_clear()
    language.cjk_font.cache_clear()


def require_cjk_font() -> None:
    """Skip where no CJK font is installed (README: fonts-noto-cjk), unless REQUIRE_CJK_FONT=1."""
    try:
        language.cjk_font()
    except RuntimeError as error:
        if os.environ.get("REQUIRE_CJK_FONT") == "1":
            pytest.fail(f"{error}; REQUIRE_CJK_FONT=1 makes this a failure")
        pytest.skip(str(error))


@pytest.fixture
def chinese(monkeypatch):
    """COURSE_LANGUAGE=zh_CN for one test; matplotlib's settings are restored after it."""
    monkeypatch.setenv("COURSE_LANGUAGE", "zh_CN")
    clear_language_caches()
    require_cjk_font()
    with matplotlib.rc_context():
        yield
    clear_language_caches()


class RecordMatplotlibLog(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def format_fields(text: str) -> set[str]:
    """The ``{fields}`` of ``text`` as a ``str.format`` template; its braces if it is not one
    (LaTeX such as ``e^{-x}``)."""
    try:
        return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
    except ValueError:
        return set(re.findall(r"\{[^{}]*\}", text))


# --------------------------------------------------------------------------- the catalogue


def test_every_tr_call_passes_a_literal_label():
    """Only a literal can be checked against the catalogue without running the code."""
    computed = [call.where for call in all_tr_calls() if call.label is None]
    assert not computed, f"tr(...) with a computed label (use a literal): {computed}"


def test_catalogue_is_valid_gettext_for_zh_cn():
    with open(CATALOGUE, "rb") as f:
        catalogue = read_po(f)
    assert (catalogue.locale.language, catalogue.locale.territory) == ("zh", "CN")
    header = CATALOGUE.read_text(encoding="utf-8")
    assert '"Language: zh_CN\\n"' in header
    assert '"Content-Type: text/plain; charset=UTF-8\\n"' in header


def test_every_label_of_the_code_has_a_translation_and_none_is_unused():
    with open(CATALOGUE, "rb") as f:
        entries = {m.id: m for m in read_po(f) if m.id}
    used = msgids()
    missing = sorted(used - set(entries))
    assert not missing, f"labels missing from {CATALOGUE}: {missing}"
    unused = sorted(set(entries) - used)
    assert not unused, f"entries of {CATALOGUE} that no tr(...) uses: {unused}"
    untranslated = sorted(m.id for m in entries.values() if not m.string or m.fuzzy)
    assert not untranslated, f"empty or fuzzy translations in {CATALOGUE}: {untranslated}"


def test_translations_keep_the_format_fields_and_are_chinese():
    for msgid, msgstr in language.catalogue("zh_CN").items():
        assert format_fields(msgstr) == format_fields(msgid), (
            f"{msgid!r} -> {msgstr!r}: the {{fields}} differ, so .format() would fail")
        assert CJK.search(msgstr), f"{msgid!r} -> {msgstr!r} has no Chinese"


def test_translations_use_the_glossary_terms():
    glossary = (ROOT / "locales" / "zh_CN" / "LC_MESSAGES" / "book" / "glossary.po").read_text(
        encoding="utf-8")
    for english, chinese in GLOSSARY_TERMS.items():
        assert chinese in glossary, f"{chinese} ({english}) is not a term of the Chinese glossary"
    for msgid, msgstr in language.catalogue("zh_CN").items():
        for english, chinese in GLOSSARY_TERMS.items():
            if re.search(rf"\b{english}\b", msgid, re.IGNORECASE):
                assert chinese in msgstr, f"{msgid!r} -> {msgstr!r}: {english} is {chinese}"


# --------------------------------------------------------------------------- tr and its errors


def test_tr_returns_the_text_unchanged_in_english(monkeypatch):
    monkeypatch.delenv("COURSE_LANGUAGE", raising=False)
    assert tr("no such label, anywhere") == "no such label, anywhere"
    monkeypatch.setenv("COURSE_LANGUAGE", "en")
    assert tr("time step $t$") == "time step $t$"


def test_tr_translates_a_label_in_chinese(chinese):
    assert tr("time step $t$") == "时间步 $t$"
    assert tr("label {k}").format(k=3) == "标签 3"


def test_tr_names_the_catalogue_for_an_unknown_label_in_chinese(chinese):
    with pytest.raises(KeyError, match=re.escape(str(CATALOGUE))):
        tr("no such label, anywhere")


def test_without_a_cjk_font_chinese_labels_stop_with_the_install_hint(monkeypatch):
    monkeypatch.setenv("COURSE_LANGUAGE", "zh_CN")
    monkeypatch.setattr(language, "CJK_FONTS", ("No Such CJK Font",))
    clear_language_caches()
    try:
        with pytest.raises(RuntimeError, match="fonts-noto-cjk"):
            language.tr("time step")
    finally:
        clear_language_caches()


def test_an_unknown_language_is_an_error_naming_course_language(monkeypatch):
    monkeypatch.setenv("COURSE_LANGUAGE", "fr")
    with pytest.raises(ValueError, match="COURSE_LANGUAGE"):
        tr("time step $t$")


# --------------------------------------------------------------------------- fonts and figures


def test_the_cjk_font_matplotlib_finds_has_every_glyph_of_the_catalogue(chinese):
    path = font_manager.findfont(font_manager.FontProperties(family=language.cjk_font()),
                                 fallback_to_default=False)
    font = font_manager.get_font(path)
    chinese_characters = set(CJK.findall("".join(language.catalogue("zh_CN").values())))
    assert "时" in chinese_characters
    lacking = sorted(c for c in chinese_characters if font.get_char_index(ord(c)) == 0)
    assert not lacking, f"{path} has no glyph for {lacking}"


@pytest.fixture(scope="module")
def written_in_chinese(tmp_path_factory):
    """``figures.write_all`` run with COURSE_LANGUAGE=zh_CN, and what matplotlib complained of."""
    folder = tmp_path_factory.mktemp("figures-zh")
    log = RecordMatplotlibLog()
    logging.getLogger("matplotlib").addHandler(log)
    try:
        with pytest.MonkeyPatch.context() as monkeypatch, matplotlib.rc_context():
            monkeypatch.setenv("COURSE_LANGUAGE", "zh_CN")
            clear_language_caches()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                figures.write_all(folder)
    finally:
        logging.getLogger("matplotlib").removeHandler(log)
        clear_language_caches()
    complaints = [str(w.message) for w in caught] + log.messages
    return folder, [c for c in complaints if MISSING_GLYPH.search(c)]


def svg_text(path: Path) -> str:
    return " ".join("".join(node.itertext()) for node in ET.parse(path).iter(SVG_TEXT))


def test_drawing_in_chinese_finds_a_glyph_for_every_character(written_in_chinese):
    _, missing_glyphs = written_in_chinese
    assert not missing_glyphs, missing_glyphs[:5]


@pytest.mark.parametrize("spec", figures.FIGURES, ids=lambda spec: spec.name)
def test_each_figure_has_a_chinese_svg_beside_the_english_one(written_in_chinese, spec):
    folder, _ = written_in_chinese
    chinese_text = svg_text(folder / f"{spec.name}.zh_CN.svg")
    english_text = svg_text(folder / f"{spec.name}.svg")
    assert CJK.search(chinese_text), f"{spec.name}.zh_CN.svg has no Chinese text"
    assert not CJK.search(english_text), f"{spec.name}.svg is not English"
    english_labels = [m for m in msgids() if " " in m.strip() and not format_fields(m)]
    left = [m for m in english_labels if m in chinese_text]
    assert not left, f"{spec.name}.zh_CN.svg still shows {left}"


def test_training_plots_are_labelled_in_chinese(chinese):
    from solutions.train import adding, ocr

    metrics = [{"model": "lstm", "step": s, "loss": 1.0 / s} for s in (1, 2, 3)]
    metrics += [{"model": "lstm", "step": 3, "eval": True, "mse": 0.2, "seq_acc_greedy": 0.5,
                 "cer_greedy": 0.1}]
    for figure in (adding.plot_learning_curves(metrics, seq_len=10),
                   ocr.plot_learning_curves(metrics)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            figure.savefig(io.BytesIO(), format="png")
        assert not [w for w in caught if MISSING_GLYPH.search(str(w.message))]
        for ax in figure.axes:
            assert ax.get_xlabel() == "步数"
