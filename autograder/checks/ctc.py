"""Checks of the ``ctc`` assignment: the collapse map, the forward-backward recursions, the loss,
its gradient and the two decoders.

The cases cover empty labellings, repeated labels (which need a blank between them), impossible
alignments (too few frames: the loss is ``inf`` and ``log_alpha`` ends in ``-inf``), a blank other
than 0, a single frame, and a long peaky sequence (hundreds of frames) whose probability underflows
float64 unless the recursion works with logarithms.
"""

from __future__ import annotations

import numpy as np

from autograder.checks.core import Check
from autograder.checks.fixtures import store

# Log-space values in float64: two correct implementations (logaddexp, logsumexp, or scaled
# probabilities) agree to about 1e-13 relative; bugs (a forbidden skip, a missing term) change
# log-probabilities by far more than 1e-7. -inf must appear exactly where no path exists.
RTOL, ATOL = 1e-7, 1e-9

FORBIDDEN = (
    "torch", "tensorflow", "jax", "ctc_loss", "CTCLoss", "torchaudio", "pyctcdecode", "ctcdecode",
)


def _log_softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _labels(rng, U, C, blank, repeats=0.3):
    choices = [k for k in range(C) if k != blank]
    labels = []
    for _ in range(U):
        if labels and rng.random() < repeats:
            labels.append(labels[-1])
        else:
            labels.append(int(rng.choice(choices)))
    return labels


def _case(rng, T, C, labels, blank=0, scale=1.5):
    return {"T": T, "C": C, "blank": blank, "labels": list(labels),
            "log_probs": _log_softmax(rng.normal(0, scale, (T, C)))}


def _alignment_cases(rng):
    """Cases for the recursions, the loss and the gradient."""
    cases = [
        _case(rng, 1, 3, []),  # empty labelling, one frame: the path is a single blank
        _case(rng, 6, 4, []),
        _case(rng, 1, 3, [2]),  # one frame, one label
        _case(rng, 3, 3, [1, 1]),  # repeated label: exactly enough frames for label-blank-label
        _case(rng, 2, 3, [1, 1]),  # impossible: the blank between the two 1s does not fit
        _case(rng, 2, 5, [1, 2, 3]),  # impossible: more labels than frames
        _case(rng, 3, 5, [2, 3, 2]),  # exactly one label per frame, no blank at all
        _case(rng, 12, 4, [1, 1, 1, 2, 2]),
        _case(rng, 8, 4, [0, 1, 0], blank=3),  # blank is the last symbol
        _case(rng, 9, 5, [0, 4, 4, 1], blank=2),  # blank in the middle
        _case(rng, 6, 3, [1, 1, 1]),  # three equal labels need 5 frames: one spare
        _case(rng, 4, 3, [2, 2, 2]),  # impossible: three equal labels need 5 frames
        # Long and peaky: p(labels | x) is about e^-1000, zero in float64 probabilities.
        _case(rng, 300, 6, _labels(rng, 25, 6, 0, 0.2), scale=6.0),
    ]
    while len(cases) < 26:
        C = int(rng.integers(2, 7))
        T = int(rng.integers(1, 16))
        blank = 0 if rng.random() < 0.6 else int(rng.integers(0, C))
        U = int(rng.integers(0, min(T, 6) + 1))
        cases.append(_case(rng, T, C, _labels(rng, U, C, blank), blank))
    return cases


def _f64(value):
    return np.array(value, dtype=np.float64)


def _run_forward(ns, c):
    return {"log_alpha": _f64(ns["ctc_forward"](c["log_probs"], c["labels"], blank=c["blank"]))}


def _run_backward(ns, c):
    return {"log_beta": _f64(ns["ctc_backward"](c["log_probs"], c["labels"], blank=c["blank"]))}


def _run_loss(ns, c):
    return {"loss": _f64(ns["ctc_loss"](c["log_probs"], c["labels"], blank=c["blank"]))}


def _run_grad(ns, c):
    return {"grad": _f64(ns["ctc_grad"](c["log_probs"], c["labels"], blank=c["blank"]))}


