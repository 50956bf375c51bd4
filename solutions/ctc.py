"""Connectionist Temporal Classification (Graves et al., 2006) for one sequence, in numpy.

A network emits, at every frame ``t``, a distribution ``y[t]`` over ``C`` symbols: the labels and
one extra *blank*. A *path* picks one symbol per frame; the many-to-one map ``B`` (merge repeats,
then drop blanks) turns a path into a labelling, and

    p(l | x) = sum over the paths pi with B(pi) = l of prod_t y[t, pi_t].

The sum runs over exponentially many paths, but every path that maps to ``l`` walks through the
*extended* labelling ``l'`` (``l`` with a blank before, between and after its labels, length
``2U + 1``) one position at a time, so dynamic programming over ``(t, s)`` computes it in
``O(T U)`` time: the forward variables ``alpha`` and the backward variables ``beta``.

Everything is computed with natural-log probabilities and ``logaddexp``: a product of ``T``
probabilities underflows float64 after a few hundred frames, a sum of logs does not.

Notation (as in the book): ``log_probs (T, C)`` holds ``log y[t, k]``; ``labels`` is ``l`` (length
``U``, no blanks); ``ext`` is ``l'`` (length ``S = 2U + 1``).
"""

from __future__ import annotations

import numpy as np

from solutions._validate import check_array

# A row of log_probs must log-sum-exp to 0; rounding in a float32 log_softmax stays far below this.
LOG_NORM_TOL = 1e-4


def ctc_collapse(path, blank: int = 0) -> list[int]:
    """The many-to-one map ``B``: merge runs of repeated symbols, then drop the blanks.

    ``ctc_collapse([1, 1, 0, 1, 2, 2, 0]) == [1, 1, 2]``: the blank between the two 1s keeps them
    apart.
    """
    collapsed = []
    previous = None
    for symbol in path:
        symbol = int(symbol)
        if symbol != previous and symbol != blank:
            collapsed.append(symbol)
        previous = symbol
    return collapsed


