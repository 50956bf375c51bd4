"""CTC loss in PyTorch, differentiable, on any device: a drop-in for ``F.ctc_loss``.

The loss is a :class:`torch.autograd.Function` whose forward runs the alpha and beta recursions
of :mod:`solutions.ctc` for the whole batch and every extended position at once (the Python loop
is over time only), and whose backward is the alpha-beta formula. Nothing leaves the device of
``log_probs``; inputs are checked once, before the recursions.

A note on gradient conventions. ``torch.nn.functional.ctc_loss`` puts ``exp(log_probs) -
posterior`` into ``log_probs.grad``: that is the gradient with respect to the *logits*, and is
correct only because a ``log_softmax`` is assumed to sit in front (it is not the derivative with
respect to ``log_probs`` itself). This module returns the true derivative with respect to
``log_probs``, ``-posterior``; autograd then carries it through the ``log_softmax``, where

    d loss / d u[t, k] = -posterior[t, k] + y[t, k] * sum_c posterior[t, c]
                       = y[t, k] - posterior[t, k]

since the posterior of a frame sums to 1. So gradients with respect to the logits agree with
``F.ctc_loss``, and ``torch.autograd.gradcheck`` holds with respect to ``log_probs`` as well.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from solutions.ctc import LOG_NORM_TOL

REDUCTIONS = ("none", "mean", "sum")


def _alpha_beta(log_probs, ext, input_lengths, ext_lengths, blank):
    """Log forward and backward variables, (T, N, L) each, emissions included; see ctc_batch.

    ``torch.logaddexp`` returns ``-inf`` (not nan) when both arguments are ``-inf``. Each step is
    a handful of whole-batch tensor operations: the time loop is the only Python loop.
    """
    T, N, _ = log_probs.shape
    L = ext.shape[1]
    neg_inf = float("-inf")
    positions = torch.arange(L, device=log_probs.device)
    emit = log_probs.gather(2, ext.unsqueeze(0).expand(T, N, L))  # (T, N, L)
    emit = emit.masked_fill(positions >= ext_lengths[:, None], neg_inf)
    # 0 where a path may jump from s - 2 to s, -inf where it may not (as in ctc.py)
    skip = torch.zeros(N, L, dtype=torch.bool, device=log_probs.device)
    skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    skip_bias = torch.zeros(N, L, dtype=emit.dtype, device=emit.device).masked_fill(~skip, neg_inf)

    log_alpha = emit.new_full((T, N, L), neg_inf)
    log_alpha[0, :, :2] = emit[0, :, :2]
    for t in range(1, T):
        prev = F.pad(log_alpha[t - 1], (2, 0), value=neg_inf)  # (N, L + 2): s - 2, s - 1, s
        total = torch.logaddexp(prev[:, 2:], prev[:, 1:-1])
        log_alpha[t] = torch.logaddexp(total, prev[:, :-2] + skip_bias) + emit[t]

    # beta starts at each sequence's own last frame; frames after it are unreachable.
    last_frame = input_lengths - 1  # (N,)
    batch = torch.arange(N, device=log_probs.device)
    start = emit[last_frame.clamp(min=0), batch].masked_fill(
        positions < ext_lengths[:, None] - 2, neg_inf
    )  # (N, L)
    skip_bias_next = F.pad(skip_bias[:, 2:], (0, 2), value=neg_inf)  # may s jump to s + 2?
    log_beta = emit.new_full((T, N, L), neg_inf)
    nxt = emit.new_full((N, L), neg_inf)
    for t in range(T - 1, -1, -1):
        after = F.pad(nxt, (0, 2), value=neg_inf)  # (N, L + 2): s, s + 1, s + 2
        total = torch.logaddexp(after[:, :-2], after[:, 1:-1])
        total = torch.logaddexp(total, after[:, 2:] + skip_bias_next) + emit[t]
        total = total.masked_fill((t >= last_frame)[:, None], neg_inf)
        nxt = torch.where((last_frame == t)[:, None], start, total)
        log_beta[t] = nxt
    return log_alpha, log_beta, emit


class CTCLossFunction(torch.autograd.Function):
    """Per-sequence CTC losses ``-log p`` (N,) from log_probs (T, N, C) and extended labellings.

    ``forward(ctx, log_probs, ext (N, L), input_lengths (N,), ext_lengths (N,), blank)``, all
    tensors on the device of ``log_probs``. Backward returns ``-posterior * grad`` for frames
    inside the input lengths; for a sequence with an infinite loss it returns 0 where the
    upstream gradient is 0 (``zero_infinity``) and nan otherwise, as ``F.ctc_loss`` does.
    """

    @staticmethod
    def forward(ctx, log_probs, ext, input_lengths, ext_lengths, blank):
        log_alpha, log_beta, emit = _alpha_beta(log_probs, ext, input_lengths, ext_lengths, blank)
        N = log_probs.shape[1]
        batch = torch.arange(N, device=log_probs.device)
        final = log_alpha[(input_lengths - 1).clamp(min=0), batch]  # (N, L)
        has_labels = ext_lengths > 1
        log_p = torch.logaddexp(
            final[batch, ext_lengths - 1],
            torch.where(has_labels, final[batch, (ext_lengths - 2).clamp(min=0)], -torch.inf),
        )  # (N,)
        # With no frames, only the empty labelling has a path (the empty path).
        empty = torch.where(has_labels, -torch.inf, 0.0).to(log_p.dtype)
        log_p = torch.where(input_lengths == 0, empty, log_p)
        ctx.save_for_backward(log_probs, ext, input_lengths, log_alpha, log_beta, emit, log_p)
        return -log_p

    @staticmethod
    def backward(ctx, grad_losses):
        log_probs, ext, input_lengths, log_alpha, log_beta, emit, log_p = ctx.saved_tensors
        T, N, L = log_alpha.shape
        safe_emit = torch.where(torch.isfinite(emit), emit, torch.zeros_like(emit))
        possible = torch.isfinite(log_p)  # (N,)
        safe_log_p = torch.where(possible, log_p, torch.zeros_like(log_p))
        occupancy = torch.exp(log_alpha + log_beta - safe_emit - safe_log_p[None, :, None])
        posterior = torch.zeros_like(log_probs).scatter_add_(
            2, ext.unsqueeze(0).expand(T, N, L), occupancy
        )  # (T, N, C): the L positions summed per symbol
        grad = -posterior * grad_losses[None, :, None]
        undefined = torch.where(grad_losses == 0, 0.0, torch.nan).to(grad.dtype)  # (N,)
        grad = torch.where(possible[None, :, None], grad, undefined[None, :, None])
        inside = torch.arange(T, device=grad.device)[:, None] < input_lengths[None, :]  # (T, N)
        grad = torch.where(inside[..., None], grad, torch.zeros_like(grad))
        return grad, None, None, None, None


def _check_and_extend(log_probs, targets, input_lengths, target_lengths, blank):
    """Validate the inputs; return ``(ext (N, L), input_lengths, ext_lengths)`` on the device."""
    if not isinstance(log_probs, torch.Tensor) or not log_probs.is_floating_point():
        raise TypeError("log_probs: expected a floating-point tensor of shape (T, N, C)")
    if log_probs.dim() != 3:
        raise ValueError(
            f"log_probs: expected 3 dimensions (T, N, C), got shape {tuple(log_probs.shape)}"
        )
    T, N, C = log_probs.shape
    if isinstance(blank, bool) or not isinstance(blank, int) or not 0 <= blank < C:
        raise ValueError(f"blank: expected an integer in [0, C) = [0, {C}), got {blank!r}")
    device = log_probs.device
    lengths = {}
    for name, value in (("input_lengths", input_lengths), ("target_lengths", target_lengths)):
        value = torch.as_tensor(value)
        if value.shape != (N,):
            raise ValueError(f"{name}: expected shape (N,) = ({N},), got {tuple(value.shape)}")
        if value.is_floating_point() or value.is_complex():
            raise TypeError(f"{name}: expected integer lengths, got dtype {value.dtype}")
        value = value.to(device=device, dtype=torch.long)
        if bool((value < 0).any()):
            raise ValueError(f"{name}: lengths must be >= 0, got {value.tolist()}")
        lengths[name] = value
    input_lengths, target_lengths = lengths["input_lengths"], lengths["target_lengths"]
    if bool((input_lengths > T).any()):
        raise ValueError(f"input_lengths: must be <= T = {T}, got {input_lengths.tolist()}")

    targets = torch.as_tensor(targets, device=device)
    if targets.is_floating_point():
        raise TypeError(f"targets: expected integer label ids, got dtype {targets.dtype}")
    targets = targets.long()
    S = int(target_lengths.max()) if N else 0
    positions = torch.arange(S, device=device)
    used = positions < target_lengths[:, None]  # (N, S)
    if targets.dim() == 1:
        if targets.numel() != int(target_lengths.sum()):
            raise ValueError(
                f"targets: a 1-D (concatenated) targets tensor must have sum(target_lengths) = "
                f"{int(target_lengths.sum())} entries, got {targets.numel()}"
            )
        starts = torch.cumsum(target_lengths, 0) - target_lengths  # (N,)
        index = (starts[:, None] + positions).clamp(max=max(targets.numel() - 1, 0))
        padded = targets[index] if targets.numel() else torch.zeros_like(index)
    elif targets.dim() == 2:
        if targets.shape[0] != N or targets.shape[1] < S:
            raise ValueError(
                f"targets: padded targets must have shape (N, S) with N = {N} and "
                f"S >= max(target_lengths) = {S}, got shape {tuple(targets.shape)}"
            )
        padded = targets[:, :S]
    else:
        raise ValueError(
            f"targets: expected shape (N, S) or (sum(target_lengths),), got {tuple(targets.shape)}"
        )
    padded = torch.where(used, padded, blank)
    if bool(((padded < 0) | (padded >= C)).any()):
        raise ValueError(f"targets: label ids must lie in [0, C) = [0, {C})")
    if bool((used & (padded == blank)).any()):
        raise ValueError(f"targets: must not contain the blank ({blank}) within target_lengths")

    with torch.no_grad():
        inside = torch.arange(T, device=device)[:, None] < input_lengths[None, :]  # (T, N)
        norm = torch.logsumexp(log_probs.detach(), dim=2)  # (T, N)
        # Half precision rounds a log_softmax by about C * eps.
        tol = max(LOG_NORM_TOL, C * torch.finfo(log_probs.dtype).eps)
        bad = inside & ~(norm.abs() <= tol)
        if bool(bad.any()):
            t, n = (int(i) for i in bad.nonzero()[0])
            raise ValueError(
                f"log_probs: each row of shape (T, N, C) must be log-probabilities (logsumexp 0), "
                f"but row (t={t}, n={n}) has logsumexp {float(norm[t, n]):.3g}; "
                f"apply log_softmax first"
            )

    ext = torch.full((N, 2 * S + 1), blank, dtype=torch.long, device=device)  # (N, L)
    ext[:, 1::2] = padded
    return ext, input_lengths, 2 * target_lengths + 1


def ctc_loss(
    log_probs: torch.Tensor,
    targets,
    input_lengths,
    target_lengths,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
) -> torch.Tensor:
    """CTC loss with the signature and semantics of ``torch.nn.functional.ctc_loss``.

    Inputs:
    - log_probs: (T, N, C) log_softmax outputs, on any device; half precision is computed in
      float32
    - targets: padded (N, S), S >= max(target_lengths), or 1-D, the targets concatenated
    - input_lengths, target_lengths: (N,) integer tensors or sequences
    - blank: index of the blank symbol
    - reduction: "none" (N,), "sum", or "mean": each loss divided by its target length (clamped
      at 1), then averaged over the batch
    - zero_infinity: replace infinite losses (no alignment exists) and their gradients by 0

    Returns the loss tensor, differentiable with respect to ``log_probs``.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")
    ext, input_lengths, ext_lengths = _check_and_extend(
        log_probs, targets, input_lengths, target_lengths, blank
    )
    if log_probs.dtype in (torch.float16, torch.bfloat16):
        log_probs = log_probs.float()  # the recursions sum many terms; half precision cannot
    losses = CTCLossFunction.apply(log_probs, ext, input_lengths, ext_lengths, blank)  # (N,)
    if zero_infinity:
        losses = torch.where(torch.isinf(losses), torch.zeros_like(losses), losses)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    target_lengths = (ext_lengths - 1) // 2
    return (losses / target_lengths.clamp(min=1).to(losses.dtype)).mean()


class CTCLoss(nn.Module):
    """:func:`ctc_loss` as a module, with the constructor of ``torch.nn.CTCLoss``.

    ``CTCLoss(blank=0, reduction="mean", zero_infinity=False)``;
    ``forward(log_probs (T, N, C), targets, input_lengths (N,), target_lengths (N,))``.
    """

    def __init__(self, blank: int = 0, reduction: str = "mean", zero_infinity: bool = False):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")
        self.blank = blank
        self.reduction = reduction
        self.zero_infinity = zero_infinity

    def forward(self, log_probs, targets, input_lengths, target_lengths) -> torch.Tensor:
        return ctc_loss(
            log_probs,
            targets,
            input_lengths,
            target_lengths,
            blank=self.blank,
            reduction=self.reduction,
            zero_infinity=self.zero_infinity,
        )

    def extra_repr(self) -> str:
        return (
            f"blank={self.blank}, reduction={self.reduction!r}, zero_infinity={self.zero_infinity}"
        )
