"""The adding problem (Hochreiter & Schmidhuber 1997, experiment 4).

Each input is a sequence of ``T`` pairs ``(value, marker)``: the values are uniform in ``[0, 1)``,
and the markers are 0 except at two positions, one in the first half of the sequence and one in
the second. The target is the sum of the two marked values. Predicting the mean (1) gives a
mean squared error of ``Var(u1 + u2) = 1/6``; a network that has learned the task does far better,
which needs memory over up to ``T`` steps.
"""

from __future__ import annotations

import numpy as np

from solutions._validate import check_positive_int
from solutions.data import sample_rng

BASELINE_MSE = 1.0 / 6.0  # error of always answering 1, the mean of the target


def adding_batch(seed: int, step: int, indices, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``indices`` of batch ``step``.

    Returns ``x`` of shape ``(N, T, 2)`` (value, marker) and the targets ``y`` of shape ``(N,)``,
    both float32, with ``N = len(indices)`` and ``T = seq_len``.
    """
    seq_len = check_positive_int("seq_len", seq_len)
    if seq_len < 2:
        raise ValueError(f"seq_len: the adding problem needs at least 2 steps, got {seq_len}")
    indices = list(indices)
    x = np.zeros((len(indices), seq_len, 2), dtype=np.float32)  # (N, T, 2)
    y = np.zeros(len(indices), dtype=np.float32)  # (N,)
    half = seq_len // 2
    for row, i in enumerate(indices):
        rng = sample_rng(seed, step, i)
        x[row, :, 0] = rng.random(seq_len)
        first = rng.integers(0, half)
        second = rng.integers(half, seq_len)
        x[row, [first, second], 1] = 1.0
        y[row] = x[row, first, 0] + x[row, second, 0]
    return x, y
