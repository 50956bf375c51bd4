"""Reference numbers for the CTC lattice explorer (``book/_static/ctc-explorer.js``).

The build writes them as JSON beside the script; ``tests/test_figures.py`` runs the script's own
counting and forward functions on the same inputs in a browser and compares.
"""

from __future__ import annotations

import numpy as np

from solutions.ctc import ctc_forward, ctc_loss

# (labelling, frames, seed): no repeat, a repeat that forces a blank, the book's "hello", and a
# labelling that needs every frame (T = U + number of repeats).
CASES = (("cat", 5, 1), ("abb", 6, 2), ("hello", 8, 3), ("aa", 3, 4))


def symbols_of(labels: str) -> list[str]:
    """The explorer's classes: the blank (id 0), then the distinct letters in order."""
    return ["ε", *dict.fromkeys(labels)]


def label_ids(labels: str) -> list[int]:
    symbols = symbols_of(labels)
    return [symbols.index(letter) for letter in labels]


def path_count(labels: str, T: int) -> int:
    """The number of paths of length ``T`` that collapse to ``labels``, from the reference forward
    pass: under a uniform output every path has probability ``C**-T``."""
    C = len(symbols_of(labels))
    log_probs = np.full((T, C), -np.log(C))
    log_p = np.logaddexp.reduce(ctc_forward(log_probs, label_ids(labels))[-1, -2:])
    return int(round(float(np.exp(log_p + T * np.log(C)))))


def random_log_probs(labels: str, T: int, seed: int) -> np.ndarray:
    """A small random network output (T, C): the log-softmax of Gaussian scores."""
    scores = np.random.default_rng(seed).normal(scale=1.5, size=(T, len(symbols_of(labels))))
    return scores - np.logaddexp.reduce(scores, axis=1, keepdims=True)


def cases() -> list[dict]:
    """Each case: the inputs, the number of valid paths, and alpha (T, 2U+1) as probabilities."""
    result = []
    for labels, T, seed in CASES:
        log_probs = random_log_probs(labels, T, seed)
        log_alpha = ctc_forward(log_probs, label_ids(labels))
        result.append({
            "labels": labels,
            "frames": T,
            "symbols": symbols_of(labels),
            "label_ids": label_ids(labels),
            "paths": path_count(labels, T),
            "log_probs": log_probs.tolist(),
            "alpha": np.exp(log_alpha).tolist(),
            "probability": float(np.exp(-ctc_loss(log_probs, label_ids(labels)))),
        })
    return result
