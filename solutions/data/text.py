"""The character language model's text: the course's own book pages, read from the repository.

The corpus is the prose of every ``book/**/*.md`` page (licence CC BY 4.0, the book's footer in
``_config.yml``), in sorted path order, with the parts that are not prose **stripped**: the YAML
front matter, fenced code blocks (code cells included), display math (``$$ ... $$`` and
``{math}`` blocks) and HTML comments. Inline math, MyST roles and admonition text stay. Nothing
is downloaded; the text changes when the book does, so a run records the corpus' length and
SHA-256 (:func:`corpus_fingerprint`).

Split: the text is cut into chunks of ``chunk`` characters and every ``heldout_every``-th chunk
is held out, so the held-out text samples every chapter.

Truncated BPTT batches (:func:`bptt_batch`): the training text is cut into ``rows`` contiguous
streams, one per batch row; batch ``step`` is the window ``[step * T, (step + 1) * T)`` of every
stream (wrapping round at its end), and the target is the input shifted by one character. Row
``r`` of batch ``step + 1`` continues row ``r`` of batch ``step``, which is what lets a model
carry its hidden state across batches. Like every generator in :mod:`solutions.data`, a batch is a
pure function of the step.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from solutions._validate import check_positive_int

BOOK = Path(__file__).resolve().parents[2] / "book"
UNKNOWN = "\N{REPLACEMENT CHARACTER}"  # stands for characters too rare to get their own id

_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.DOTALL)
_FENCE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,}).*?^[ \t]*(?P=fence)[ \t]*$",
                    re.DOTALL | re.MULTILINE)
_DISPLAY_MATH = re.compile(r"\$\$.*?\$\$", re.DOTALL)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_BLANK_LINES = re.compile(r"\n{3,}")


def strip_to_prose(markdown: str) -> str:
    """``markdown`` without front matter, fenced blocks, display math and HTML comments."""
    text = _FRONT_MATTER.sub("", markdown)
    for pattern in (_FENCE, _DISPLAY_MATH, _HTML_COMMENT):
        text = pattern.sub("", text)
    return _BLANK_LINES.sub("\n\n", text).strip() + "\n"


def book_text(book: Path | str = BOOK) -> str:
    """The prose of every page under ``book`` (see the module docstring), pages in path order."""
    book = Path(book)
    pages = sorted(book.rglob("*.md"))
    if not pages:
        raise FileNotFoundError(f"book: no .md pages under {book}")
    return "\n".join(strip_to_prose(page.read_text(encoding="utf-8")) for page in pages)


def corpus_fingerprint(text: str) -> dict:
    """Length and SHA-256 of ``text``, recorded with a run so its corpus can be identified."""
    return {"chars": len(text), "sha256": hashlib.sha256(text.encode()).hexdigest()}


def split_text(text: str, chunk: int = 2000, heldout_every: int = 10) -> tuple[str, str]:
    """``(train, heldout)``: every ``heldout_every``-th chunk of ``chunk`` characters is held
    out."""
    chunk = check_positive_int("chunk", chunk)
    heldout_every = check_positive_int("heldout_every", heldout_every)
    if heldout_every < 2:
        raise ValueError(f"heldout_every: expected at least 2, got {heldout_every}")
    pieces = [text[i : i + chunk] for i in range(0, len(text), chunk)]
    heldout = [p for k, p in enumerate(pieces) if k % heldout_every == heldout_every - 1]
    train = [p for k, p in enumerate(pieces) if k % heldout_every != heldout_every - 1]
    return "".join(train), "".join(heldout)


@dataclass(frozen=True)
class CharVocab:
    """Character ids: the characters seen at least ``min_count`` times in the training text, in
    order of first appearance, and ``UNKNOWN`` (id 0) for the rest."""

    chars: str

    @classmethod
    def build(cls, text: str, min_count: int = 2) -> CharVocab:
        counts: dict[str, int] = {}
        for char in text:
            counts[char] = counts.get(char, 0) + 1
        return cls(UNKNOWN + "".join(c for c, k in counts.items() if k >= min_count
                                     and c != UNKNOWN))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """``(len(text),)`` int64 ids; unknown characters map to 0."""
        index = {c: i for i, c in enumerate(self.chars)}
        return np.array([index.get(c, 0) for c in text], dtype=np.int64)

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def bptt_batch(ids: np.ndarray, step: int, rows, num_rows: int, seq_len: int):
    """Rows ``rows`` of batch ``step`` of truncated BPTT over ``ids`` cut into ``num_rows`` streams.

    Returns ``(x, y)``, int64 arrays of shape ``(len(rows), seq_len)``; ``y`` is ``x`` shifted by
    one character. Stream ``r`` starts at ``r * L``, ``L = (len(ids) - 1) // num_rows``, and holds
    ``W = L // seq_len`` windows; batch ``step`` reads window ``step % W``. After the last window
    a stream starts again from its beginning (the one seam where a carried state is stale).
    """
    num_rows = check_positive_int("num_rows", num_rows)
    seq_len = check_positive_int("seq_len", seq_len)
    stream_len = (len(ids) - 1) // num_rows
    windows = stream_len // seq_len
    if windows < 1:
        raise ValueError(f"seq_len: {seq_len} is longer than a stream of {stream_len} characters "
                         f"({len(ids)} characters in {num_rows} rows); lower --seq-len or "
                         f"--batch-size")
    start = (step % windows) * seq_len
    rows = list(rows)
    x = np.empty((len(rows), seq_len), dtype=np.int64)  # (N, T)
    y = np.empty((len(rows), seq_len), dtype=np.int64)  # (N, T)
    for k, r in enumerate(rows):
        offset = r * stream_len + start
        x[k] = ids[offset : offset + seq_len]
        y[k] = ids[offset + 1 : offset + seq_len + 1]
    return x, y


def unigram_bigram_perplexity(train: np.ndarray, heldout: np.ndarray,
                              vocab_size: int) -> dict:
    """Held-out perplexities of the add-one smoothed unigram and bigram models of ``train``.

    ``exp`` of the mean negative log-likelihood per held-out character; the bigram predicts each
    character from the one before it (the first held-out character from the unigram).
    """
    unigram = np.bincount(train, minlength=vocab_size) + 1.0
    unigram /= unigram.sum()
    pairs = np.ones((vocab_size, vocab_size))
    np.add.at(pairs, (train[:-1], train[1:]), 1.0)
    bigram = pairs / pairs.sum(axis=1, keepdims=True)
    nll_unigram = -np.log(unigram[heldout]).mean()
    nll_bigram = -(np.log(unigram[heldout[0]]) + np.log(bigram[heldout[:-1], heldout[1:]]).sum())
    return {"unigram": float(np.exp(nll_unigram)),
            "bigram": float(np.exp(nll_bigram / len(heldout)))}
