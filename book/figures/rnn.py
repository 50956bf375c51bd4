"""RNN figures: the cell folded and unrolled (shared weights marked), the input/output layouts,
the bidirectional RNN, and the BPTT graph with the gradient paths of one loss term.

Inputs ``x_t`` at the bottom (blue), states ``h_t`` in the middle (green), outputs ``y_t`` and
losses at the top (purple, red); ``t`` counts from 1.
"""

from __future__ import annotations

from solutions.language import tr

from .style import FONT_MIN_PT, FONT_PT, arrow, box, fit, new_figure, strong

XY, HY, YY = 0.0, 1.4, 2.8  # heights of the input, state and output rows
CELL = dict(width=0.9, height=0.62)


def _column(ax, x, t, *, with_input=True, with_output=True, h_label=None, role="state",
            fontsize=FONT_MIN_PT):
    """x_t -> h_t -> y_t at horizontal position ``x``."""
    box(ax, x, HY, h_label or f"$h_{{{t}}}$", role=role, fontsize=fontsize, **CELL)
    if with_input:
        box(ax, x, XY, f"$x_{{{t}}}$", role="input", fontsize=fontsize, **CELL)
        arrow(ax, (x, XY + 0.31), (x, HY - 0.31), role="input", shrink=1)
    if with_output:
        box(ax, x, YY, f"$y_{{{t}}}$", role="output", fontsize=fontsize, **CELL)
        arrow(ax, (x, HY + 0.31), (x, YY - 0.31), role="output", shrink=1)


def folded_unrolled_figure(T: int = 3):
    """The folded cell with its loop, '=', and the same cell unrolled over T steps."""
    fig, axes = new_figure(6.4, 2.6)
    ax = axes[0, 0]
    _column(ax, 0.0, "t", h_label="$h_t$")
    ax.annotate("", xy=(0.45, HY - 0.15), xytext=(0.45, HY + 0.15),
                arrowprops=dict(arrowstyle="-|>", color=strong("state"), lw=1.6,
                                connectionstyle="arc3,rad=-2.2", shrinkA=0, shrinkB=0))
    ax.text(1.15, HY + 0.45, "$W_h$", ha="center", va="center", color=strong("state"),
            fontsize=FONT_MIN_PT)
    ax.text(0.1, 0.7, "$W_x$", ha="left", va="center", color=strong("input"),
            fontsize=FONT_MIN_PT)
    ax.text(1.75, HY, "=", ha="center", va="center", fontsize=FONT_PT + 4)
    x0, dx = 3.8, 1.75
    box(ax, x0 - 1.3, HY, "$h_0$", role="state", fontsize=FONT_MIN_PT, width=0.7, height=0.62)
    for t in range(1, T + 1):
        x = x0 + (t - 1) * dx
        _column(ax, x, t)
        ax.text(x + 0.1, 0.7, "$W_x$", ha="left", va="center", color=strong("input"),
                fontsize=FONT_MIN_PT)
        previous = x - dx if t > 1 else x0 - 1.3
        arrow(ax, (previous + (0.45 if t > 1 else 0.35), HY), (x - 0.45, HY), role="state",
              shrink=1, width=1.8)
        ax.text((previous + x) / 2 + (0.1 if t > 1 else 0.05), HY + 0.42, "$W_h$",
                ha="center", va="center", color=strong("state"), fontsize=FONT_MIN_PT)
    ax.text(x0 + (T - 1) * dx / 2, -0.75,
            tr("one $W_x$, one $W_h$, one $b$: the same at every step"),
            ha="center", va="center", fontsize=FONT_MIN_PT)
    fit(ax, -0.6, x0 + (T - 1) * dx + 0.6, -1.0, YY + 0.45)
    return fig


def _layout(ax, title, n_in, out_at, n_steps, decoder_from=None):
    for t in range(1, n_steps + 1):
        x = (t - 1) * 1.1
        decoding = decoder_from is not None and t >= decoder_from
        box(ax, x, HY, "", role="output" if decoding else "state", width=0.7, height=0.55)
        if t > 1:
            arrow(ax, (x - 1.1 + 0.35, HY), (x - 0.35, HY), role="state", shrink=1)
        if t <= n_in:
            box(ax, x, XY, "", role="input", width=0.7, height=0.55)
            arrow(ax, (x, XY + 0.28), (x, HY - 0.28), role="input", shrink=1)
        if t in out_at:
            box(ax, x, YY, "", role="output", width=0.7, height=0.55, filled=True)
            arrow(ax, (x, HY + 0.28), (x, YY - 0.28), role="output", shrink=1)
    ax.set_title(title, fontsize=FONT_MIN_PT, loc="left")
    fit(ax, -0.6, 5.0 * 1.1 + 0.6, -0.5, YY + 0.45)


def layouts_figure():
    """Many-to-one, many-to-many (equal and unequal lengths), encoder-decoder."""
    fig, axes = new_figure(6.4, 4.6, ncols=2, nrows=2)
    _layout(axes[0, 0], tr("many to one"), 5, {5}, 5)
    _layout(axes[0, 1], tr("many to many, equal lengths"), 5, {1, 2, 3, 4, 5}, 5)
    _layout(axes[1, 0], tr("unequal: 5 in, 3 out (CTC)"), 5, {2, 4, 5}, 5)
    _layout(axes[1, 1], tr("encoder-decoder"), 3, {4, 5, 6}, 6, decoder_from=4)
    axes[1, 1].text(2.2 * 1.1 / 2 + 0.0, -0.45, tr("encoder"), ha="center", va="top",
                    fontsize=FONT_MIN_PT, color=strong("state"))
    axes[1, 1].text(4 * 1.1, -0.45, tr("decoder"), ha="center", va="top", fontsize=FONT_MIN_PT,
                    color=strong("output"))
    fig.subplots_adjust(hspace=0.35, wspace=0.1)
    return fig


