"""CTC loss of a batch, in numpy, with the semantics of ``torch.nn.functional.ctc_loss``.

The recursions are those of :mod:`solutions.ctc`, run for all ``N`` sequences and all positions
``s`` of their extended labellings at once: the only Python loop is over time. Sequences of
different lengths share arrays of the largest size; positions past a sequence's own ``l'`` get
probability 0 (``-inf``), and frames past its input length are ignored.

Shapes: ``log_probs (T, N, C)``; ``targets`` either padded ``(N, S)`` or the ``N`` target
sequences concatenated into one 1-D array; ``input_lengths (N,)``; ``target_lengths (N,)``;
``L = 2 * max(target_lengths) + 1`` extended positions.
"""

from __future__ import annotations

import numpy as np

from solutions._validate import check_array
from solutions.ctc import LOG_NORM_TOL

REDUCTIONS = ("none", "mean", "sum")


def _check_lengths(name: str, lengths, N: int, upper: int | None) -> np.ndarray:
    array = np.asarray(lengths)
    if array.shape != (N,):
        raise ValueError(f"{name}: expected shape (N,) = ({N},), got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name}: expected integer lengths, got dtype {array.dtype}")
    array = array.astype(np.int64)
    if (array < 0).any():
        raise ValueError(f"{name}: lengths must be >= 0, got {array.tolist()}")
    if upper is not None and (array > upper).any():
        raise ValueError(f"{name}: lengths must be <= T = {upper}, got {array.tolist()}")
    return array


def _padded_targets(targets, target_lengths: np.ndarray, C: int, blank: int) -> np.ndarray:
    """Targets as a padded (N, S) int array, S = max(target_lengths); padding holds ``blank``."""
    N = len(target_lengths)
    array = np.asarray(targets)
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"targets: expected integer label ids, got dtype {array.dtype}")
    array = array.astype(np.int64)
    S = int(target_lengths.max(initial=0))
    if array.ndim == 1:
        if len(array) != target_lengths.sum():
            raise ValueError(
                f"targets: a 1-D (concatenated) targets array must have sum(target_lengths) = "
                f"{target_lengths.sum()} entries, got {len(array)}"
            )
        padded = np.full((N, S), blank, dtype=np.int64)
        padded[np.arange(S) < target_lengths[:, None]] = array  # row-major: sequence by sequence
    elif array.ndim == 2:
        if array.shape[0] != N or array.shape[1] < S:
            raise ValueError(
                f"targets: padded targets must have shape (N, S) with N = {N} and "
                f"S >= max(target_lengths) = {S}, got shape {array.shape}"
            )
        padded = np.where(np.arange(S) < target_lengths[:, None], array[:, :S], blank)
    else:
        raise ValueError(
            f"targets: expected shape (N, S) or (sum(target_lengths),), got {array.shape}"
        )
    if ((padded < 0) | (padded >= C)).any():
        raise ValueError(f"targets: label ids must lie in [0, C) = [0, {C})")
    used = np.arange(S) < target_lengths[:, None]  # (N, S)
    if (padded[used] == blank).any():
        raise ValueError(f"targets: must not contain the blank ({blank}) within target_lengths")
    return padded


def _check_normalised(log_probs: np.ndarray, input_lengths: np.ndarray) -> None:
    """Every frame inside an input length must be a log-distribution."""
    if log_probs.size and not log_probs.max() < np.inf:  # max is nan if any entry is
        raise ValueError("log_probs: contains nan or +inf; expected log-probabilities (<= 0)")
    # No max to subtract: a row that log-sum-exps to 0 has its largest entry in [-log C, 0], so
    # its sum of exp neither under- nor overflows; a row that does is far from 0 and fails.
    with np.errstate(over="ignore", divide="ignore"):
        norm = np.log(np.exp(log_probs).sum(axis=2))  # (T, N)
    T = log_probs.shape[0]
    inside = np.arange(T)[:, None] < input_lengths[None, :]  # (T, N)
    bad = inside & ~(np.abs(norm) <= LOG_NORM_TOL)
    if bad.any():
        t, n = np.argwhere(bad)[0]
        raise ValueError(
            f"log_probs: each row of shape (T, N, C) must be log-probabilities (logsumexp 0), "
            f"but row (t={t}, n={n}) has logsumexp {norm[t, n]:.3g}; apply log_softmax first"
        )


# Below every finite float64: the stand-in for a maximum of -inf, so that -inf - top stays -inf.
_FLOOR = -np.finfo(np.float64).max


