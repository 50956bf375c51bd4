"""One visual style for every figure of the book: colours per role, fonts, and the drawing helpers.

A role has the same colour in every figure, so a reader who has learnt that orange means "gate"
in the LSTM cell sees it again in the GRU and the ConvLSTM. The palette is Okabe and Ito's, which
stays distinguishable for the common colour-vision deficiencies; each role has a strong colour
(lines, text) and a light tint (fills).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

from solutions.language import font_families, tr

ROLE_COLOURS = {  # role -> (strong, tint)
    "input": ("#0072B2", "#D6E9F5"),
    "state": ("#009E73", "#D3F0E6"),
    "gate": ("#E69F00", "#FBEBC7"),
    "output": ("#CC79A7", "#F5E1EC"),
    "loss": ("#D55E00", "#F8DCCB"),
    "neutral": ("#555555", "#EEEEEE"),
}
FORBIDDEN = "#D55E00"  # a transition the CTC recursion does not allow
# A figure is shown at its natural width (at most MAX_WIDTH_IN) on a wide screen and scaled down to
# the column on a phone (about 340 CSS px of a 360 px screen): with no text under FONT_MIN_PT,
# text on a phone is then at least 11 pt * 340 / (5.75 * 72) = 9 CSS px.
MAX_WIDTH_IN = 5.75
FONT_PT = 12
FONT_MIN_PT = 11

RC = {
    "svg.fonttype": "none",  # text stays text: searchable, selectable, translatable
    "svg.hashsalt": "sequence-models-course",  # stable ids, so a rebuild writes the same file
    "mathtext.fontset": "dejavusans",
    "font.size": FONT_PT,
    "axes.titlesize": FONT_PT,
    "axes.titleweight": "bold",
}


def rc() -> dict:
    """RC with the fonts of the course's language (``COURSE_LANGUAGE``): DejaVu Sans in English;
    in Chinese a CJK font, with DejaVu Sans for the glyphs it lacks."""
    families = font_families()
    return {**RC, "font.family": families, "font.sans-serif": families}


def strong(role: str) -> str:
    return ROLE_COLOURS[role][0]


def tint(role: str) -> str:
    return ROLE_COLOURS[role][1]


def new_figure(width: float, height: float, ncols: int = 1, nrows: int = 1, **kwargs):
    """A figure of ``width`` x ``height`` inches whose axes are blank canvases in data units.

    A width above MAX_WIDTH_IN shrinks to it, the height in proportion (the text keeps its size).
    """
    if width > MAX_WIDTH_IN:
        width, height = MAX_WIDTH_IN, height * MAX_WIDTH_IN / width
    with plt.rc_context(rc()):
        fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, **kwargs)
    for ax in axes.flat:
        ax.set_axis_off()
        ax.set_aspect("equal")
    return fig, axes


def box(ax, x, y, text, role="neutral", width=1.0, height=0.6, fontsize=FONT_PT, gid=None,
        filled=True, alpha=1.0, linewidth=1.6):
    """A rounded box centred at (x, y) with ``text`` in it, coloured by its role."""
    patch = FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                           boxstyle="round,pad=0.02,rounding_size=0.12",
                           facecolor=tint(role) if filled else "white", edgecolor=strong(role),
                           linewidth=linewidth, zorder=3, alpha=alpha)
    if gid:
        patch.set_gid(gid)
    ax.add_patch(patch)
    if text:
        ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, zorder=4,
                color="black", alpha=alpha)
    return patch


def op(ax, x, y, symbol, role="neutral", radius=0.22, fontsize=FONT_PT, alpha=1.0,
       linewidth=1.6):
    """A small circle holding an operation (⊙, +, 1−)."""
    ax.add_patch(Circle((x, y), radius, facecolor="white", edgecolor=strong(role),
                        linewidth=linewidth, zorder=3, alpha=alpha))
    ax.text(x, y, symbol, ha="center", va="center", fontsize=fontsize, zorder=4, alpha=alpha)


def arrow(ax, start, end, role="neutral", style="-|>", linestyle="-", width=1.5, rad=0.0,
          shrink=4.0, gid=None, zorder=2, alpha=1.0):
    """An arrow from ``start`` to ``end`` (data coordinates), coloured by its role."""
    patch = FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=12,
                            connectionstyle=f"arc3,rad={rad}", color=strong(role)
                            if role in ROLE_COLOURS else role, linewidth=width,
                            linestyle=linestyle, shrinkA=shrink, shrinkB=shrink, zorder=zorder,
                            alpha=alpha)
    if gid:
        patch.set_gid(gid)
    ax.add_patch(patch)
    return patch


def fit(ax, xmin, xmax, ymin, ymax):
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)


def role_name(role: str) -> str:
    """The name of ``role`` in a figure's key, in the course's language."""
    names = {"input": tr("input"), "state": tr("state"), "gate": tr("gate"),
             "output": tr("output")}
    return names[role]


def legend_roles(ax, roles, x, y, dx=1.6, fontsize=FONT_MIN_PT):
    """A one-line key of the role colours, starting at (x, y)."""
    for i, role in enumerate(roles):
        box(ax, x + i * dx, y, "", role=role, width=0.3, height=0.25)
        ax.text(x + i * dx + 0.22, y, role_name(role), ha="left", va="center",
                fontsize=fontsize)
