"""The book's figures, drawn by code during the build (``book/_ext/figures_build.py``).

Each entry of ``FIGURES`` names a function that returns a matplotlib figure and the page that
shows it; the build writes ``<name>.svg`` into the git-ignored ``book/figures/_generated/``, and
the page shows it with a ``{figure}`` block that gives its alt text and caption. The Chinese
build (``COURSE_LANGUAGE=zh_CN``) also writes ``<name>.zh_CN.svg``, with every label through
:func:`solutions.language.tr`; Sphinx shows that file in the translated book
(``figure_language_filename``, ``{root}.{language}{ext}``).

    python -m figures OUT_DIR    # (from book/) write every figure, to look at them
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt

from solutions.language import language

from . import beam, cells, convlstm, ctc, rnn
from .style import rc

GENERATED = Path(__file__).resolve().parent / "_generated"


@dataclass(frozen=True)
class FigureSpec:
    name: str  # the SVG's file name, without .svg
    draw: Callable  # () -> matplotlib Figure
    page: str  # the page that shows it, e.g. "book/ctc/01-alignment"


FIGURES = [
    FigureSpec("rnn_folded_unrolled", rnn.folded_unrolled_figure, "book/rnn/01-recurrence"),
    FigureSpec("rnn_bptt_graph", rnn.bptt_figure, "book/rnn/02-bptt"),
    FigureSpec("rnn_bidirectional", rnn.bidirectional_figure, "book/rnn/04-architectures"),
    FigureSpec("rnn_layouts", rnn.layouts_figure, "book/rnn/04-architectures"),
    FigureSpec("lstm_steps", cells.lstm_steps_figure, "book/lstm_gru/01-lstm"),
    FigureSpec("gru_steps", cells.gru_steps_figure, "book/lstm_gru/03-gru"),
    FigureSpec("convlstm_cell", convlstm.convlstm_cell_figure, "book/convlstm/01-convlstm-cell"),
    FigureSpec("convlstm_receptive_field", convlstm.receptive_field_figure,
               "book/convlstm/03-kernel-size-and-speed"),
    FigureSpec("ctc_hello_alignment", ctc.hello_alignment_figure, "book/ctc/01-alignment"),
    FigureSpec("ctc_valid_paths", ctc.valid_paths_figure, "book/ctc/01-alignment"),
    FigureSpec("ctc_lattice", ctc.lattice_figure, "book/ctc/02-forward-backward"),
    FigureSpec("ctc_alpha_beta", ctc.alpha_beta_figure, "book/ctc/02-forward-backward"),
    FigureSpec("ctc_beam_tree", beam.beam_tree_figure, "book/ctc/04-decoding"),
]


def draw(spec: FigureSpec):
    """The figure of ``spec``, drawn with the fonts of the course's language: a text takes the
    fonts in effect when it is created."""
    with plt.rc_context(rc()):
        return spec.draw()


def svg_bytes(figure) -> bytes:
    """``figure`` as SVG with its text as text, the same bytes on every run."""
    buffer = io.BytesIO()
    with plt.rc_context(rc()):
        figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight",
                       pad_inches=0.05)
    return buffer.getvalue()


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` atomically, and only if it differs from what is there.

    An unchanged file keeps its time stamp, so Sphinx does not rebuild the pages that show it;
    the atomic replace lets two builds of the same tree run at once.
    """
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return True


def svg_path(folder: Path, name: str, lang: str) -> Path:
    """``<name>.svg`` in English, ``<name>.<lang>.svg`` in another language."""
    return Path(folder) / (f"{name}.svg" if lang == "en" else f"{name}.{lang}.svg")


@contextlib.contextmanager
def course_language(lang: str):
    """Draw in ``lang`` inside the block, whatever ``COURSE_LANGUAGE`` says outside it."""
    saved = os.environ.get("COURSE_LANGUAGE")
    os.environ["COURSE_LANGUAGE"] = lang
    try:
        yield
    finally:
        if saved is None:
            del os.environ["COURSE_LANGUAGE"]
        else:
            os.environ["COURSE_LANGUAGE"] = saved


def write_all(folder: Path = GENERATED) -> list[Path]:
    """Draw every figure into ``folder/<name>.svg`` (English) and, when ``COURSE_LANGUAGE`` asks
    for another language, into ``folder/<name>.<language>.svg`` too; return the paths that
    changed."""
    changed = []
    for lang in dict.fromkeys(("en", language())):
        with course_language(lang):
            for spec in FIGURES:
                figure = draw(spec)
                try:
                    path = svg_path(folder, spec.name, lang)
                    if write_if_changed(path, svg_bytes(figure)):
                        changed.append(path)
                finally:
                    plt.close(figure)
    return changed
