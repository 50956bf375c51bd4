"""Specification of solutions.ctc_torch: a differentiable CTC loss with F.ctc_loss's semantics.

References: F.ctc_loss in float64 (losses and gradients with respect to the logits, through a
log_softmax, where both conventions agree), the numpy ctc_loss_batch, and gradcheck. Float64
results differ by rounding only: relative 1e-9, absolute 1e-12 for gradients near 0.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from solutions.ctc_batch import ctc_loss_batch
from solutions.ctc_torch import CTCLoss, ctc_loss

RTOL, ATOL = 1e-9, 1e-12
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def awkward_batch(blank: int, C: int = 5, T: int = 8, device="cpu"):
    """Repeats, an empty target, an impossible target, sequences with no frames."""
    g = torch.Generator().manual_seed(blank)
    logits = (2 * torch.randn(T, 6, C, generator=g, dtype=torch.float64)).to(device)
    a, b, c = [k for k in range(C) if k != blank][:3]
    targets = torch.tensor([[a, a, b], [1, 1, 1], [c, c, c], [1, 1, 1], [b, 1, 1], [a, b, c]])
    input_lengths = torch.tensor([T, 5, 4, 0, 0, 3])
    target_lengths = torch.tensor([3, 0, 3, 0, 1, 3])
    return logits.requires_grad_(), targets, input_lengths, target_lengths


def loss_and_logit_grad(fn, logits, *args, **kwargs):
    logits.grad = None
    loss = fn(logits.log_softmax(-1), *args, **kwargs)
    loss.sum().backward()
    return loss.detach(), logits.grad.clone()


@pytest.mark.parametrize("blank", [0, 4])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("zero_infinity", [False, True])
@pytest.mark.parametrize("layout", ["padded", "concatenated"])
def test_loss_and_logit_grad_match_torch(blank, reduction, zero_infinity, layout):
    logits, targets, input_lengths, target_lengths = awkward_batch(blank)
    if layout == "concatenated":
        targets = torch.cat([t[:n] for t, n in zip(targets, target_lengths, strict=True)])
    args = (targets, input_lengths, target_lengths)
    kwargs = dict(blank=blank, reduction=reduction, zero_infinity=zero_infinity)
    loss, grad = loss_and_logit_grad(ctc_loss, logits, *args, **kwargs)
    ref_loss, ref_grad = loss_and_logit_grad(F.ctc_loss, logits, *args, **kwargs)
    torch.testing.assert_close(loss, ref_loss, rtol=RTOL, atol=0)
    torch.testing.assert_close(grad, ref_grad, rtol=RTOL, atol=ATOL, equal_nan=True)


def test_matches_the_numpy_batch_loss():
    logits, targets, input_lengths, target_lengths = awkward_batch(0)
    log_probs = logits.detach().log_softmax(-1)
    for reduction in ("none", "mean"):
        ours = ctc_loss(
            log_probs,
            targets,
            input_lengths,
            target_lengths,
            reduction=reduction,
            zero_infinity=True,
        )
        ref = ctc_loss_batch(
            log_probs.numpy(),
            targets.numpy(),
            input_lengths.numpy(),
            target_lengths.numpy(),
            reduction=reduction,
            zero_infinity=True,
        )
        np.testing.assert_allclose(ours.numpy(), ref, rtol=RTOL, atol=0)


def test_gradcheck_with_respect_to_log_probs():
    # The true derivative with respect to log_probs (not torch's logit convention), so gradcheck
    # holds on log_probs directly.
    g = torch.Generator().manual_seed(3)
    log_probs = torch.randn(6, 3, 5, generator=g, dtype=torch.float64).log_softmax(-1)
    log_probs.requires_grad_()
    targets = torch.tensor([1, 1, 2, 3, 4, 2])

    def losses(x):
        return ctc_loss(x, targets, [6, 5, 6], [3, 1, 2], reduction="none")

    assert torch.autograd.gradcheck(losses, (log_probs,))


def test_random_sizes_match_torch():
    g = torch.Generator().manual_seed(11)
    for _ in range(3):
        T, N, C = (
            int(torch.randint(lo, hi, (1,), generator=g)) for lo, hi in ((1, 25), (1, 5), (2, 10))
        )
        blank = C - 1
        input_lengths = torch.randint(0, T + 1, (N,), generator=g)
        target_lengths = torch.randint(0, T // 2 + 2, (N,), generator=g)
        targets = torch.randint(0, C - 1, (N, int(target_lengths.max()) + 1), generator=g)
        logits = torch.randn(T, N, C, generator=g, dtype=torch.float64, requires_grad=True)
        args = (targets, input_lengths, target_lengths)
        kwargs = dict(blank=blank, reduction="mean", zero_infinity=True)
        loss, grad = loss_and_logit_grad(ctc_loss, logits, *args, **kwargs)
        ref_loss, ref_grad = loss_and_logit_grad(F.ctc_loss, logits, *args, **kwargs)
        torch.testing.assert_close(loss, ref_loss, rtol=RTOL, atol=0)
        torch.testing.assert_close(grad, ref_grad, rtol=RTOL, atol=ATOL)


@pytest.mark.slow
def test_long_sequences_are_finite_and_match_torch():
    g = torch.Generator().manual_seed(9)
    T, S, C = 2000, 600, 30
    logits = torch.randn(T, 2, C, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(1, C, (2, S), generator=g)
    args = (targets, torch.tensor([T, 1900]), torch.tensor([S, 550]))
    loss, grad = loss_and_logit_grad(ctc_loss, logits, *args, reduction="none")
    ref_loss, ref_grad = loss_and_logit_grad(F.ctc_loss, logits, *args, reduction="none")
    assert torch.isfinite(loss).all() and (loss > 1000).all()
    torch.testing.assert_close(loss, ref_loss, rtol=RTOL, atol=0)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_module_in_float32_trains_and_follows_the_device(device):
    logits, targets, input_lengths, target_lengths = awkward_batch(0, device=device)
    logits = logits.detach().float().requires_grad_()
    criterion = CTCLoss(blank=0, reduction="mean", zero_infinity=True)
    assert "zero_infinity=True" in repr(criterion)
    optimizer = torch.optim.SGD([logits], lr=1.0)
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = criterion(logits.log_softmax(-1), targets, input_lengths, target_lengths)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert loss.device.type == device and loss.dtype == torch.float32
    assert losses[-1] < losses[0]
    ref = F.ctc_loss(
        logits.log_softmax(-1),
        targets.to(device),
        input_lengths,
        target_lengths,
        zero_infinity=True,
    )
    ours = criterion(logits.log_softmax(-1), targets, input_lengths, target_lengths)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)  # float32 rounding


def test_half_precision_input_is_computed_in_float32():
    logits, targets, input_lengths, target_lengths = awkward_batch(0)
    log_probs = logits.detach().float().log_softmax(-1)
    half = ctc_loss(log_probs.half(), targets, input_lengths, target_lengths, zero_infinity=True)
    full = ctc_loss(log_probs, targets, input_lengths, target_lengths, zero_infinity=True)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, full, rtol=1e-2, atol=1e-2)  # inputs rounded to fp16


def good_inputs():
    log_probs = torch.randn(6, 2, 4, dtype=torch.float64).log_softmax(-1)
    return dict(
        log_probs=log_probs,
        targets=torch.tensor([[1, 2], [3, 3]]),
        input_lengths=[6, 5],
        target_lengths=[2, 2],
    )


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(input_lengths=[7, 5]), r"input_lengths: .*<= T"),
        (dict(input_lengths=[-1, 5]), "input_lengths: .*>= 0"),
        (dict(target_lengths=[2, -1]), "target_lengths: .*>= 0"),
        (dict(input_lengths=[6]), r"input_lengths: expected shape \(N,\)"),
        (dict(target_lengths=[3, 2]), "targets: padded targets"),
        (dict(targets=torch.tensor([[1, 0], [3, 3]])), "blank"),
        (dict(targets=torch.tensor([[1, 4], [3, 3]])), r"\[0, C\)"),
        (dict(targets=torch.tensor([1, 2, 3])), r"sum\(target_lengths\)"),
        (dict(log_probs=torch.zeros(6, 2, 4)), "logsumexp"),
        (dict(log_probs=torch.zeros(6, 4)), r"\(T, N, C\)"),
        (dict(blank=4), "blank"),
        (dict(reduction="avg"), "reduction"),
    ],
)
def test_bad_input_raises_value_error(change, message):
    args = good_inputs()
    args.update(change)
    with pytest.raises(ValueError, match=message):
        ctc_loss(**args)
