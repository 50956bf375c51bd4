"""CTC figures: the "hello" alignment and its collapse, the lattice with its transitions, the
valid paths of a small example, and the forward and backward flows on the lattice.

Positions follow the book: time ``t = 1..T`` runs left to right, the position ``s = 1..2U+1`` of
the extended labelling ``l'`` top to bottom; ``ε`` is the blank. Every artist that stands for a
node or a transition carries a ``gid`` (``node:t:s``, ``edge:t:s:s2``, ``forbidden:t:s:s2``), so
the tests can check what was drawn against an independent enumeration of the paths.
"""

from __future__ import annotations

from dataclasses import dataclass

from matplotlib.patches import Circle

from solutions.language import tr

from .style import FONT_MIN_PT, FONT_PT, FORBIDDEN, arrow, box, fit, new_figure, strong, tint

BLANK = "ε"


def extended_labelling(labels: str) -> list[str]:
    """``l'``: ``labels`` with a blank before, between and after its labels (length 2U+1)."""
    if not isinstance(labels, str) or BLANK in labels:
        raise ValueError(f"labels: expected a string of label symbols without {BLANK!r}, "
                         f"got {labels!r}")
    ext = [BLANK]
    for label in labels:
        ext += [label, BLANK]
    return ext


def collapse(path) -> str:
    """The map B: merge runs of repeated symbols, then drop the blanks."""
    merged = [symbol for i, symbol in enumerate(path) if i == 0 or symbol != path[i - 1]]
    return "".join(symbol for symbol in merged if symbol != BLANK)


def step_allowed(ext: list[str], s: int, s_next: int) -> bool:
    """May a path move from position ``s`` at frame t to ``s_next`` at frame t+1 (1-based)?

    Stay, or move one down, or skip a blank onto a label that differs from the one before it.
    """
    if s_next in (s, s + 1):
        return 1 <= s_next <= len(ext)
    if s_next == s + 2 and s_next <= len(ext):
        return ext[s_next - 1] != BLANK and ext[s_next - 1] != ext[s - 1]
    return False


@dataclass(frozen=True)
class Lattice:
    """The CTC lattice of ``labels`` over ``T`` frames, from the recursion of the forward pass."""

    labels: str
    T: int
    ext: tuple[str, ...]
    nodes: frozenset  # (t, s) on at least one valid path
    edges: frozenset  # ((t, s), (t + 1, s2)) used by at least one valid path
    forbidden: frozenset  # ((t, s), (t + 1, s + 2)): a skip between equal labels, both on paths
    count: int  # number of valid paths


def lattice(labels: str, T: int) -> Lattice:
    """The nodes and transitions of the valid paths, by forward and backward path counting."""
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T: expected an integer >= 1, got {T!r}")
    ext = extended_labelling(labels)
    S = len(ext)
    starts, ends = {1, 2} & set(range(1, S + 1)), {S - 1, S} & set(range(1, S + 1))
    forward = {(1, s): 1 for s in starts}  # number of path prefixes ending at (t, s)
    for t in range(2, T + 1):
        for s in range(1, S + 1):
            n = sum(forward.get((t - 1, p), 0) for p in (s, s - 1, s - 2)
                    if p >= 1 and step_allowed(ext, p, s))
            if n:
                forward[t, s] = n
    backward = {(T, s): 1 for s in ends}  # number of path suffixes starting at (t, s)
    for t in range(T - 1, 0, -1):
        for s in range(1, S + 1):
            n = sum(backward.get((t + 1, q), 0) for q in (s, s + 1, s + 2)
                    if step_allowed(ext, s, q))
            if n:
                backward[t, s] = n
    nodes = frozenset(k for k in forward if k in backward)
    edges, forbidden = set(), set()
    for t, s in nodes:
        for s2 in (s, s + 1, s + 2):
            if (t + 1, s2) not in nodes:
                continue
            if step_allowed(ext, s, s2):
                edges.add(((t, s), (t + 1, s2)))
            elif s2 == s + 2 and ext[s2 - 1] != BLANK:
                forbidden.add(((t, s), (t + 1, s2)))
    count = sum(forward.get((T, s), 0) for s in ends)
    return Lattice(labels, T, tuple(ext), nodes, frozenset(edges), frozenset(forbidden), count)


