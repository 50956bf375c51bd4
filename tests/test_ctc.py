"""Specification of solutions.ctc: loss, forward/backward variables and gradient of one sequence.

References are torch.nn.functional.ctc_loss in float64, a brute-force sum over all C^T paths on tiny
problems, finite differences, and the published values of warp-ctc's CPU tests.

Tolerance: every computation is float64 and differs from the reference only by rounding, so the
relative error is expected below 1e-9; 1e-7 leaves room for long sums. Finite differences carry an
O(h^2) truncation error and are held to 1e-6. The warp-ctc values are published to 6 digits and
were produced in float32, so they are held to warp-ctc's own tolerance of 1e-4.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from solutions.ctc import (
    ctc_backward,
    ctc_collapse,
    ctc_forward,
    ctc_grad,
    ctc_loss,
    extend_with_blanks,
)
from solutions.gradcheck import eval_numerical_gradient, rel_error

TOL = 1e-7


def log_softmax(u: np.ndarray) -> np.ndarray:
    m = u.max(axis=-1, keepdims=True)
    return u - m - np.log(np.exp(u - m).sum(axis=-1, keepdims=True))


def torch_loss_and_logit_grad(logits: np.ndarray, labels, blank: int):
    """torch's loss of one sequence and its gradient with respect to the logits."""
    u = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    loss = F.ctc_loss(
        u.log_softmax(-1)[:, None],  # (T, 1, C)
        torch.tensor([list(labels)], dtype=torch.long).reshape(1, -1),
        torch.tensor([logits.shape[0]]),
        torch.tensor([len(labels)]),
        blank=blank,
        reduction="sum",
    )
    loss.backward()
    return loss.item(), u.grad.numpy()


def random_problem(rng, T, C, U, blank, repeats=False):
    labels_pool = [k for k in range(C) if k != blank]
    labels = list(rng.choice(labels_pool, size=U))
    if repeats and U >= 2:
        labels[1] = labels[0]
    logits = rng.normal(scale=2.0, size=(T, C))
    return logits, [int(k) for k in labels]


def test_ctc_collapse_merges_repeats_then_drops_blanks():
    assert ctc_collapse([1, 1, 0, 1, 2, 2, 0]) == [1, 1, 2]
    assert ctc_collapse([0, 0, 0]) == []
    assert ctc_collapse([3, 3, 3], blank=3) == []
    assert ctc_collapse(np.array([2, 2, 1, 1, 2]), blank=1) == [2, 2]


def test_extend_with_blanks_interleaves_blanks():
    np.testing.assert_array_equal(extend_with_blanks([3, 1, 3], blank=0), [0, 3, 0, 1, 0, 3, 0])
    np.testing.assert_array_equal(extend_with_blanks([], blank=4), [4])


@pytest.mark.parametrize(
    "T, C, labels, blank",
    [
        (4, 3, [1, 2], 0),
        (5, 3, [1, 1], 0),
        (5, 4, [2, 0, 2], 3),
        (3, 2, [], 1),
        (6, 3, [1, 2, 1], 0),
    ],
)
def test_ctc_loss_equals_brute_force_sum_over_paths(T, C, labels, blank):
    rng = np.random.default_rng(T * 10 + C)
    log_probs = log_softmax(rng.normal(size=(T, C)))
    p = sum(
        np.exp(log_probs[np.arange(T), list(path)].sum())
        for path in itertools.product(range(C), repeat=T)
        if ctc_collapse(path, blank) == labels
    )
    assert rel_error(ctc_loss(log_probs, labels, blank), -np.log(p)) < TOL


@pytest.mark.parametrize(
    "T, C, U, blank, repeats",
    [
        (1, 2, 0, 0, False),
        (1, 3, 1, 0, False),
        (7, 5, 3, 0, False),
        (7, 5, 3, 4, False),
        (9, 4, 4, 0, True),
        (12, 6, 0, 5, False),
        (30, 10, 12, 0, True),
        (30, 10, 12, 9, True),
        (50, 29, 20, 3, False),
    ],
)
def test_ctc_loss_and_grad_match_torch(T, C, U, blank, repeats):
    rng = np.random.default_rng(1000 * T + 10 * C + blank)
    logits, labels = random_problem(rng, T, C, U, blank, repeats)
    loss, grad = torch_loss_and_logit_grad(logits, labels, blank)
    log_probs = log_softmax(logits)
    assert rel_error(ctc_loss(log_probs, labels, blank), loss) < TOL
    assert rel_error(ctc_grad(log_probs, labels, blank), grad) < TOL


