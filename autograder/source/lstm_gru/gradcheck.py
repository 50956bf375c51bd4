"""Numerical gradients and the relative error used throughout the course.

A backward pass is checked against centred finite differences,

    df/dx_i ≈ (f(x + h e_i) - f(x - h e_i)) / (2h),

whose truncation error is O(h²). In float64 with h = 1e-5 the rounding error is about
eps·|f|/h ≈ 1e-11·|f|, so a correct backward agrees to a relative error of about 1e-8 or better;
an error above 1e-5 almost always means a bug.

This file has no dependency beyond numpy on purpose: the student notebooks ship a copy of it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def rel_error(x, y, eps: float = 1e-12) -> float:
    """Largest elementwise relative error ``|x - y| / max(|x| + |y|, eps)``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"rel_error: shapes differ, {x.shape} and {y.shape}")
    if x.size == 0:
        return 0.0
    return float(np.max(np.abs(x - y) / np.maximum(np.abs(x) + np.abs(y), eps)))


def eval_numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-5):
    """Centred-difference gradient of a scalar function ``f`` at ``x`` (``x`` is perturbed in place
    and restored)."""
    grad = np.zeros_like(x, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        f_plus = f(x)
        x[i] = old - h
        f_minus = f(x)
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * h)
        it.iternext()
    return grad


def eval_numerical_gradient_array(
    f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, df: np.ndarray, h: float = 1e-5
):
    """Centred-difference gradient of ``sum(f(x) * df)`` at ``x``: the vector-Jacobian product that
    a backward function computes for the upstream gradient ``df``."""
    return eval_numerical_gradient(lambda v: float(np.sum(f(v) * df)), x, h)