def valid_paths(labels: str, T: int) -> list[tuple[int, ...]]:
    """Every valid path as its sequence of positions ``s_1..s_T``, in lexicographic order."""
    lat = lattice(labels, T)
    paths = [(s,) for s in (1, 2) if (1, s) in lat.nodes]
    for t in range(2, T + 1):
        paths = [p + (s2,) for p in paths for s2 in (p[-1], p[-1] + 1, p[-1] + 2)
                 if ((t - 1, p[-1]), (t, s2)) in lat.edges]
    return sorted(paths)


def _xy(t, s):
    return float(t), -float(s)


def draw_lattice(ax, lat: Lattice, *, show_forbidden=True, faint_invalid=True, node_radius=0.2,
                 label_rows=True, fontsize=FONT_MIN_PT, edge_role="neutral", gids=True):
    """The lattice of ``lat`` on ``ax``: every (t, s), the valid nodes filled, the transitions."""
    S = len(lat.ext)
    for t in range(1, lat.T + 1):
        for s in range(1, S + 1):
            valid = (t, s) in lat.nodes
            if not valid and not faint_invalid:
                continue
            role = "state" if lat.ext[s - 1] != BLANK else "neutral"
            node = Circle(_xy(t, s), node_radius, zorder=3, linewidth=1.2,
                          facecolor=tint(role) if valid else "white",
                          edgecolor=strong(role) if valid else "#BBBBBB")
            if gids and valid:
                node.set_gid(f"node:{t}:{s}")
            ax.add_patch(node)
    for (t, s), (t2, s2) in sorted(lat.edges):
        arrow(ax, _xy(t, s), _xy(t2, s2), role=edge_role, width=1.1, shrink=7,
              gid=f"edge:{t}:{s}:{s2}" if gids else None, alpha=0.75)
    if show_forbidden:
        for (t, s), (t2, s2) in sorted(lat.forbidden):
            arrow(ax, _xy(t, s), _xy(t2, s2), role=FORBIDDEN, width=1.3, shrink=7,
                  linestyle=(0, (3, 2)), gid=f"forbidden:{t}:{s}:{s2}" if gids else None)
            ax.text((t + t2) / 2, -(s + s2) / 2, "✗", color=FORBIDDEN, fontsize=fontsize,
                    ha="center", va="center", fontweight="bold", zorder=5,
                    bbox=dict(boxstyle="circle,pad=0.1", facecolor="white", edgecolor="none"))
    if label_rows:
        for s in range(1, S + 1):
            ax.text(0.35, -s, f"{lat.ext[s - 1]}", ha="right", va="center", fontsize=fontsize,
                    color=strong("state") if lat.ext[s - 1] != BLANK else strong("neutral"),
                    fontweight="bold")


def lattice_figure(labels: str = "abb", T: int = 6):
    """The lattice of a labelling with a repeat: allowed transitions, the forbidden skip."""
    lat = lattice(labels, T)
    S = len(lat.ext)
    fig, axes = new_figure(6.2, 4.6)
    ax = axes[0, 0]
    draw_lattice(ax, lat)
    for t in range(1, T + 1):
        ax.text(t, -0.35, f"{t}", ha="center", va="bottom", fontsize=FONT_MIN_PT)
    ax.text(0.35, -0.35, "t", ha="right", va="bottom", fontsize=FONT_MIN_PT, style="italic")
    ax.text(-0.35, -0.35, "l′", ha="center", va="bottom", fontsize=FONT_MIN_PT,
            fontweight="bold")
    ax.text(-0.35, -(S + 1.05),
            tr("l = {labels},  T = {T}:  {count} valid paths").format(labels=labels, T=T,
                                                                       count=lat.count),
            ha="left", va="center", fontsize=FONT_MIN_PT)
    ax.text(-0.35, -(S + 1.65),
            tr("✗ = skip forbidden between equal labels (B would merge them)"),
            ha="left", va="center", fontsize=FONT_MIN_PT, color=FORBIDDEN)
    fit(ax, -0.9, T + 0.5, -(S + 2.0), 0.0)
    return fig


