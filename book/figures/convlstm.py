"""ConvLSTM figures: the cell (convolutions on the input and the state, peepholes as ⊙), and the
receptive field of one step against the motion per frame (why the kernel needs κ >= 2v + 1).

Symbols as in ``book/notation.md``, except that the feature maps 𝒳_t, ℋ_t, 𝒞_t are written
X_t, H_t, C_t next to a small grid: the SVG keeps its text as text, and the mathematical script
letters are missing from many readers' fonts (the captions, typeset by MathJax, use them).
"""

from __future__ import annotations

from matplotlib.patches import Rectangle

from solutions.language import tr

from .cells import Part, _render
from .style import FONT_MIN_PT, FORBIDDEN, arrow, fit, new_figure, strong, tint

MAPS = ("C_{t-1}", "H_{t-1}", "X_t", "C_t",
        "H_t")


def _grid_icon(ax, x, y, role, size=0.42, n=3):
    """A small n x n grid: this is an image (a feature map), not a vector."""
    cell = size / n
    for i in range(n):
        for j in range(n):
            ax.add_patch(Rectangle((x + i * cell, y + j * cell), cell, cell, facecolor=tint(role),
                                   edgecolor=strong(role), linewidth=0.8, zorder=3))


def convlstm_cell_figure():
    """The LSTM cell with convolutions in place of the matrix products and the peepholes."""
    from .cells import lstm_parts

    parts = [p for p in lstm_parts(MAPS) if not (p.kind == "arrow" and p.args[0][1] == 1.0
                                                  and p.args[1][1] < 2.5 and p.step in (1, 2))]
    fig, axes = new_figure(6.4, 4.0)
    ax = axes[0, 0]
    # one convolution over [X_t, H_{t-1}] gives the pre-activations of all four gates
    conv_y = 1.65
    parts.append(Part(0, "box", (4.75, conv_y, "$W * [X_t, H_{t-1}] + b$"),
                      dict(role="neutral", width=5.6, height=0.5, fontsize=FONT_MIN_PT)))
    parts.append(Part(0, "arrow", ((1.5, 1.0), (2.05, conv_y - 0.25)),
                      dict(role="neutral", shrink=0)))
    for x in (2.4, 3.9, 5.5, 7.1):
        parts.append(Part(0, "arrow", ((x, conv_y + 0.25), (x, 2.5 - 0.31)),
                          dict(role="neutral", shrink=0)))
    _render(ax, parts, step=len(parts))  # every part in full colour, none bold
    for x, y, role in ((-0.75, 4.8, "state"), (-0.75, 0.8, "state"), (0.6, -0.45, "input"),
                       (10.75, 4.8, "state"), (10.75, 0.8, "output")):
        _grid_icon(ax, x, y, role)
    # peepholes: C_{t-1} into i and f, C_t into o, each an elementwise product with a weight map
    peep = dict(role="gate", width=1.5, linestyle=(0, (3, 2)), shrink=2)
    arrow(ax, (1.5, 5.0), (2.15, 2.5 + 0.31), rad=0.25, **peep)
    arrow(ax, (1.5, 5.0), (3.65, 2.5 + 0.31), rad=0.15, **peep)
    arrow(ax, (6.4, 5.0), (7.05, 2.5 + 0.31), rad=-0.15, **peep)
    ax.text(1.75, 2.55, "⊙ $W_{ci}$\n⊙ $W_{cf}$", fontsize=FONT_MIN_PT, color=strong("gate"),
            ha="right", va="center")
    ax.text(7.3, 4.45, "⊙ $W_{co}$", fontsize=FONT_MIN_PT, color=strong("gate"),
            ha="left", va="center")
    ax.text(4.75, -0.7, tr("dashed: peepholes, elementwise (⊙) with the cell state"), ha="center",
            va="center", fontsize=FONT_MIN_PT, color=strong("gate"))
    fit(ax, -0.9, 11.3, -1.0, 5.6)
    return fig


def _strip(ax, y, n, label, role, marked=(), window=None, window_role="input"):
    for i in range(n):
        face = strong(role) if i in marked else "white"
        ax.add_patch(Rectangle((i, y), 1, 1, facecolor=face, edgecolor="#999999", linewidth=1,
                               zorder=2))
    if window is not None:
        lo, hi = window
        ax.add_patch(Rectangle((lo, y - 0.08), hi - lo + 1, 1.16, facecolor=tint(window_role),
                               edgecolor=strong(window_role), linewidth=2, zorder=1))
    ax.text(-0.3, y + 0.5, label, ha="right", va="center", fontsize=FONT_MIN_PT)


def receptive_field_figure(v: int = 2, kernels=(3, 5), n: int = 11):
    """An object moving v pixels per frame; the kernel at its new position reaches r = (κ-1)/2
    pixels into the previous state: it finds where the object came from only if r >= v."""
    fig, axes = new_figure(6.4, 3.6, nrows=len(kernels))
    start = 3
    for ax, kernel in zip(axes[:, 0], kernels, strict=True):
        r = (kernel - 1) // 2
        new = start + v
        _strip(ax, 1.6, n, "$H_{t-1}$", "state", marked={start},
               window=(new - r, new + r))
        _strip(ax, 0.0, n, "$H_t$", "state", marked={new})
        arrow(ax, (new + 0.5, 1.0), (new + 0.5, 1.52), role="input", shrink=0)
        sees = r >= v
        verdict = tr("✓ sees where the object was") if sees else tr("✗ cannot see where it was")
        ax.text(n + 0.4, 1.3, f"κ = {kernel}, r = {r}\nv = {v}: {verdict}", ha="left",
                va="center", fontsize=FONT_MIN_PT,
                color=strong("state") if sees else FORBIDDEN)
        fit(ax, -1.8, n + 7.2, -0.3, 2.9)
    axes[0, 0].set_title(tr("object moving v = {v} px per frame; window of the κ × κ kernel "
                            "(one row)").format(v=v), fontsize=FONT_MIN_PT, loc="left")
    return fig