def bidirectional_figure(T: int = 4):
    """Two RNNs over the same inputs, one forward and one backward; each output sees both."""
    fig, axes = new_figure(6.0, 3.4)
    ax = axes[0, 0]
    yf, yb, yy = 1.3, 2.4, 3.7
    for t in range(1, T + 1):
        x = (t - 1) * 1.5
        box(ax, x, 0.0, f"$x_{{{t}}}$", role="input", fontsize=FONT_MIN_PT, **CELL)
        box(ax, x, yf, f"$\\overrightarrow{{h}}_{{{t}}}$", role="state", fontsize=FONT_MIN_PT,
            **CELL)
        box(ax, x, yb, f"$\\overleftarrow{{h}}_{{{t}}}$", role="state", fontsize=FONT_MIN_PT,
            filled=False, **CELL)
        box(ax, x, yy, f"$y_{{{t}}}$", role="output", fontsize=FONT_MIN_PT, **CELL)
        arrow(ax, (x, 0.31), (x, yf - 0.31), role="input", shrink=1)
        arrow(ax, (x + 0.2, 0.31), (x + 0.55, yb - 0.2), role="input", shrink=1, rad=0.25)
        arrow(ax, (x - 0.3, yf + 0.31), (x - 0.55, yy - 0.31), role="output", shrink=1, rad=-0.3)
        arrow(ax, (x, yb + 0.31), (x, yy - 0.31), role="output", shrink=1)
        if t > 1:
            arrow(ax, (x - 1.5 + 0.45, yf), (x - 0.45, yf), role="state", shrink=1, width=1.8)
            arrow(ax, (x - 0.45, yb), (x - 1.5 + 0.45, yb), role="state", shrink=1, width=1.8)
    right = (T - 1) * 1.5
    ax.text(right + 0.65, yf, tr("forward →"), ha="left", va="center", fontsize=FONT_MIN_PT,
            color=strong("state"))
    ax.text(right + 0.65, yb, tr("← backward"), ha="left", va="center", fontsize=FONT_MIN_PT,
            color=strong("state"))
    ax.text(right / 2, -0.75, tr("$y_t$ reads $[\\overrightarrow{h}_t, \\overleftarrow{h}_t]$: "
                                 "the past and the future of step $t$"),
            ha="center", va="center", fontsize=FONT_MIN_PT)
    fit(ax, -1.0, right + 2.3, -1.0, yy + 0.45)
    return fig


def bptt_figure(T: int = 4, loss_at: int = 3):
    """The unrolled graph with a loss per step; the gradient of one loss term L_k flows back
    through h_k, h_{k-1}, ... and reaches W_h (and W_x) at every step on its way."""
    fig, axes = new_figure(6.4, 3.9)
    ax = axes[0, 0]
    ly = YY + 1.3
    grad = strong("loss")
    box(ax, -1.3, HY, "$h_0$", role="state", fontsize=FONT_MIN_PT, width=0.7, height=0.62)
    for t in range(1, T + 1):
        x = (t - 1) * 1.7
        _column(ax, x, t)
        box(ax, x, ly, f"$L_{{{t}}}$", role="loss", fontsize=FONT_MIN_PT, **CELL)
        arrow(ax, (x, YY + 0.31), (x, ly - 0.31), role="output", shrink=1)
        previous = x - 1.7 if t > 1 else -1.3
        arrow(ax, (previous + (0.45 if t > 1 else 0.35), HY), (x - 0.45, HY), role="state",
              shrink=1, width=1.6)
        ax.text((previous + x) / 2, HY - 0.35, "$W_h$", ha="center", va="center",
                color=strong("state"), fontsize=FONT_MIN_PT)
    k = loss_at
    xk = (k - 1) * 1.7
    # the gradient of L_k: down to y_k and h_k, then back along the chain of states
    arrow(ax, (xk + 0.35, ly - 0.31), (xk + 0.35, YY + 0.31), role=grad, shrink=1, width=2.2,
          linestyle=(0, (4, 2)), gid="grad:L-y")
    arrow(ax, (xk + 0.35, YY - 0.31), (xk + 0.35, HY + 0.31), role=grad, shrink=1, width=2.2,
          linestyle=(0, (4, 2)), gid="grad:y-h")
    for t in range(k, 1, -1):
        x = (t - 1) * 1.7
        arrow(ax, (x - 0.3, HY + 0.33), (x - 1.7 + 0.3, HY + 0.33), role=grad, shrink=1,
              width=2.2, rad=0.45, linestyle=(0, (4, 2)), gid=f"grad:h{t}-h{t - 1}")
    for t in range(1, k + 1):
        x = (t - 1) * 1.7
        ax.text(x - 0.62, HY + 0.85, f"$\\partial L_{{{k}}}/\\partial h_{{{t}}}$", ha="center",
                va="center", color=grad, fontsize=FONT_MIN_PT)
    ax.text((T - 1) * 1.7 / 2 - 0.6, -0.8,
            tr("$\\partial L_{{{k}}}/\\partial W_h$ sums one term per step "
               "$t \\leq {k}$; steps after {k} get nothing from $L_{{{k}}}$").format(k=k),
            ha="center", va="center", fontsize=FONT_MIN_PT, color=grad)
    fit(ax, -1.8, (T - 1) * 1.7 + 0.6, -1.1, ly + 0.4)
    return fig
