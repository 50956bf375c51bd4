"""Digit glyphs rendered offline from the fonts that matplotlib ships.

matplotlib installs DejaVu (Sans, Serif, Mono), STIX and Computer Modern TrueType files with
itself, so digit images of many styles are available with no download. Each glyph is rasterised
with FreeType (matplotlib's ``FT2Font``, the renderer behind its Agg backend), cropped to its ink
and resized to a fixed height.

The fonts are split once and for all into ``TRAIN_FONTS`` and ``HELDOUT_FONTS``. The held-out
styles are combinations the training set never shows (e.g. DejaVu Serif Bold Italic, while the
training set has Serif, Serif Bold and Serif Italic), so a held-out score measures generalisation
to new glyph shapes, not memory of the training glyphs.
"""

from __future__ import annotations

import functools
import os

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.ft2font import FT2Font, LoadFlags

from solutions._validate import check_positive_int

TRAIN_FONTS = (
    "DejaVuSans",
    "DejaVuSans-Bold",
    "DejaVuSans-Oblique",
    "DejaVuSansMono",
    "DejaVuSansMono-Bold",
    "DejaVuSansMono-BoldOblique",
    "DejaVuSerif",
    "DejaVuSerif-Italic",
    "DejaVuSerif-Bold",
    "STIXGeneral",
    "STIXGeneralBol",
    "STIXGeneralBolIta",
    "cmr10",
    "cmss10",
    "cmb10",
)
HELDOUT_FONTS = (
    "DejaVuSans-BoldOblique",
    "DejaVuSansMono-Oblique",
    "DejaVuSerif-BoldItalic",
    "STIXGeneralItalic",
    "cmtt10",
    "cmti10",
)
SPLITS = {"train": TRAIN_FONTS, "heldout": HELDOUT_FONTS, "all": TRAIN_FONTS + HELDOUT_FONTS}

_RENDER_SIZE = 96  # pixels per em at which glyphs are rasterised before the downscale


def font_path(font: str) -> str:
    """Path of the TrueType file of ``font`` (a name from ``SPLITS["all"]``)."""
    if font not in SPLITS["all"]:
        raise ValueError(f"font: expected one of {SPLITS['all']}, got {font!r}")
    return os.path.join(matplotlib.get_data_path(), "fonts", "ttf", font + ".ttf")


@functools.lru_cache(maxsize=4096)
def render_digit(font: str, digit: int, height: int) -> np.ndarray:
    """The ``digit`` of ``font`` as ink in ``[0, 1]``, shape ``(height, width)``, float32.

    The image is cropped to the ink and resized (area averaging, so it stays antialiased) to
    ``height`` rows; the width keeps the glyph's aspect ratio. Cached: the result is read-only.
    """
    if not (isinstance(digit, (int, np.integer)) and 0 <= digit <= 9):
        raise ValueError(f"digit: expected an integer in [0, 9], got {digit!r}")
    height = check_positive_int("height", height)
    ft = FT2Font(font_path(font))
    ft.set_size(_RENDER_SIZE, 72)  # 72 dpi: one point is one pixel
    ft.set_text(str(int(digit)), 0.0, flags=LoadFlags.NO_HINTING)
    ft.draw_glyphs_to_bitmap(antialiased=True)
    ink = np.asarray(ft.get_image(), dtype=np.float32) / 255.0
    rows = np.flatnonzero(ink.max(axis=1) > 0)
    cols = np.flatnonzero(ink.max(axis=0) > 0)
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    width = max(1, round(ink.shape[1] * height / ink.shape[0]))
    small = F.interpolate(torch.from_numpy(ink)[None, None], size=(height, width), mode="area")
    out = small[0, 0].numpy()
    out.setflags(write=False)
    return out


def glyph_bank(split: str, height: int) -> list[list[np.ndarray]]:
    """All digits of the fonts of ``split``: ``bank[f][d]`` is digit ``d`` of font ``f``."""
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {tuple(SPLITS)}, got {split!r}")
    return [[render_digit(font, d, height) for d in range(10)] for font in SPLITS[split]]
