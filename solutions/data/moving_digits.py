"""Moving digits (Srivastava et al. 2015): two digits bouncing inside a 64x64 frame.

Each digit, a glyph from :mod:`solutions.data.glyphs` centred in a ``digit_size`` square, starts
at a random position with a random direction and moves ``speed`` pixels per frame (drawn per
digit from a range, so faster motion can be asked for); at a border it bounces. Frames are the
pixel-wise maximum of the digits, in ``[0, 1]``. The first ``T_in`` frames are the input, the
next ``K`` the frames to predict.

:func:`load_moving_mnist` reads the standard ``mnist_test_seq.npy`` of Srivastava et al.
(uint8, shape ``(20, N, 64, 64)``, frames first), and :class:`MovingMNISTFile` draws batches
from it the same way the generator does: row ``i`` of batch ``step`` depends only on
``(seed, step, i)``.
"""

from __future__ import annotations

import numpy as np

from solutions._validate import check_positive_int
from solutions.data import sample_rng
from solutions.data.glyphs import glyph_bank


def _trajectory(rng, num_frames: int, limit: float, speed: tuple[float, float]) -> np.ndarray:
    """Top-left corners ``(num_frames, 2)`` of a digit bouncing in ``[0, limit]^2``."""
    pos = rng.uniform(0, limit, size=2)
    angle = rng.uniform(0, 2 * np.pi)
    velocity = rng.uniform(*speed) * np.array([np.sin(angle), np.cos(angle)])  # (dy, dx)
    out = np.empty((num_frames, 2))
    for t in range(num_frames):
        out[t] = pos
        pos = pos + velocity
        for axis in range(2):  # reflect at the borders
            if pos[axis] < 0:
                pos[axis], velocity[axis] = -pos[axis], -velocity[axis]
            elif pos[axis] > limit:
                pos[axis], velocity[axis] = 2 * limit - pos[axis], -velocity[axis]
    return out


def _digit_patch(glyph: np.ndarray, digit_size: int) -> np.ndarray:
    patch = np.zeros((digit_size, digit_size), dtype=np.float32)
    h, w = glyph.shape
    w = min(w, digit_size)
    top, left = (digit_size - h) // 2, (digit_size - w) // 2
    patch[top : top + h, left : left + w] = glyph[:, :w]
    return patch


def moving_digits_batch(
    seed: int,
    step: int,
    indices,
    num_frames: int = 20,
    size: int = 64,
    num_digits: int = 2,
    digit_size: int = 28,
    speed: tuple[float, float] = (3.0, 4.0),
    split: str = "train",
) -> np.ndarray:
    """Rows ``indices`` of batch ``step``: frames ``(N, num_frames, 1, size, size)``, float32.

    ``speed`` is the range of pixels per frame (Srivastava et al.'s sequences move about 3.6);
    glyphs come from the fonts of ``split`` (``"train"`` or ``"heldout"``).
    """
    for name, value in (("num_frames", num_frames), ("size", size), ("num_digits", num_digits),
                        ("digit_size", digit_size)):
        check_positive_int(name, value)
    if digit_size > size:
        raise ValueError(f"digit_size: must not exceed size ({size}), got {digit_size}")
    if len(speed) != 2 or not 0 <= speed[0] <= speed[1]:
        raise ValueError(f"speed: expected a range (low, high) with 0 <= low <= high, got {speed}")
    bank = glyph_bank(split, max(1, round(digit_size * 0.8)))
    indices = list(indices)
    frames = np.zeros((len(indices), num_frames, 1, size, size), dtype=np.float32)
    limit = size - digit_size
    for row, i in enumerate(indices):
        rng = sample_rng(seed, step, i)
        for _ in range(num_digits):
            glyphs = bank[int(rng.integers(len(bank)))]
            patch = _digit_patch(glyphs[int(rng.integers(10))], digit_size)
            corners = np.rint(_trajectory(rng, num_frames, limit, speed)).astype(int)
            for t, (y, x) in enumerate(corners):
                region = frames[row, t, 0, y : y + digit_size, x : x + digit_size]
                np.maximum(region, patch, out=region)
    return frames


def load_moving_mnist(path) -> np.ndarray:
    """``mnist_test_seq.npy`` as uint8 ``(N, 20, 1, 64, 64)`` (memory-mapped, sequences first)."""
    data = np.load(path, mmap_mode="r")
    if data.ndim != 4 or data.shape[2:] != (64, 64):
        raise ValueError(f"path: expected an array of shape (T, N, 64, 64) as in "
                         f"mnist_test_seq.npy, got {data.shape}")
    return data.transpose(1, 0, 2, 3)[:, :, None]


class MovingMNISTFile:
    """Batches from ``mnist_test_seq.npy``; the last ``eval_size`` sequences are held out."""

    def __init__(self, path, eval_size: int = 1000) -> None:
        self.data = load_moving_mnist(path)
        if not 0 < eval_size < len(self.data):
            raise ValueError(f"eval_size: expected between 1 and {len(self.data) - 1} "
                             f"for a file of {len(self.data)} sequences, got {eval_size}")
        self.num_train = len(self.data) - eval_size

    def batch(self, seed: int, step: int, indices) -> np.ndarray:
        """Training rows: row ``i`` of batch ``step`` is picked by ``sample_rng(seed, step, i)``."""
        picks = [int(sample_rng(seed, step, i).integers(self.num_train)) for i in indices]
        return self.data[picks].astype(np.float32) / 255.0

    def heldout(self, count: int) -> np.ndarray:
        """The first ``count`` held-out sequences, float32 in ``[0, 1]``."""
        stop = self.num_train + min(count, len(self.data) - self.num_train)
        return self.data[self.num_train : stop].astype(np.float32) / 255.0
