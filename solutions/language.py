"""The language of the course's figures: English, or Chinese in the Chinese edition.

The Chinese book (``make book-zh``) is built with ``COURSE_LANGUAGE=zh_CN``; its notebooks run with
that variable set, and every word a figure shows passes through :func:`tr`::

    ax.set_xlabel(tr("time step"))                 # "time step" in English, "时间步" in Chinese
    ax.set_title(tr("loss after {n} steps").format(n=n))

:func:`tr` looks the text up in ``locales/zh_CN/LC_MESSAGES/figures.po``, the same gettext
catalogue format as the pages' translations. A label with no translation is an error, not an
English label in a Chinese figure. Chinese text needs a font with CJK glyphs (``fonts-noto-cjk``
on Debian and Ubuntu); without one the figures would show empty boxes, so :func:`cjk_font`
refuses instead.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

LANGUAGES = ("en", "zh_CN")
LOCALES = Path(__file__).resolve().parents[1] / "locales"
# The CJK fonts that matplotlib may use, first found first; Latin text keeps DejaVu Sans.
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Source Han Sans SC", "WenQuanYi Zen Hei")
INSTALL_HINT = ("install a CJK font, e.g. `sudo apt-get install fonts-noto-cjk` (Debian/Ubuntu) or "
                "`brew install --cask font-noto-sans-cjk-sc` (macOS), then delete matplotlib's "
                "font cache (~/.cache/matplotlib)")


def language() -> str:
    """The language that ``COURSE_LANGUAGE`` asks for (``en`` unless set)."""
    value = os.environ.get("COURSE_LANGUAGE", "en") or "en"
    if value not in LANGUAGES:
        raise ValueError(f"COURSE_LANGUAGE: expected one of {LANGUAGES}, got {value!r}")
    return value


def catalogue_path(lang: str) -> Path:
    return LOCALES / lang / "LC_MESSAGES" / "figures.po"


@functools.cache
def catalogue(lang: str) -> dict[str, str]:
    """msgid -> msgstr of the figure labels of ``lang`` (translated, non-fuzzy entries only)."""
    from babel.messages.pofile import read_po

    path = catalogue_path(lang)
    if not path.is_file():
        raise FileNotFoundError(f"no figure-label catalogue for {lang}: {path}")
    with open(path, "rb") as f:
        messages = read_po(f)
    return {m.id: m.string for m in messages
            if m.id and isinstance(m.id, str) and m.string and not m.fuzzy}


def tr(text: str) -> str:
    """``text`` in the course's language; ``KeyError`` naming the catalogue if it has no entry."""
    lang = language()
    if lang == "en":
        return text
    use_language_fonts()
    translated = catalogue(lang).get(text)
    if translated is None:
        raise KeyError(f"the figure label {text!r} has no {lang} translation: add msgid/msgstr "
                       f"to {catalogue_path(lang)}")
    return translated


@functools.cache
def cjk_font() -> str:
    """The first installed font of CJK_FONTS; ``RuntimeError`` with the install hint if none."""
    from matplotlib import font_manager

    for family in CJK_FONTS:
        try:
            font_manager.findfont(font_manager.FontProperties(family=family),
                                  fallback_to_default=False)
        except ValueError:
            continue
        return family
    raise RuntimeError(f"Chinese figure labels need a font with CJK glyphs, and matplotlib found "
                       f"none of {', '.join(CJK_FONTS)}: {INSTALL_HINT}")


def font_families() -> list[str]:
    """matplotlib's ``font.family`` for the course's language: DejaVu Sans in English; in Chinese
    the CJK font first, then DejaVu Sans for the few glyphs it lacks (✓, ✗).

    matplotlib falls back glyph by glyph only across the entries of ``font.family`` (of a generic
    family such as ``sans-serif`` it uses the first installed font alone), and the text around
    ``$...$`` in a label is drawn with the first family only, so the CJK font must come first.
    """
    return ["DejaVu Sans"] if language() == "en" else [cjk_font(), "DejaVu Sans"]


def use_language_fonts() -> None:
    """Make matplotlib draw with :func:`font_families` (a no-op in English)."""
    if language() == "en":
        return
    import matplotlib

    families = font_families()
    if matplotlib.rcParams["font.family"] != families:
        matplotlib.rcParams["font.sans-serif"] = families + [
            f for f in matplotlib.rcParams["font.sans-serif"] if f not in families]
        matplotlib.rcParams["font.family"] = families
        matplotlib.rcParams["axes.unicode_minus"] = False