def test_ctc_grad_matches_finite_differences():
    rng = np.random.default_rng(7)
    logits, labels = random_problem(rng, T=6, C=4, U=3, blank=0, repeats=True)
    numeric = eval_numerical_gradient(lambda u: ctc_loss(log_softmax(u), labels), logits)
    assert rel_error(ctc_grad(log_softmax(logits), labels), numeric) < 1e-6


@pytest.mark.parametrize("blank", [0, 3])
def test_alpha_beta_over_y_sums_to_p_at_every_frame(blank):
    rng = np.random.default_rng(blank)
    logits, labels = random_problem(rng, T=15, C=5, U=5, blank=blank, repeats=True)
    log_probs = log_softmax(logits)
    log_alpha = ctc_forward(log_probs, labels, blank)  # (T, S)
    log_beta = ctc_backward(log_probs, labels, blank)  # (T, S)
    emit = log_probs[:, extend_with_blanks(labels, blank)]  # (T, S)
    log_p_per_frame = np.logaddexp.reduce(log_alpha + log_beta - emit, axis=1)  # (T,)
    expected = np.full(len(log_probs), -ctc_loss(log_probs, labels, blank))
    assert rel_error(log_p_per_frame, expected) < TOL
    # beta at frame 0 sums the whole paths too: p = beta[0, 0] + beta[0, 1].
    assert rel_error(np.logaddexp(log_beta[0, 0], log_beta[0, 1]), expected[0]) < TOL


@pytest.mark.parametrize("T, labels", [(2, [1, 1]), (1, [1, 2]), (4, [1, 1, 1])])
def test_ctc_loss_is_inf_and_grad_zero_when_no_alignment_exists(T, labels):
    # Each pair of equal neighbours needs a blank between them: [1, 1] needs T >= 3.
    log_probs = log_softmax(np.random.default_rng(0).normal(size=(T, 3)))
    assert ctc_loss(log_probs, labels) == np.inf
    np.testing.assert_array_equal(ctc_grad(log_probs, labels), np.zeros((T, 3)))


def test_zero_probability_symbols_give_finite_loss_and_grad():
    log_probs = log_softmax(np.random.default_rng(1).normal(size=(6, 4)))
    log_probs[:, 3] = -np.inf  # symbol 3 never emitted, so paths through it have probability 0
    log_probs = log_softmax(log_probs)
    loss = ctc_loss(log_probs, [1, 2])
    # torch's backward turns -inf into nan, so its reference gets a finite stand-in: exp(-1e4) = 0.
    ref, grad = torch_loss_and_logit_grad(np.maximum(log_probs, -1e4), [1, 2], blank=0)
    assert np.isfinite(loss) and rel_error(loss, ref) < TOL
    assert rel_error(ctc_grad(log_probs, [1, 2]), grad) < TOL


def test_long_sequence_does_not_underflow():
    # p is about exp(-8000) here: far below the smallest float64, fine as a log.
    rng = np.random.default_rng(3)
    logits, labels = random_problem(rng, T=2000, C=30, U=600, blank=0)
    loss, grad = torch_loss_and_logit_grad(logits, labels, 0)
    log_probs = log_softmax(logits)
    ours = ctc_loss(log_probs, labels)
    assert np.isfinite(ours) and ours > 1000
    assert rel_error(ours, loss) < TOL
    assert np.abs(ctc_grad(log_probs, labels) - grad).max() < 1e-9


def test_warp_ctc_small_test():
    # baidu-research/warp-ctc, tests/test_cpu.cpp, small_test(): activations are pre-softmax,
    # labels [1, 2], T = 2, so the only path is (1, 2) and p = y[0, 1] * y[1, 2].
    activations = np.array([[0.1, 0.6, 0.1, 0.1, 0.1], [0.1, 0.1, 0.6, 0.1, 0.1]])
    y = np.exp(log_softmax(activations))
    loss = ctc_loss(log_softmax(activations), [1, 2])
    assert abs(np.exp(-loss) - y[0, 1] * y[1, 2]) < 1e-6


