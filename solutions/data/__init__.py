"""Synthetic data for the training examples, generated on the fly with no download.

- :mod:`solutions.data.adding`: the adding problem (Hochreiter & Schmidhuber 1997).
- :mod:`solutions.data.glyphs`: digit glyphs rendered from the fonts matplotlib ships, with a
  fixed split of fonts into training and held-out styles.
- :mod:`solutions.data.ocr`: images of digit strings for CTC (varied glyphs, affine and elastic
  distortion, stroke width, noise, spacing and length).
- :mod:`solutions.data.moving_digits`: two digits bouncing in a 64x64 frame (Srivastava et al.
  2015), and a loader for the standard ``mnist_test_seq.npy``.
- :mod:`solutions.data.text`: the book's own prose for the character language model, its split,
  vocabulary and truncated-BPTT batches.
- :mod:`solutions.data.numerals`: Chinese number words <-> Arabic numerals, and the numbers of the
  encoder-decoder task.

Every generator draws sample ``i`` of step ``step`` from its own random stream seeded by
``(seed, step, i)``. A batch is therefore a pure function of the step number and the row indices:
a resumed run sees the same data as an uninterrupted one, and the ranks of a distributed run can
each draw their own rows of the same global batch.
"""

import numpy as np


def sample_rng(seed: int, step: int, index: int) -> np.random.Generator:
    """The random stream of sample ``index`` of batch ``step`` in the stream ``seed``."""
    return np.random.default_rng((seed, step, index))