def _path_cases(rng):
    cases = [
        {"path": [], "blank": 0},
        {"path": [0, 0, 0], "blank": 0},
        {"path": [1, 1, 0, 1, 2, 2, 0], "blank": 0},
        {"path": [3, 3, 3], "blank": 0},
        {"path": [1, 0, 0, 1], "blank": 0},
        {"path": [0, 1, 1, 2, 0, 2], "blank": 2},  # with blank 2, the 0 and 1 are labels
        {"path": [4, 4, 1, 4, 4], "blank": 4},
    ]
    while len(cases) < 24:
        C = int(rng.integers(2, 6))
        blank = 0 if rng.random() < 0.6 else int(rng.integers(0, C))
        # Few symbols make repeats and blanks common.
        cases.append({"path": rng.integers(0, C, int(rng.integers(1, 16))).tolist(),
                      "blank": blank})
    return cases


def _run_collapse(ns, c):
    return {"labelling": _f64(list(ns["ctc_collapse"](c["path"], blank=c["blank"])))}


def _label_cases(rng):
    cases = [{"labels": [], "blank": 0}, {"labels": [3], "blank": 0},
             {"labels": [1, 1, 2], "blank": 0}, {"labels": [0, 1, 0], "blank": 2}]
    while len(cases) < 22:
        C = int(rng.integers(2, 8))
        blank = 0 if rng.random() < 0.6 else int(rng.integers(0, C))
        cases.append({"labels": _labels(rng, int(rng.integers(0, 8)), C, blank),
                      "blank": blank})
    return cases


def _run_extend(ns, c):
    return {"extended": _f64(ns["extend_with_blanks"](c["labels"], blank=c["blank"]))}


def _decode_cases(rng):
    def peaky(T, C, path, blank):
        # Put most of the mass on the given path, so the case tests merging and blank removal.
        logits = rng.normal(0, 1, (T, C))
        logits[np.arange(T), path] += 4.0
        return {"T": T, "C": C, "blank": blank, "log_probs": _log_softmax(logits)}

    cases = [
        peaky(7, 3, [1, 1, 0, 1, 2, 2, 0], 0),  # repeats merge, the blank keeps the two 1s apart
        peaky(5, 4, [3, 3, 3, 3, 3], 3),  # all blanks: the empty labelling
        peaky(6, 4, [2, 0, 0, 2, 1, 1], 2),  # blank 2 in the middle
        peaky(1, 3, [1], 0),
    ]
    while len(cases) < 22:
        T, C = int(rng.integers(1, 30)), int(rng.integers(2, 7))
        blank = 0 if rng.random() < 0.6 else int(rng.integers(0, C))
        cases.append({"T": T, "C": C, "blank": blank,
                      "log_probs": _log_softmax(rng.normal(0, 2, (T, C)))})
    return cases


def _run_greedy(ns, c):
    return {"labelling": _f64(list(ns["greedy_decode"](c["log_probs"], blank=c["blank"])))}


def _beam_cases(rng):
    """Exact cases (a beam wider than the number of prefixes) and pruned ones."""
    cases = []
    for i in range(22):
        blank = 0 if i % 3 else int(rng.integers(0, 3))
        if i < 12:
            T, C, width = int(rng.integers(1, 6)), 3, 100  # at most 63 distinct prefixes
        else:
            T, C, width = int(rng.integers(8, 25)), int(rng.integers(3, 6)), int(rng.integers(1, 9))
        cases.append({"T": T, "C": C, "blank": blank, "beam_width": width, "exact": int(i < 12),
                      "log_probs": _log_softmax(rng.normal(0, 1.5, (T, C)))})
    return cases


