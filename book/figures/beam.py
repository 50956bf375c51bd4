"""The prefix beam search as a tree over a few frames, computed by a small instrumented search.

``traced_prefix_beam_search`` is the textbook algorithm with probabilities (not logs) and a record
of every frame: each candidate prefix, the (parent, symbol) extensions that reached it (two or more
of them: the prefixes *merged*), its probability, and whether it was kept in the beam or pruned.
Its final beam equals ``solutions.decode.prefix_beam_search`` (tests/test_figures.py checks).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from solutions.language import tr

from .style import FONT_MIN_PT, FORBIDDEN, arrow, box, fit, new_figure, strong

# A small network output over (ε, a, b), three frames: chosen so that the beam of width 2 both
# merges prefixes (from frame 2 on) and prunes them.
EXAMPLE_SYMBOLS = ("ε", "a", "b")
EXAMPLE_PROBS = np.array([[0.35, 0.45, 0.20],
                          [0.45, 0.35, 0.20],
                          [0.30, 0.25, 0.45]])


@dataclass
class Candidate:
    prefix: tuple[int, ...]
    p_blank: float = 0.0  # paths ending in a blank
    p_label: float = 0.0  # paths ending in the prefix's last label
    sources: list = field(default_factory=list)  # (parent prefix, symbol id) that reach it
    kept: bool = False

    @property
    def p(self) -> float:
        return self.p_blank + self.p_label


def traced_prefix_beam_search(probs: np.ndarray, beam_width: int, blank: int = 0):
    """Prefix beam search on ``probs`` (T, C); returns the candidates of every frame, best
    first (``frames[t]``: the list after frame t + 1), the kept ones marked."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"probs: expected shape (T, C), got {probs.shape}")
    beam = {(): Candidate((), p_blank=1.0, kept=True)}
    frames = []
    for y in probs:
        candidates: dict[tuple, Candidate] = {}
        for prefix, old in beam.items():
            stay = candidates.setdefault(prefix, Candidate(prefix))
            stay.p_blank += old.p * y[blank]
            stay.sources.append((prefix, blank))
            for label in range(len(y)):
                if label == blank:
                    continue
                if prefix and label == prefix[-1]:
                    stay.p_label += old.p_label * y[label]  # a repeat merges into the label
                    stay.sources.append((prefix, label))
                    grown = candidates.setdefault(prefix + (label,), Candidate(prefix + (label,)))
                    grown.p_label += old.p_blank * y[label]  # a new label after a blank
                else:
                    grown = candidates.setdefault(prefix + (label,), Candidate(prefix + (label,)))
                    grown.p_label += old.p * y[label]
                grown.sources.append((prefix, label))
        ranked = sorted(candidates.values(), key=lambda c: (-c.p, c.prefix))
        for candidate in ranked[:beam_width]:
            candidate.kept = True
        frames.append(ranked)
        beam = {c.prefix: c for c in ranked[:beam_width]}
    return frames


def beam_tree_figure(probs=EXAMPLE_PROBS, symbols=EXAMPLE_SYMBOLS, beam_width: int = 2):
    frames = traced_prefix_beam_search(probs, beam_width)
    name = lambda prefix: "".join(symbols[k] for k in prefix) or "∅"
    height = max(len(f) for f in frames)
    fig, axes = new_figure(6.4, 1.0 + 0.62 * height)
    ax = axes[0, 0]
    dx, dy = 2.7, 1.0
    position = {(0, ()): (0.0, 0.0)}
    box(ax, 0.0, 0.0, "∅  1", role="state", width=1.5, height=0.62, fontsize=FONT_MIN_PT)
    for t, ranked in enumerate(frames, start=1):
        for i, c in enumerate(ranked):
            position[t, c.prefix] = (t * dx, -i * dy)
        for c in ranked:
            x, y = position[t, c.prefix]
            merged = len(c.sources) > 1  # several extensions lead to this prefix
            box(ax, x, y, f"{name(c.prefix)}  {c.p:.3f}", role="state" if c.kept else "neutral",
                width=1.75, height=0.62, fontsize=FONT_MIN_PT, filled=c.kept,
                gid=f"beam:{t}:{name(c.prefix)}:{'kept' if c.kept else 'pruned'}"
                    f"{':merged' if merged else ''}", linewidth=3.0 if merged else 1.6)
            if not c.kept:
                ax.text(x + 0.95, y, "✗", color=FORBIDDEN, fontsize=FONT_MIN_PT, ha="left",
                        va="center", fontweight="bold")
            for parent in dict.fromkeys(parent for parent, _ in c.sources):
                px, py = position[t - 1, parent]
                arrow(ax, (px + 0.8, py), (x - 0.9, y), role="state" if c.kept else "neutral",
                      width=1.1, shrink=1, alpha=1.0 if c.kept else 0.5)
        ax.text(t * dx, 0.75, f"t = {t}", ha="center", va="bottom", fontsize=FONT_MIN_PT)
    ax.text(-0.7, -(height - 0.2) * dy,
            tr("beam width {width}: bold boxes merge several paths; ✗ pruned").format(
                width=beam_width),
            ha="left", va="center", fontsize=FONT_MIN_PT, color=strong("neutral"))
    fit(ax, -0.9, len(frames) * dx + 1.3, -(height - 0.2) * dy - 0.4, 1.2)
    return fig
