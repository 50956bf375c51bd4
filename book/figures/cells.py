"""The gated cells built up in steps: the LSTM (gates; candidate; cell update; output) and the GRU
(gates; candidate; update). Each step is one panel of the same drawing: the parts of earlier steps
in full colour, the new part bold, the parts still to come faint.

Symbols as in ``book/notation.md``: ``x_t`` (input), ``h_{t-1}``, ``c_{t-1}`` (state), the gates
``i_t, f_t, o_t`` and ``r_t, z_t``, the candidates ``g_t`` and ``n_t``, ``⊙`` the elementwise
product. Colours by role: input blue, state green, gate orange, output purple.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from solutions.language import tr

from .style import FONT_MIN_PT, FONT_PT, arrow, box, fit, legend_roles, new_figure, op, strong

FAINT = 0.13


@dataclass
class Part:
    step: int  # the step that adds it (0: shown from the start)
    kind: str  # box | op | arrow | line | text
    args: tuple
    kwargs: dict = field(default_factory=dict)


def _render(ax, parts: list[Part], step: int) -> None:
    for part in parts:
        alpha = 1.0 if part.step <= step else FAINT
        bold = part.step == step
        kw = dict(part.kwargs)
        if part.kind == "box":
            box(ax, *part.args, alpha=alpha, linewidth=2.8 if bold else 1.6, **kw)
        elif part.kind == "op":
            op(ax, *part.args, alpha=alpha, linewidth=2.6 if bold else 1.6, **kw)
        elif part.kind == "arrow":
            arrow(ax, *part.args, alpha=alpha, width=2.4 if bold else 1.4, **kw)
        elif part.kind == "line":
            xs, ys = zip(*part.args[0], strict=True)
            role = kw.pop("role", "neutral")
            ax.plot(xs, ys, color=strong(role), alpha=alpha, linewidth=2.4 if bold else 1.4,
                    solid_capstyle="round", zorder=2)
        elif part.kind == "text":
            ax.text(*part.args, alpha=alpha, fontsize=kw.pop("fontsize", FONT_PT),
                    ha=kw.pop("ha", "center"), va=kw.pop("va", "center"), **kw)


def _stepped_figure(parts, titles, extent, height):
    nrows = -(-len(titles) // 2)
    fig, axes = new_figure(6.4, height, ncols=2, nrows=nrows)
    for k, (ax, title) in enumerate(zip(axes.flat, titles, strict=False), start=1):
        _render(ax, parts, k)
        ax.set_title(title, fontsize=FONT_MIN_PT + 1, loc="left")
        fit(ax, *extent)
    if len(titles) < axes.size:
        key = axes.flat[-1]
        fit(key, *extent)
        legend_roles(key, ["input", "state"], 1.2, 4.2, dx=3.2)
        legend_roles(key, ["gate", "output"], 1.2, 3.0, dx=3.2)
        key.text(1.0, 1.8, tr("⊙ elementwise product"), fontsize=FONT_MIN_PT, va="center")
        key.text(1.0, 0.9, tr("bold: this step; faint: later"), fontsize=FONT_MIN_PT, va="center")
    fig.subplots_adjust(wspace=0.06, hspace=0.25)
    return fig


def lstm_parts(symbols=("c_{t-1}", "h_{t-1}", "x_t", "c_t", "h_t")) -> list[Part]:
    c_prev, h_prev, x, c, h = (f"${s}$" for s in symbols)
    gate = dict(role="gate", width=0.95, height=0.62)
    xf, xi, xg, xo, xh = 2.4, 3.9, 5.5, 7.1, 8.7
    bus, gy, top = 1.0, 2.5, 5.0
    parts = [
        Part(0, "text", (0.45, top, c_prev), dict(color=strong("state"))),
        Part(0, "text", (0.45, bus, h_prev), dict(color=strong("state"))),
        Part(0, "text", (1.5, -0.25, x), dict(color=strong("input"))),
        Part(0, "line", ([(1.0, bus), (xo, bus)],), dict(role="state")),
        Part(0, "arrow", ((1.5, 0.05), (1.5, bus)), dict(role="input", shrink=0)),
        Part(0, "line", ([(1.0, top), (xf - 0.22, top)],), dict(role="state")),
    ]
    for x, name, side in ((xf, "f", -1), (xi, "i", -1), (xo, "o", 1)):
        parts += [Part(1, "arrow", ((x, bus), (x, gy - 0.31)), dict(role="neutral", shrink=0)),
                  Part(1, "box", (x, gy, "σ"), gate),
                  Part(1, "text", (x + side * 0.62, gy + 0.55, f"${name}_t$"),
                       dict(color=strong("gate"), fontsize=FONT_MIN_PT))]
    parts += [
        Part(2, "arrow", ((xg, bus), (xg, gy - 0.31)), dict(role="neutral", shrink=0)),
        Part(2, "box", (xg, gy, "tanh"), dict(role="state", width=1.25, height=0.62,
                                              fontsize=FONT_MIN_PT)),
        Part(2, "text", (xg + 0.82, gy + 0.55, "$g_t$"),
             dict(color=strong("state"), fontsize=FONT_MIN_PT)),
        # the cell update: c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
        Part(3, "arrow", ((xf, gy + 0.31), (xf, top - 0.22)), dict(role="gate", shrink=0)),
        Part(3, "op", (xf, top, "⊙"), dict(role="gate")),
        Part(3, "line", ([(xf + 0.22, top), (xg - 0.22, top)],), dict(role="state")),
        Part(3, "arrow", ((xg, gy + 0.31), (xg, 3.8 - 0.22)), dict(role="state", shrink=0)),
        Part(3, "arrow", ((xi, gy + 0.31), (xg - 0.2, 3.8 - 0.1)), dict(role="gate", shrink=0)),
        Part(3, "op", (xg, 3.8, "⊙"), dict(role="gate")),
        Part(3, "arrow", ((xg, 3.8 + 0.22), (xg, top - 0.22)), dict(role="state", shrink=0)),
        Part(3, "op", (xg, top, "+"), dict(role="state")),
        Part(3, "arrow", ((xg + 0.22, top), (9.7, top)), dict(role="state", shrink=0)),
        Part(3, "text", (10.25, top, c), dict(color=strong("state"))),
        # the output: h_t = o_t ⊙ tanh(c_t)
        Part(4, "arrow", ((xh, top), (xh, 3.8 + 0.31)), dict(role="state", shrink=0)),
        Part(4, "box", (xh, 3.8, "tanh"), dict(role="state", width=1.25, height=0.62,
                                               fontsize=FONT_MIN_PT)),
        Part(4, "arrow", ((xh, 3.8 - 0.31), (xh, gy + 0.22)), dict(role="state", shrink=0)),
        Part(4, "arrow", ((xo + 0.48, gy), (xh - 0.22, gy)), dict(role="gate", shrink=0)),
        Part(4, "op", (xh, gy, "⊙"), dict(role="gate")),
        Part(4, "line", ([(xh, gy - 0.22), (xh, bus)],), dict(role="output")),
        Part(4, "arrow", ((xh, bus), (9.7, bus)), dict(role="output", shrink=0)),
        Part(4, "text", (10.25, bus, h), dict(color=strong("output"))),
    ]
    return parts


def lstm_steps_figure():
    titles = [tr("1  gates $i_t, f_t, o_t$ (σ)"), tr("2  candidate $g_t$ (tanh)"),
              tr("3  cell: $f_t \\odot c_{t-1} + i_t \\odot g_t$"),
              tr("4  output: $h_t = o_t \\odot \\tanh(c_t)$")]
    return _stepped_figure(lstm_parts(), titles, (-0.3, 10.8, -0.6, 5.6), 4.9)


def gru_parts() -> list[Part]:
    gate = dict(role="gate", width=0.95, height=0.62)
    xr, xz, xn = 2.4, 4.0, 6.4
    bus, gy, top = 0.6, 2.3, 5.0
    parts = [
        Part(0, "text", (0.45, top, "$h_{t-1}$"), dict(color=strong("state"))),
        Part(0, "text", (1.5, -0.55, "$x_t$"), dict(color=strong("input"))),
        Part(0, "line", ([(1.0, top), (xz - 0.22, top)],), dict(role="state")),
        Part(0, "line", ([(1.0, top), (1.0, bus), (xn, bus)],), dict(role="state")),
        Part(0, "arrow", ((1.5, -0.3), (1.5, bus)), dict(role="input", shrink=0)),
    ]
    for x, name in ((xr, "r"), (xz, "z")):
        parts += [Part(1, "arrow", ((x, bus), (x, gy - 0.31)), dict(role="neutral", shrink=0)),
                  Part(1, "box", (x, gy, "σ"), gate),
                  Part(1, "text", (x - 0.62, gy + 0.55, f"${name}_t$"),
                       dict(color=strong("gate"), fontsize=FONT_MIN_PT))]
    parts += [
        # the candidate: n_t = tanh(x_t W_xn + b_xn + r_t ⊙ (h_{t-1} W_hn + b_hn))
        Part(2, "arrow", ((xn, bus), (xn, 1.5 - 0.22)), dict(role="state", shrink=0)),
        Part(2, "op", (xn, 1.5, "⊙"), dict(role="gate")),
        Part(2, "arrow", ((xr + 0.48, gy - 0.15), (xn - 0.22, 1.5)), dict(role="gate", shrink=0)),
        Part(2, "arrow", ((xn, 1.5 + 0.22), (xn, 3.2 - 0.31)), dict(role="state", shrink=0)),
        Part(2, "box", (xn, 3.2, "tanh"), dict(role="state", width=1.25, height=0.62,
                                               fontsize=FONT_MIN_PT)),
        Part(2, "text", (xn + 0.85, 3.75, "$n_t$"),
             dict(color=strong("state"), fontsize=FONT_MIN_PT)),
        # the update: h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}
        Part(3, "arrow", ((xz, gy + 0.31), (xz, top - 0.22)), dict(role="gate", shrink=0)),
        Part(3, "op", (xz, top, "⊙"), dict(role="gate")),
        Part(3, "line", ([(xz + 0.22, top), (8.2 - 0.22, top)],), dict(role="state")),
        Part(3, "arrow", ((xz + 0.3, gy + 0.31), (5.2 - 0.25, 4.1 - 0.12)),
             dict(role="gate", shrink=0)),
        Part(3, "op", (5.2, 4.1, "1−"), dict(role="gate", radius=0.3, fontsize=FONT_MIN_PT)),
        Part(3, "arrow", ((5.2 + 0.3, 4.1), (7.4 - 0.22, 4.1)), dict(role="gate", shrink=0)),
        Part(3, "arrow", ((xn + 0.63, 3.3), (7.4 - 0.18, 4.1 - 0.12)),
             dict(role="state", shrink=0)),
        Part(3, "op", (7.4, 4.1, "⊙"), dict(role="gate")),
        Part(3, "arrow", ((7.4 + 0.16, 4.1 + 0.16), (8.2 - 0.16, top - 0.16)),
             dict(role="state", shrink=0)),
        Part(3, "op", (8.2, top, "+"), dict(role="state")),
        Part(3, "arrow", ((8.2 + 0.22, top), (9.7, top)), dict(role="output", shrink=0)),
        Part(3, "text", (10.25, top, "$h_t$"), dict(color=strong("output"))),
    ]
    return parts


def gru_steps_figure():
    titles = [tr("1  gates $r_t, z_t$ (σ)"), tr("2  candidate $n_t$, reset inside"),
              "3  $h_t = (1 - z_t) \\odot n_t + z_t \\odot h_{t-1}$"]
    return _stepped_figure(gru_parts(), titles, (-0.3, 10.8, -0.9, 5.6), 5.0)