def valid_paths_figure(labels: str = "ab", T: int = 3):
    """Every valid path of a small example, one small lattice each, with its symbols."""
    paths = valid_paths(labels, T)
    lat = lattice(labels, T)
    S = len(lat.ext)
    ncols = min(len(paths), 3)
    nrows = -(-len(paths) // ncols)
    fig, axes = new_figure(6.2, 2.3 * nrows, ncols=ncols, nrows=nrows)
    for ax in axes.flat[len(paths):]:
        ax.set_visible(False)
    for ax, path in zip(axes.flat, paths, strict=False):
        draw_lattice(ax, lat, show_forbidden=False, gids=False, edge_role="#CCCCCC")
        for t in range(1, T):
            arrow(ax, _xy(t, path[t - 1]), _xy(t + 1, path[t]), role="output", width=2.6,
                  shrink=7, zorder=4, gid=f"path:{''.join(map(str, path))}:{t}")
        for t, s in enumerate(path, start=1):
            ax.add_patch(Circle(_xy(t, s), 0.2, facecolor=strong("output"), zorder=5))
        symbols = [lat.ext[s - 1] for s in path]
        ax.text((T + 1) / 2, -(S + 0.9), f"π = {' '.join(symbols)}", ha="center", va="center",
                fontsize=FONT_MIN_PT)
        fit(ax, -0.1, T + 0.6, -(S + 1.3), -0.4)
    fig.suptitle(tr("The {n} paths of length T = {T} with B(π) = {labels}").format(
        n=len(paths), T=T, labels=labels),
                 fontsize=FONT_MIN_PT + 1)
    return fig


HELLO_PATH = ("h", "h", "e", BLANK, "l", "l", BLANK, "l", "o", "o")


def hello_alignment_figure(path=HELLO_PATH):
    """A path for "hello", frame by frame, and the two steps of B that turn it into "hello"."""
    T = len(path)
    collapsed = collapse(path)
    fig, axes = new_figure(6.2, 3.6)
    ax = axes[0, 0]
    width = 0.86
    for t, symbol in enumerate(path, start=1):
        role = "neutral" if symbol == BLANK else "output"
        box(ax, t, 0, symbol, role=role, width=width, height=0.8, gid=f"frame:{t}")
        ax.text(t, 0.6, f"{t}", ha="center", va="bottom", fontsize=FONT_MIN_PT,
                color=strong("neutral"))
    ax.text(0.3, 0.6, "t", ha="right", va="bottom", fontsize=FONT_MIN_PT)
    ax.text(0.3, 0, "π", ha="right", va="center", fontsize=FONT_PT, fontweight="bold")
    # runs of equal symbols merge: one box per run, centred under the run
    runs, start = [], 1
    for t in range(2, T + 2):
        if t == T + 1 or path[t - 1] != path[t - 2]:
            runs.append((start, t - 1, path[start - 1]))
            start = t
    for first, last, symbol in runs:
        centre = (first + last) / 2
        role = "neutral" if symbol == BLANK else "output"
        box(ax, centre, -1.5, symbol, role=role, width=width, height=0.7)
        for t in range(first, last + 1):
            arrow(ax, (t, -0.42), (centre, -1.13), role="neutral", width=1.0, shrink=1)
    ax.text(0.3, -1.5, tr("merge\nrepeats"), ha="right", va="center", fontsize=FONT_MIN_PT)
    kept = [(i, (first + last) / 2, symbol)
            for i, (first, last, symbol) in enumerate(runs) if symbol != BLANK]
    n = len(kept)
    for j, (_, centre, symbol) in enumerate(kept):
        x = (T + 1) / 2 + (j - (n - 1) / 2) * 1.0
        box(ax, x, -3.0, symbol, role="output", width=width, height=0.7)
        arrow(ax, (centre, -1.86), (x, -2.63), role="neutral", width=1.0, shrink=1)
    ax.text(0.3, -3.0, tr("drop ε"), ha="right", va="center", fontsize=FONT_MIN_PT)
    ax.text((T + 1) / 2, -3.75, f"B(π) = {collapsed}", ha="center", va="center",
            fontsize=FONT_PT, fontweight="bold")
    fit(ax, -1.2, T + 0.6, -4.0, 1.1)
    return fig


def alpha_beta_figure(labels: str = "cat", T: int = 6, node=(3, 4)):
    """α flows into a node from the left, β from the right; together they cover its paths."""
    lat = lattice(labels, T)
    S = len(lat.ext)
    t0, s0 = node
    if node not in lat.nodes:
        raise ValueError(f"node: {node} is on no valid path of {labels!r} over {T} frames")
    fig, axes = new_figure(6.2, 4.7)
    ax = axes[0, 0]
    prefix, suffix = {node}, {node}
    for t in range(t0 - 1, 0, -1):  # the nodes from which a path prefix reaches the node
        prefix |= {a for a, b in lat.edges if a[0] == t and b in prefix}
    for t in range(t0 + 1, T + 1):
        suffix |= {b for a, b in lat.edges if b[0] == t and a in suffix}
    for (t, s) in prefix - {node}:
        ax.add_patch(Circle(_xy(t, s), 0.36, facecolor=tint("input"), edgecolor="none",
                            zorder=1))
    for (t, s) in suffix - {node}:
        ax.add_patch(Circle(_xy(t, s), 0.36, facecolor=tint("output"), edgecolor="none",
                            zorder=1))
    draw_lattice(ax, lat, show_forbidden=False, edge_role="#BBBBBB", gids=False)
    for a, b in sorted(lat.edges):
        if a in prefix and b in prefix:
            arrow(ax, _xy(*a), _xy(*b), role="input", width=2.0, shrink=7, zorder=4,
                  gid=f"alpha:{a[0]}:{a[1]}:{b[1]}")
        if a in suffix and b in suffix:
            arrow(ax, _xy(*b), _xy(*a), role="output", width=2.0, shrink=7, zorder=4,
                  gid=f"beta:{a[0]}:{a[1]}:{b[1]}")
    ax.add_patch(Circle(_xy(t0, s0), 0.27, facecolor="white", edgecolor="black", linewidth=2.2,
                        zorder=6))
    for t in range(1, T + 1):
        ax.text(t, -0.35, f"{t}", ha="center", va="bottom", fontsize=FONT_MIN_PT)
    ax.text(0.35, -0.35, "t", ha="right", va="bottom", fontsize=FONT_MIN_PT, style="italic")
    ax.text(-0.35, -(S + 1.0),
            tr(r"$\alpha_{t}({s})$: prefixes, flowing right →").format(t=t0, s=s0),
            ha="left", va="center", fontsize=FONT_MIN_PT, color=strong("input"),
            fontweight="bold")
    ax.text(-0.35, -(S + 1.6),
            tr(r"$\beta_{t}({s})$: suffixes, flowing left ←").format(t=t0, s=s0),
            ha="left", va="center", fontsize=FONT_MIN_PT, color=strong("output"),
            fontweight="bold")
    ax.text(-0.35, -(S + 2.2), tr("paths through ({t}, {s}):  ").format(t=t0, s=s0)
            + rf"$\alpha_{t0}({s0})\,\beta_{t0}({s0})\,/\,y^{{{t0}}}_{{{lat.ext[s0 - 1]}}}$",
            ha="left", va="center", fontsize=FONT_MIN_PT)
    fit(ax, -0.9, T + 0.5, -(S + 2.5), 0.0)
    return fig