def extend_with_blanks(labels, blank: int = 0) -> np.ndarray:
    """The extended labelling ``l' = [blank, l_1, blank, ..., l_U, blank]``, shape (2U+1,)."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    ext = np.full(2 * len(labels) + 1, blank, dtype=np.int64)
    ext[1::2] = labels
    return ext


def check_log_probs(log_probs, blank: int) -> np.ndarray:
    """Validate ``log_probs`` (T, C) and ``blank``; return ``log_probs`` as float64.

    Each row must be a log-distribution: no nan or +inf, logsumexp within ``LOG_NORM_TOL`` of 0.
    ``-inf`` entries (probability 0) are allowed.
    """
    check_array("log_probs", log_probs, ("T", "C"))
    T, C = log_probs.shape
    if T == 0 or C == 0:
        raise ValueError(f"log_probs: expected shape (T, C) with T >= 1 and C >= 1, got {(T, C)}")
    if isinstance(blank, bool) or not isinstance(blank, (int, np.integer)) or not 0 <= blank < C:
        raise ValueError(f"blank: expected an integer in [0, C) = [0, {C}), got {blank!r}")
    log_probs = np.asarray(log_probs, dtype=np.float64)
    if np.isnan(log_probs).any() or (log_probs == np.inf).any():
        raise ValueError("log_probs: contains nan or +inf; expected log-probabilities (<= 0)")
    row_max = log_probs.max(axis=1, keepdims=True)
    if not np.isfinite(row_max).all():
        raise ValueError("log_probs: a row is all -inf; each row must be a log-distribution")
    row_norm = row_max[:, 0] + np.log(np.exp(log_probs - row_max).sum(axis=1))  # (T,)
    worst = int(np.argmax(np.abs(row_norm)))
    if abs(row_norm[worst]) > LOG_NORM_TOL:
        raise ValueError(
            f"log_probs: each row of shape (T, C) must be log-probabilities (logsumexp 0), "
            f"but row {worst} has logsumexp {row_norm[worst]:.3g}; apply log_softmax first"
        )
    return log_probs


def _check_inputs(log_probs, labels, blank) -> tuple[np.ndarray, np.ndarray]:
    """Validate one sequence; return ``(log_probs as float64, labels as int64 array)``."""
    log_probs = check_log_probs(log_probs, blank)
    return log_probs, _check_labels("labels", labels, log_probs.shape[1], blank)


def _check_labels(name, labels, C, blank) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(
            f"{name}: expected a 1-D sequence of label ids (U,), got shape {array.shape}"
        )
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name}: expected integer label ids, got dtype {array.dtype}")
    array = array.astype(np.int64)
    if ((array < 0) | (array >= C)).any():
        raise ValueError(f"{name}: label ids must lie in [0, C) = [0, {C}), got {array.tolist()}")
    if (array == blank).any():
        raise ValueError(f"{name}: must not contain the blank ({blank}), got {array.tolist()}")
    return array


def _skip_allowed(ext: np.ndarray, blank: int) -> np.ndarray:
    """``skip[s]``: may a path jump from ``s - 2`` straight to ``s``? Shape (S,).

    Only onto a label, and only if it differs from the label two positions back: between two equal
    labels the blank is compulsory, otherwise B would merge them.
    """
    skip = np.zeros(len(ext), dtype=bool)
    skip[2:] = (ext[2:] != blank) & (ext[2:] != ext[:-2])
    return skip


def ctc_forward(log_probs: np.ndarray, labels, blank: int = 0) -> np.ndarray:
    """Forward variables of CTC, in log space.

    ``alpha[t, s]`` is the total probability of the path prefixes ``pi_1..pi_t`` that are at
    position ``s`` of ``l'`` at frame ``t`` (emission at ``t`` included):

        alpha[t, s] = y[t, l'_s] * (alpha[t-1, s] + alpha[t-1, s-1] + skip[s] * alpha[t-1, s-2])

    with ``alpha[0, 0] = y[0, blank]``, ``alpha[0, 1] = y[0, l_1]`` and 0 elsewhere.

    Inputs:
    - log_probs: (T, C) natural-log probabilities, each row log-sum-exps to 0
    - labels: (U,) label ids in [0, C), none equal to ``blank``
    - blank: index of the blank symbol

    Returns:
    - log_alpha: (T, 2U+1), ``-inf`` where no prefix reaches ``(t, s)``
    """
    log_probs, labels = _check_inputs(log_probs, labels, blank)
    ext = extend_with_blanks(labels, blank)  # (S,)
    skip = _skip_allowed(ext, blank)  # (S,)
    emit = log_probs[:, ext]  # (T, S): log y[t, l'_s]
    T, S = emit.shape

    log_alpha = np.full((T, S), -np.inf)
    log_alpha[0, :2] = emit[0, :2]
    for t in range(1, T):
        prev = log_alpha[t - 1]  # (S,)
        total = prev.copy()  # stay at s
        total[1:] = np.logaddexp(total[1:], prev[:-1])  # advance from s - 1
        total[2:] = np.where(skip[2:], np.logaddexp(total[2:], prev[:-2]), total[2:])  # from s - 2
        log_alpha[t] = total + emit[t]
    return log_alpha


def ctc_backward(log_probs: np.ndarray, labels, blank: int = 0) -> np.ndarray:
    """Backward variables of CTC, in log space.

    ``beta[t, s]`` is the total probability of the path suffixes ``pi_t..pi_T`` that start at
    position ``s`` of ``l'`` at frame ``t`` and end on one of the last two positions. As in Graves
    et al. (2006) it **includes the emission at t**, so ``alpha[t, s] * beta[t, s] / y[t, l'_s]``
    is the probability of all the paths through ``(t, s)``:

        beta[t, s] = y[t, l'_s] * (beta[t+1, s] + beta[t+1, s+1] + skip[s+2] * beta[t+1, s+2])

    with ``beta[T-1, S-1] = y[T-1, blank]``, ``beta[T-1, S-2] = y[T-1, l_U]`` and 0 elsewhere.

    Inputs and shapes as in :func:`ctc_forward`. Returns ``log_beta`` (T, 2U+1).
    """
    log_probs, labels = _check_inputs(log_probs, labels, blank)
    ext = extend_with_blanks(labels, blank)  # (S,)
    skip = _skip_allowed(ext, blank)  # (S,)
    emit = log_probs[:, ext]  # (T, S)
    T, S = emit.shape

    log_beta = np.full((T, S), -np.inf)
    log_beta[T - 1, -2:] = emit[T - 1, -2:]
    for t in range(T - 2, -1, -1):
        nxt = log_beta[t + 1]  # (S,)
        total = nxt.copy()  # stay at s
        total[:-1] = np.logaddexp(total[:-1], nxt[1:])  # move on to s + 1
        total[:-2] = np.where(skip[2:], np.logaddexp(total[:-2], nxt[2:]), total[:-2])  # to s + 2
        log_beta[t] = total + emit[t]
    return log_beta


def _log_likelihood(log_alpha: np.ndarray) -> float:
    """``log p(l | x)``: the paths must end on the last label or the final blank."""
    return float(np.logaddexp.reduce(log_alpha[-1, -2:]))


def ctc_loss(log_probs: np.ndarray, labels, blank: int = 0) -> float:
    """CTC loss ``-log p(labels | x)`` of one sequence.

    Returns ``inf`` when no path maps to ``labels``, for instance when ``T`` is shorter than the
    labels plus the blanks required between repeated labels (``[1, 1]`` needs ``T >= 3``).

    Inputs as in :func:`ctc_forward`.
    """
    return -_log_likelihood(ctc_forward(log_probs, labels, blank))


def ctc_grad(log_probs: np.ndarray, labels, blank: int = 0) -> np.ndarray:
    """Gradient of :func:`ctc_loss` with respect to the pre-softmax activations ``u``.

    With ``log_probs = log_softmax(u)`` Graves et al. (2006, eq. 16) give

        d loss / d u[t, k] = y[t, k] - (1 / p) * sum_{s: l'_s = k} alpha[t, s] beta[t, s] / y[t, k]

    The second term is the posterior probability that frame ``t`` emits ``k``; each summand is
    formed as ``exp(log_alpha + log_beta - log y - log p)``, a number in [0, 1], so nothing
    underflows or overflows however long the sequence.

    When no alignment exists (loss ``inf``) the gradient is undefined; this function returns
    zeros, the convention of ``torch.nn.functional.ctc_loss(..., zero_infinity=True)``: such a
    sample then contributes nothing to training.

    Inputs as in :func:`ctc_forward`. Returns ``grad`` (T, C).
    """
    log_alpha = ctc_forward(log_probs, labels, blank)  # (T, S)
    log_beta = ctc_backward(log_probs, labels, blank)  # (T, S)
    log_probs = np.asarray(log_probs, dtype=np.float64)
    log_p = _log_likelihood(log_alpha)
    if log_p == -np.inf:
        return np.zeros_like(log_probs)

    ext = extend_with_blanks(labels, blank)  # (S,)
    emit = log_probs[:, ext]  # (T, S)
    # Where y[t, l'_s] = 0, alpha and beta are -inf too; dividing by y would give -inf - -inf.
    safe_emit = np.where(np.isfinite(emit), emit, 0.0)
    occupancy = np.exp(log_alpha + log_beta - safe_emit - log_p)  # (T, S): P(pi_t at s | l, x)
    posterior = np.zeros_like(log_probs)  # (T, C)
    np.add.at(posterior.T, ext, occupancy.T)  # sum the positions s that carry the same symbol
    return np.exp(log_probs) - posterior
