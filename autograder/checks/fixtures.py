"""What the fixtures of the visible tests are made of: small inputs and the reference outputs.

Each assignment's module (``rnn.py``, ``ctc.py``, ...) has a ``fixtures(rng)`` function that the
release (``python -m autograder release``) calls with a seeded generator and stores as
``fixtures.npz`` next to the student's notebook. A group of cases is stored under keys
``"<group><i>_<name>"`` (e.g. ``"step0_x"``), which ``gradcheck.fixture_cases`` reads back as a list
of dicts. Each group covers the edge cases of the hidden tests (batch of one, one time step,
``D != H``, saturated units, a blank other than 0, ...), so a student sees them too.

The fixture functions import ``solutions`` when they run, never at import: the checks travel
without it into the sandbox that re-verifies a submission.
"""

from __future__ import annotations

import numpy as np

# (N, T, D, H, scale) of the layer fixtures: a moderate case, a batch of one with one time step,
# and a longer one whose large weights saturate tanh and the sigmoids.
LAYER_CASES = [(3, 5, 4, 6, 1.0), (1, 1, 2, 3, 1.0), (2, 12, 3, 3, 2.5)]


def layer_weights(rng: np.random.Generator, D: int, H: int, gates: int, scale: float):
    """``(Wx, Wh)`` scaled like 1/sqrt(fan_in): pre-activations of order ``scale``."""
    return (rng.normal(0, scale / np.sqrt(D), (D, gates * H)),
            rng.normal(0, scale / np.sqrt(H), (H, gates * H)))


def store(fixtures: dict, group: str, i: int, **arrays) -> None:
    """Add case ``i`` of ``group`` to ``fixtures`` (keys ``"<group><i>_<name>"``)."""
    for name, value in arrays.items():
        fixtures[f"{group}{i}_{name}"] = np.asarray(value)