# baidu-research/warp-ctc, tests/test_cpu.cpp, options_test(): two sequences of T = 5 over 6
# symbols, blank = 5, activations laid out (t, n, a); the test takes their log as input, and the
# expected gradients (computed with TensorFlow) are with respect to those pre-softmax activations.
WARP_OPTIONS_ACTIVATIONS = np.array(
    [
        [0.633766, 0.221185, 0.0917319, 0.0129757, 0.0142857, 0.0260553],
        [0.30176, 0.28562, 0.0831517, 0.0862751, 0.0816851, 0.161508],
        [0.111121, 0.588392, 0.278779, 0.0055756, 0.00569609, 0.010436],
        [0.24082, 0.397533, 0.0557226, 0.0546814, 0.0557528, 0.19549],
        [0.0357786, 0.633813, 0.321418, 0.00249248, 0.00272882, 0.0037688],
        [0.230246, 0.450868, 0.0389607, 0.038309, 0.0391602, 0.202456],
        [0.0663296, 0.643849, 0.280111, 0.00283995, 0.0035545, 0.00331533],
        [0.280884, 0.429522, 0.0326593, 0.0339046, 0.0326856, 0.190345],
        [0.458235, 0.396634, 0.123377, 0.00648837, 0.00903441, 0.00623107],
        [0.423286, 0.315517, 0.0338439, 0.0393744, 0.0339315, 0.154046],
    ]
).reshape(5, 2, 6)  # (T, N, C)
WARP_OPTIONS_GRADS = np.array(
    [
        [-0.366234, 0.221185, 0.0917319, 0.0129757, 0.0142857, 0.0260553],
        [-0.69824, 0.28562, 0.0831517, 0.0862751, 0.0816851, 0.161508],
        [0.111121, -0.411608, 0.278779, 0.0055756, 0.00569609, 0.010436],
        [0.24082, -0.602467, 0.0557226, 0.0546814, 0.0557528, 0.19549],
        [0.0357786, 0.633813, -0.678582, 0.00249248, 0.00272882, 0.0037688],
        [0.230246, 0.450868, 0.0389607, 0.038309, 0.0391602, -0.797544],
        [0.0663296, -0.356151, 0.280111, 0.00283995, 0.0035545, 0.00331533],
        [0.280884, -0.570478, 0.0326593, 0.0339046, 0.0326856, 0.190345],
        [-0.541765, 0.396634, 0.123377, 0.00648837, 0.00903441, 0.00623107],
        [-0.576714, 0.315517, 0.0338439, 0.0393744, 0.0339315, 0.154046],
    ]
).reshape(5, 2, 6)  # (T, N, C)
WARP_OPTIONS_LABELS = [[0, 1, 2, 1, 0], [0, 1, 1, 0]]
WARP_OPTIONS_BLANK = 5


def warp_options_expected_losses():
    a = WARP_OPTIONS_ACTIVATIONS
    # Sequence 0 has U = T = 5, so its only path is the labelling itself.
    first = -np.log(a[0, 0, 0] * a[1, 0, 1] * a[2, 0, 2] * a[3, 0, 1] * a[4, 0, 0])
    return [first, 5.42262]  # the second value is TensorFlow's, as published


@pytest.mark.parametrize("n", [0, 1])
def test_warp_ctc_options_test(n):
    log_probs = log_softmax(np.log(WARP_OPTIONS_ACTIVATIONS[:, n]))  # rows sum to 1 +- 1e-6
    labels = WARP_OPTIONS_LABELS[n]
    loss = ctc_loss(log_probs, labels, blank=WARP_OPTIONS_BLANK)
    grad = ctc_grad(log_probs, labels, blank=WARP_OPTIONS_BLANK)
    assert abs(loss - warp_options_expected_losses()[n]) < 1e-4
    assert np.abs(grad - WARP_OPTIONS_GRADS[:, n]).max() < 1e-4


def good_log_probs(T=4, C=3):
    return log_softmax(np.random.default_rng(0).normal(size=(T, C)))


@pytest.mark.parametrize(
    "labels, blank, message",
    [
        ([1, 0], 0, "blank"),
        ([1, 3], 0, r"\[0, C\)"),
        ([-1], 0, r"\[0, C\)"),
        ([[1, 2]], 0, "1-D"),
        ([1], 3, "blank"),
        ([1], -1, "blank"),
    ],
)
def test_bad_labels_or_blank_raise_value_error(labels, blank, message):
    with pytest.raises(ValueError, match=message):
        ctc_loss(good_log_probs(), labels, blank)


def test_non_integer_labels_raise_type_error():
    with pytest.raises(TypeError, match="labels"):
        ctc_loss(good_log_probs(), [1.5])


@pytest.mark.parametrize(
    "log_probs, message",
    [
        (np.zeros((4, 3)), "logsumexp"),  # probabilities 1 in every column: not normalised
        (np.log(np.full((4, 3), 0.3)), "logsumexp"),
        (np.zeros((4, 3, 1)), "dimensions"),
        (np.zeros((0, 3)), "T >= 1"),
        (np.full((4, 3), np.nan), "nan"),
    ],
)
def test_bad_log_probs_raise_value_error(log_probs, message):
    for fn in (ctc_loss, ctc_forward, ctc_backward, ctc_grad):
        with pytest.raises(ValueError, match=message):
            fn(log_probs, [1])


def test_non_array_log_probs_raise_type_error():
    with pytest.raises(TypeError, match="log_probs"):
        ctc_loss([[0.0]], [])