def _logsumexp3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``log(exp(a) + exp(b) + exp(c))`` elementwise, ``-inf`` where all three are.

    Each term is scaled by the elementwise maximum, so nothing over- or underflows; three ``exp``
    and one ``log`` are about three times faster than two ``np.logaddexp``. Call it under
    ``np.errstate(divide="ignore")``: ``log(0)`` gives the ``-inf`` where all three are ``-inf``.
    """
    top = np.maximum(np.maximum(a, b), np.maximum(c, _FLOOR))
    total = np.exp(a - top)
    total += np.exp(b - top)
    total += np.exp(c - top)
    return np.log(total, out=total) + top


def ctc_alpha_beta(
    log_probs: np.ndarray, ext: np.ndarray, input_lengths, ext_lengths, blank: int, beta=True
):
    """Log forward and backward variables of a batch, both including the emission at ``t``.

    Inputs:
    - log_probs: (T, N, C) float64
    - ext: (N, L) extended labellings, padded with anything in [0, C)
    - input_lengths: (N,) frames used by each sequence
    - ext_lengths: (N,) length ``2U + 1`` of each extended labelling
    - blank: index of the blank symbol
    - beta: compute ``log_beta`` (only the gradient needs it; ``None`` is returned otherwise)

    Returns ``log_alpha, log_beta, emit``, each (T, N, L), where ``emit[t, n, s]`` is
    ``log y[t, n, ext[n, s]]`` (``-inf`` past ``ext_lengths``). ``log_beta`` is ``-inf`` for
    ``t >= input_lengths[n]``; ``log_alpha`` there is not used.
    """
    T, N, C = log_probs.shape
    L = ext.shape[1]
    flat_index = np.arange(N)[:, None] * C + ext  # (N, L): ext[n, s] in the row of sequence n
    emit = log_probs.reshape(T, N * C)[:, flat_index]  # (T, N, L)
    emit[:, np.arange(L) >= ext_lengths[:, None]] = -np.inf
    skip = np.zeros((N, L), dtype=bool)  # may a path jump from s - 2 to s? (as in ctc.py)
    skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    skip_bias = np.where(skip, 0.0, -np.inf)  # (N, L): adding it forbids the jump

    # Two columns of -inf before s = 0 make the shifted rows (s - 1, s - 2) plain views.
    alpha = np.empty((T, N, L + 2))
    alpha[:, :, :2] = -np.inf
    alpha[0, :, 2:] = -np.inf
    alpha[0, :, 2:4] = emit[0, :, :2]
    with np.errstate(divide="ignore"):
        for t in range(1, T):
            prev = alpha[t - 1]  # (N, L + 2)
            from_s, from_s1, from_s2 = prev[:, 2:], prev[:, 1:-1], prev[:, :-2] + skip_bias
            np.add(_logsumexp3(from_s, from_s1, from_s2), emit[t], out=alpha[t, :, 2:])
    log_alpha = alpha[:, :, 2:]
    if not beta:
        return log_alpha, None, emit

    # beta starts at each sequence's own last frame, on its last two positions; after that frame
    # it is -inf, and the recursion keeps it so.
    last_frame = input_lengths - 1  # (N,)
    last_emit = emit[last_frame.clip(0), np.arange(N)]  # (N, L)
    start = np.where(np.arange(L) >= ext_lengths[:, None] - 2, last_emit, -np.inf)  # (N, L)
    jump_bias = np.full((N, L), -np.inf)  # may a path jump from s to s + 2?
    jump_bias[:, :-2] = skip_bias[:, 2:]
    beta = np.empty((T + 1, N, L + 2))  # frame T and the columns after s = L - 1: all -inf
    beta[:, :, L:] = -np.inf
    beta[T, :, :L] = -np.inf
    with np.errstate(divide="ignore"):
        for t in range(T - 1, -1, -1):
            nxt = beta[t + 1]  # (N, L + 2)
            to_s, to_s1, to_s2 = nxt[:, :-2], nxt[:, 1:-1], nxt[:, 2:] + jump_bias
            np.add(_logsumexp3(to_s, to_s1, to_s2), emit[t], out=beta[t, :, :L])
            ending = last_frame == t  # (N,)
            if ending.any():
                beta[t, ending, :L] = start[ending]
    return log_alpha, beta[:T, :, :L], emit


def ctc_loss_batch(
    log_probs: np.ndarray,
    targets,
    input_lengths,
    target_lengths,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
    return_grad: bool = False,
):
    """CTC loss of a batch, exactly as ``torch.nn.functional.ctc_loss`` defines it.

    Inputs:
    - log_probs: (T, N, C) natural-log probabilities (log_softmax over C), float
    - targets: padded (N, S) with S >= max(target_lengths), or 1-D, the targets concatenated
    - input_lengths: (N,) frames of each sequence, 0 <= input_lengths <= T
    - target_lengths: (N,) labels of each sequence, >= 0
    - blank: index of the blank symbol
    - beta: compute ``log_beta`` (only the gradient needs it; ``None`` is returned otherwise)
    - reduction: "none" (the N losses), "sum", or "mean": each loss divided by its target length
      (clamped at 1), then averaged over the batch
    - zero_infinity: replace infinite losses (no alignment exists) and their gradients by 0
    - return_grad: also return the gradient

    Returns ``loss`` (float, or (N,) for "none"), and with ``return_grad`` the pair
    ``(loss, grad)``, ``grad (T, N, C)`` being what ``torch`` puts in ``log_probs.grad``: the
    gradient of the reduced loss (of ``loss.sum()`` for "none") with respect to the logits
    before the log_softmax, ``exp(log_probs) - posterior``, scaled as the reduction scales the
    loss, and 0 for frames past ``input_lengths``. Like ``torch``, a sequence with an infinite
    loss gets ``nan`` gradients unless ``zero_infinity``.
    """
    check_array("log_probs", log_probs, ("T", "N", "C"))
    T, N, C = log_probs.shape
    if C == 0:
        raise ValueError("log_probs: expected shape (T, N, C) with C >= 1, got C = 0")
    if isinstance(blank, bool) or not isinstance(blank, (int, np.integer)) or not 0 <= blank < C:
        raise ValueError(f"blank: expected an integer in [0, C) = [0, {C}), got {blank!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")
    input_lengths = _check_lengths("input_lengths", input_lengths, N, upper=T)
    target_lengths = _check_lengths("target_lengths", target_lengths, N, upper=None)
    targets = _padded_targets(targets, target_lengths, C, blank)  # (N, S)
    log_probs = np.asarray(log_probs, dtype=np.float64)
    _check_normalised(log_probs, input_lengths)

    ext = np.full((N, 2 * targets.shape[1] + 1), blank, dtype=np.int64)  # (N, L)
    ext[:, 1::2] = targets
    ext_lengths = 2 * target_lengths + 1  # (N,)
    log_alpha, log_beta, emit = ctc_alpha_beta(
        log_probs, ext, input_lengths, ext_lengths, blank, beta=return_grad
    )

    # log p: the paths end at each sequence's last frame, on its last label or final blank.
    batch = np.arange(N)
    final = log_alpha[(input_lengths - 1).clip(0), batch]  # (N, L)
    log_p = np.logaddexp(
        final[batch, ext_lengths - 1],
        np.where(target_lengths > 0, final[batch, (ext_lengths - 2).clip(0)], -np.inf),
    )  # (N,)
    # With no frames at all, only the empty labelling has a path (the empty one).
    log_p = np.where(input_lengths == 0, np.where(target_lengths == 0, 0.0, -np.inf), log_p)
    losses = -log_p  # (N,)
    infinite = np.isinf(losses)
    if zero_infinity:
        losses = np.where(infinite, 0.0, losses)

    # d(reduced loss) / d(loss_n)
    if reduction == "mean":
        scale = 1.0 / (np.maximum(target_lengths, 1) * N)
        loss = float(np.mean(losses / np.maximum(target_lengths, 1)))
    else:
        scale = np.ones(N)
        loss = losses if reduction == "none" else float(losses.sum())
    if not return_grad:
        return loss

    # Posterior of each symbol at each frame: sum over the positions s that carry it.
    safe_emit = np.where(np.isfinite(emit), emit, 0.0)  # emit = -inf already makes alpha -inf
    with np.errstate(invalid="ignore", over="ignore"):  # log_p = -inf: nan, as in torch
        occupancy = np.exp(log_alpha + log_beta - safe_emit - log_p[None, :, None])  # (T, N, L)
    symbol = np.arange(T * N).reshape(T, N, 1) * C + ext  # (T, N, L): flat index of (t, n, l'_s)
    posterior = np.bincount(symbol.ravel(), occupancy.ravel(), minlength=T * N * C)
    posterior = posterior.reshape(T, N, C)
    grad = (np.exp(log_probs) - posterior) * scale[None, :, None]
    grad[np.arange(T)[:, None] >= input_lengths[None, :]] = 0.0
    if zero_infinity:
        grad[:, infinite] = 0.0
    else:
        frames = np.arange(T)[:, None] < input_lengths[None, :]  # (T, N)
        grad[frames & infinite[None, :]] = np.nan
    return loss, grad
