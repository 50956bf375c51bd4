"""Specification of solutions.ctc_batch.ctc_loss_batch: torch.nn.functional.ctc_loss in numpy.

The reference is F.ctc_loss in float64 on the same inputs; both compute the same sums in float64
and differ by rounding only, so losses agree to a relative 1e-9 and gradients to 1e-9 relative
plus 1e-12 absolute (gradients near 0 have no meaningful relative error).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_ctc import (
    WARP_OPTIONS_ACTIVATIONS,
    WARP_OPTIONS_BLANK,
    WARP_OPTIONS_GRADS,
    WARP_OPTIONS_LABELS,
    warp_options_expected_losses,
)

from solutions.ctc import ctc_grad, ctc_loss
from solutions.ctc_batch import ctc_loss_batch

RTOL, ATOL = 1e-9, 1e-12


def log_softmax(u: np.ndarray) -> np.ndarray:
    m = u.max(axis=-1, keepdims=True)
    return u - m - np.log(np.exp(u - m).sum(axis=-1, keepdims=True))


def torch_reference(log_probs, targets, input_lengths, target_lengths, **kwargs):
    """F.ctc_loss and the gradient it puts in log_probs.grad (of loss.sum() for "none")."""
    x = torch.tensor(log_probs, requires_grad=True)
    loss = F.ctc_loss(
        x,
        torch.as_tensor(np.asarray(targets), dtype=torch.long),
        torch.as_tensor(input_lengths),
        torch.as_tensor(target_lengths),
        **kwargs,
    )
    loss.sum().backward()
    return loss.detach().numpy(), x.grad.numpy()


def awkward_batch(blank: int, C: int = 5, T: int = 8):
    """One batch with every special case: repeats, an empty target, an impossible target (three
    equal labels in 4 frames need 5), a sequence with no frames, and a full-length one."""
    rng = np.random.default_rng(blank)
    log_probs = log_softmax(rng.normal(scale=2.0, size=(T, 6, C)))
    a, b, c = [k for k in range(C) if k != blank][:3]
    targets = [[a, a, b], [], [c, c, c], [], [b], [a, b, c]]
    input_lengths = [T, 5, 4, 0, 0, 3]
    return log_probs, targets, input_lengths


def padded(targets, pad_value):
    width = max(len(t) for t in targets)
    return np.array([list(t) + [pad_value] * (width - len(t)) for t in targets])


@pytest.mark.parametrize("blank", [0, 4])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("zero_infinity", [False, True])
@pytest.mark.parametrize("layout", ["padded", "concatenated"])
def test_loss_and_grad_match_torch(blank, reduction, zero_infinity, layout):
    log_probs, targets, input_lengths = awkward_batch(blank)
    target_lengths = [len(t) for t in targets]
    # Padding holds a real label id on purpose: only target_lengths may decide what counts.
    flat = padded(targets, 1) if layout == "padded" else np.concatenate(targets).astype(int)
    kwargs = dict(blank=blank, reduction=reduction, zero_infinity=zero_infinity)
    loss, grad = ctc_loss_batch(
        log_probs, flat, input_lengths, target_lengths, return_grad=True, **kwargs
    )
    ref_loss, ref_grad = torch_reference(log_probs, flat, input_lengths, target_lengths, **kwargs)
    np.testing.assert_allclose(loss, ref_loss, rtol=RTOL, atol=0)
    np.testing.assert_allclose(grad, ref_grad, rtol=RTOL, atol=ATOL)  # nan where torch has nan
    assert np.isnan(grad).any() == (not zero_infinity)  # the impossible sequence's frames


def test_impossible_target_gives_inf_or_zero():
    log_probs, targets, input_lengths = awkward_batch(0)
    lengths = [len(t) for t in targets]
    losses = ctc_loss_batch(log_probs, padded(targets, 0), input_lengths, lengths, reduction="none")
    assert np.isinf(losses[[2, 4]]).all() and np.isfinite(losses[[0, 1, 3, 5]]).all()
    assert losses[3] == 0.0  # no frames and no labels: the empty path, probability 1
    _, grad = ctc_loss_batch(
        log_probs, padded(targets, 0), input_lengths, lengths, zero_infinity=True, return_grad=True
    )
    assert (grad[:, [2, 4]] == 0).all()


@pytest.mark.parametrize("seed", range(4))
def test_random_sizes_match_torch(seed):
    rng = np.random.default_rng(100 + seed)
    T, N, C = int(rng.integers(1, 30)), int(rng.integers(1, 6)), int(rng.integers(2, 12))
    blank = int(rng.integers(0, C))
    labels = np.array([k for k in range(C) if k != blank])
    input_lengths = rng.integers(0, T + 1, size=N)
    target_lengths = rng.integers(0, max(T // 2, 1) + 1, size=N)
    targets = rng.choice(labels, size=(N, int(target_lengths.max()) + 2))
    log_probs = log_softmax(rng.normal(scale=1.5, size=(T, N, C)))
    kwargs = dict(blank=blank, reduction="none", zero_infinity=True)
    loss, grad = ctc_loss_batch(
        log_probs, targets, input_lengths, target_lengths, return_grad=True, **kwargs
    )
    ref_loss, ref_grad = torch_reference(
        log_probs, targets, input_lengths, target_lengths, **kwargs
    )
    np.testing.assert_allclose(loss, ref_loss, rtol=RTOL, atol=0)
    np.testing.assert_allclose(grad, ref_grad, rtol=RTOL, atol=ATOL)


def test_each_sequence_equals_the_single_sequence_reference():
    rng = np.random.default_rng(8)
    log_probs = log_softmax(rng.normal(size=(12, 3, 6)))
    targets = [[1, 2, 2], [5], [3, 4, 3, 4]]
    input_lengths = [12, 7, 10]
    losses, grad = ctc_loss_batch(
        log_probs, padded(targets, 0), input_lengths, [3, 1, 4], reduction="none", return_grad=True
    )
    for n, (labels, length) in enumerate(zip(targets, input_lengths, strict=True)):
        np.testing.assert_allclose(losses[n], ctc_loss(log_probs[:length, n], labels), rtol=RTOL)
        np.testing.assert_allclose(
            grad[:length, n], ctc_grad(log_probs[:length, n], labels), rtol=RTOL, atol=ATOL
        )
        assert (grad[length:, n] == 0).all()


@pytest.mark.slow
def test_long_sequences_are_finite_and_match_torch():
    rng = np.random.default_rng(9)
    T, S, C = 2000, 600, 30
    log_probs = log_softmax(rng.normal(size=(T, 2, C)))
    targets = rng.integers(1, C, size=(2, S))
    args = (log_probs, targets, [T, 1900], [S, 550])
    loss, grad = ctc_loss_batch(*args, reduction="none", return_grad=True)
    ref_loss, ref_grad = torch_reference(*args, reduction="none")
    assert (loss > 1000).all()  # p ~ exp(-6000): only representable as a log
    assert np.isfinite(grad).all()
    np.testing.assert_allclose(loss, ref_loss, rtol=RTOL)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-7, atol=1e-12)


def test_warp_ctc_options_test_batch():
    # baidu-research/warp-ctc, tests/test_cpu.cpp, options_test(): the inputs and published
    # values are in test_ctc.py; here the two sequences run as one batch, blank = 5.
    log_probs = log_softmax(np.log(WARP_OPTIONS_ACTIVATIONS))
    losses, grad = ctc_loss_batch(
        log_probs,
        np.concatenate(WARP_OPTIONS_LABELS),
        [5, 5],
        [5, 4],
        blank=WARP_OPTIONS_BLANK,
        reduction="none",
        return_grad=True,
    )
    np.testing.assert_allclose(losses, warp_options_expected_losses(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(grad, WARP_OPTIONS_GRADS, rtol=0, atol=1e-4)


def good_inputs():
    log_probs = log_softmax(np.random.default_rng(0).normal(size=(6, 2, 4)))
    return log_probs, np.array([[1, 2], [3, 3]]), [6, 5], [2, 2]


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(input_lengths=[7, 5]), r"input_lengths: .*<= T"),
        (dict(input_lengths=[-1, 5]), "input_lengths: .*>= 0"),
        (dict(target_lengths=[2, -1]), "target_lengths: .*>= 0"),
        (dict(input_lengths=[6]), r"input_lengths: expected shape \(N,\)"),
        (dict(target_lengths=[3, 2]), "targets: padded targets"),
        (dict(targets=np.array([[1, 0], [3, 3]])), "blank"),
        (dict(targets=np.array([[1, 4], [3, 3]])), r"\[0, C\)"),
        (dict(targets=np.array([1, 2, 3])), "sum\\(target_lengths\\)"),
        (dict(targets=np.ones((2, 2, 1), dtype=int)), "targets: expected shape"),
        (dict(log_probs=np.zeros((6, 2, 4))), "logsumexp"),
        (dict(log_probs=np.zeros((6, 4))), r"\(T, N, C\)"),
        (dict(blank=4), "blank"),
        (dict(reduction="avg"), "reduction"),
    ],
)
def test_bad_input_raises_value_error(change, message):
    log_probs, targets, input_lengths, target_lengths = good_inputs()
    args = dict(
        log_probs=log_probs,
        targets=targets,
        input_lengths=input_lengths,
        target_lengths=target_lengths,
    )
    args.update(change)
    with pytest.raises(ValueError, match=message):
        ctc_loss_batch(**args)


def test_frames_past_the_input_length_are_not_checked():
    log_probs, targets, _, target_lengths = good_inputs()
    log_probs[5:, 1] = 0.0  # padding frames of sequence 1 need not be normalised
    ctc_loss_batch(log_probs, targets, [6, 5], target_lengths)


def test_labels_of_underflowing_probability_keep_exact_losses():
    # Labels at log-probability about -1000 (exp underflows to 0 in float64): the paths that emit
    # all four labels are some e^-4000 less probable than those that stay on a blank, so only a
    # recursion that keeps every position in log space (no shared scale per frame) gets them.
    rng = np.random.default_rng(11)
    logits = rng.normal(size=(20, 3, 6))
    logits[..., 1:] -= 1000.0
    log_probs = log_softmax(logits)
    args = (log_probs, rng.integers(1, 6, size=(3, 4)), [20, 20, 15], [4, 4, 4])
    loss, grad = ctc_loss_batch(*args, reduction="none", return_grad=True)
    ref_loss, ref_grad = torch_reference(*args, reduction="none")
    assert (loss > 3000).all()
    np.testing.assert_allclose(loss, ref_loss, rtol=RTOL)
    np.testing.assert_allclose(grad, ref_grad, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_raises_even_in_padding_frames(bad):
    log_probs, targets, input_lengths, target_lengths = good_inputs()
    log_probs[5, 1, 2] = bad  # frame 5 of sequence 1 lies past its input length, 5
    with pytest.raises(ValueError, match=r"log_probs: contains nan or \+inf"):
        ctc_loss_batch(log_probs, targets, input_lengths, target_lengths)