def _run_beam(ns, c):
    beams = ns["prefix_beam_search"](c["log_probs"], beam_width=c["beam_width"], blank=c["blank"])
    beams = [(list(prefix), float(score)) for prefix, score in beams]
    if not beams:
        raise ValueError("returned no beam")
    out = {"best": _f64(beams[0][0]), "best_log_prob": _f64(beams[0][1])}
    if c["exact"]:
        # Wide beam: every labelling of nonzero probability, best first, with its exact score.
        prefixes = np.full((len(beams), c["T"]), -1.0)
        for k, (prefix, _) in enumerate(beams):
            prefixes[k, :len(prefix)] = prefix
        out["prefixes"] = prefixes
        out["log_probs"] = _f64([score for _, score in beams])
    return out


CHECKS = [
    Check("ctc_collapse", 1, ("ctc_collapse",), _path_cases, _run_collapse, 0.0, 0.0, FORBIDDEN),
    Check("extend_with_blanks", 1, ("extend_with_blanks",), _label_cases, _run_extend, 0.0, 0.0,
          FORBIDDEN),
    Check("ctc_forward", 4, ("ctc_forward",), _alignment_cases, _run_forward, RTOL, ATOL,
          FORBIDDEN),
    Check("ctc_backward", 3, ("ctc_backward",), _alignment_cases, _run_backward, RTOL, ATOL,
          FORBIDDEN),
    Check("ctc_loss", 1, ("ctc_loss",), _alignment_cases, _run_loss, RTOL, ATOL, FORBIDDEN),
    Check("ctc_grad", 3, ("ctc_grad",), _alignment_cases, _run_grad, RTOL, ATOL, FORBIDDEN),
    Check("greedy_decode", 1, ("greedy_decode",), _decode_cases, _run_greedy, 0.0, 0.0,
          FORBIDDEN),
    Check("prefix_beam_search", 3, ("prefix_beam_search",), _beam_cases, _run_beam, RTOL, ATOL,
          FORBIDDEN),
]


# ------------------------------------------------------------------------------------------------
# The fixtures of the visible tests (the student's notebook checks itself with them).


def fixtures(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The fixtures of the visible tests of this assignment (see ``fixtures.py``)."""
    from solutions.ctc import ctc_backward, ctc_forward, ctc_grad, ctc_loss
    from solutions.decode import prefix_beam_search

    f: dict[str, np.ndarray] = {}
    long_labels = [int(k) for k in rng.integers(1, 6, 25)]
    # (T, C, labels, blank, scale of the logits)
    cases = [
        (8, 4, [1, 3, 3], 0, 1.0),  # a repeated label: the blank between the 3s is compulsory
        (10, 5, [0, 4, 4, 1], 2, 1.0),  # a blank other than 0, and label 0
        (6, 3, [], 0, 1.0),  # the empty labelling: only blanks
        (1, 3, [2], 0, 1.0),  # one frame
        (2, 3, [1, 1], 0, 1.0),  # impossible: [1, 1] needs 3 frames; loss inf
        (300, 6, long_labels, 0, 6.0),  # long and peaky: p(l|x) underflows float64
    ]
    for i, (T, C, labels, blank, scale) in enumerate(cases):
        log_probs = _log_softmax(rng.normal(0, scale, (T, C)))
        store(f, "ctc", i, log_probs=log_probs, labels=np.array(labels, dtype=np.int64),
               blank=blank, log_alpha=ctc_forward(log_probs, labels, blank),
               log_beta=ctc_backward(log_probs, labels, blank),
               loss=ctc_loss(log_probs, labels, blank), grad=ctc_grad(log_probs, labels, blank))
    # Beam search: two exact cases (a beam wider than the number of prefixes) and a pruned one.
    for i, (T, C, blank, width) in enumerate([(4, 3, 0, 100), (5, 3, 2, 100), (12, 4, 0, 3)]):
        log_probs = _log_softmax(rng.normal(0, 1.5, (T, C)))
        beams = prefix_beam_search(log_probs, beam_width=width, blank=blank)
        prefixes = np.full((len(beams), T), -1, dtype=np.int64)
        for k, (prefix, _) in enumerate(beams):
            prefixes[k, :len(prefix)] = prefix
        store(f, "beam", i, log_probs=log_probs, blank=blank, beam_width=width,
               prefixes=prefixes, scores=[score for _, score in beams])
    return f
