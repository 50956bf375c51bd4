# Generated from solutions/gradcheck.py by `python -m autograder release`; do not edit.
# Edit solutions/gradcheck.py and release again.
"""Numerical gradients, relative errors, and the self-checks of the assignments.

A backward pass is checked against centred finite differences,

    df/dx_i ≈ (f(x + h e_i) - f(x - h e_i)) / (2h),

whose truncation error is O(h²). In float64 with h = 1e-5 the rounding error of each entry is about
eps·|f|/h ≈ 1e-11·|f|, so a correct backward agrees with it to a relative error of about 1e-8 or
better; an error above 1e-5 almost always means a bug.

Two relative errors are defined here:

* :func:`rel_error`, entry by entry, ``max_i |a_i - b_i| / (|a_i| + |b_i|)``, the classical one;
* :func:`norm_rel_error`, of the whole array, ``‖a - b‖ / (‖a‖ + ‖b‖)``, which the self-checks
  use. Entry by entry, an entry that happens to be nearly zero (a gradient entry of 1e-6, or
  ``y - posterior`` after cancellation) carries the same absolute noise as the others (about 1e-10
  for finite differences, 1e-13 for rounding after hundreds of steps), so its own relative error can
  reach 1e-4 for a correct implementation. Over the whole array, a correct backward agrees with
  finite differences to about 1e-9 or better and a correct forward with the reference to about
  1e-13 or better; a bug gives 1e-3 or (much) more.

The ``check_*`` functions are the visible self-checks of the assignment notebooks: each compares
everything it is given, prints one line per output or gradient, and raises one ``AssertionError``
that names the function, every output or gradient that is wrong, its error, the threshold, and a
hint where the difference has a recognisable cause (a shape, a transposition, a sign, NaN).

This file has no dependency beyond numpy on purpose: the student notebooks ship a copy of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

# The default thresholds of the checks below (see the module docstring for the measured errors).
OUTPUT_THRESHOLD = 1e-8
GRADIENT_THRESHOLD = 1e-6


def rel_error(x, y, eps: float = 1e-12) -> float:
    """Largest elementwise relative error ``|x - y| / max(|x| + |y|, eps)``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"rel_error: shapes differ, {x.shape} and {y.shape}")
    if x.size == 0:
        return 0.0
    return float(np.max(np.abs(x - y) / np.maximum(np.abs(x) + np.abs(y), eps)))


def norm_rel_error(x, y) -> float:
    """Relative error of a whole array, ``‖x - y‖ / (‖x‖ + ‖y‖)`` (0 when both are zero)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"norm_rel_error: shapes differ, {x.shape} and {y.shape}")
    scale = np.linalg.norm(x) + np.linalg.norm(y)
    return float(np.linalg.norm(x - y) / scale) if scale > 0 else 0.0


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


# ------------------------------------------------------------------------------------------------
# Self-checks with messages that say what is wrong.


def fixture_cases(fixtures, group: str) -> list[dict[str, np.ndarray]]:
    """The cases stored in ``fixtures`` (a dict of arrays, e.g. ``dict(np.load(...))``) under keys
    ``"<group><i>_<name>"``, as a list of ``{name: array}`` in the order of ``i``."""
    cases: dict[int, dict[str, np.ndarray]] = {}
    for key in fixtures:
        index, separator, name = key[len(group):].partition("_")
        if key.startswith(group) and index.isdigit() and separator:
            cases.setdefault(int(index), {})[name] = fixtures[key]
    if not cases:
        raise KeyError(f"fixtures hold no cases of {group!r}")
    return [cases[i] for i in sorted(cases)]


def _as_array(value, what: str) -> tuple[np.ndarray | None, str | None]:
    """``value`` as a float64 array, or ``(None, problem)`` when it cannot be one."""
    if value is None:
        return None, f"{what} is None (a missing `return`, or a variable never assigned?)"
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value, dtype=np.float64), None
    except (TypeError, ValueError):
        return None, f"{what} is a {type(value).__name__}, not an array of numbers"


def _shape_problem(what: str, got: np.ndarray, expected: np.ndarray) -> str | None:
    if got.shape == expected.shape:
        return None
    message = f"{what} has shape {got.shape}, expected {expected.shape}"
    if got.shape == expected.shape[::-1]:
        message += " (transposed?)"
    elif got.size == expected.size:
        message += " (the same entries in another layout: check the order of the axes)"
    elif got.ndim == expected.ndim + 1 or got.ndim + 1 == expected.ndim:
        message += " (an axis too many or too few: a missing sum over the batch, or a kept axis?)"
    return message


def _value_hint(got: np.ndarray, expected: np.ndarray) -> str:
    """A likely cause of a difference between two arrays of the same shape, or ''."""
    finite = np.isfinite(expected)
    if np.any(np.isnan(got) & ~np.isnan(expected)):
        return "it contains NaN (an overflow in exp, or 0/0?)"
    if np.any(np.isneginf(got) & finite):
        return ("it contains -inf where the expected value is finite (a probability that "
                "underflowed to 0? work with logarithms)")
    if np.any(np.isinf(got) & finite):
        return "it contains inf where the expected value is finite (an overflow?)"
    if not np.any(got[finite]) and np.any(expected[finite]):
        return "it is all zeros (is the result ever written, or is a term missing?)"
    if np.allclose(got[finite], -expected[finite], rtol=1e-6, atol=1e-12):
        return "it has the opposite sign"
    if (got.ndim == 2 and got.shape[0] == got.shape[1]
            and np.allclose(got, expected.T, rtol=1e-6, atol=1e-12)):
        return "it equals the expected value transposed"
    return ""


def _message(function: str, problems: list[str], hint: str | None) -> str:
    lines = [f"{function}: " + (problems[0] if len(problems) == 1 else
                                f"{len(problems)} problems:")]
    if len(problems) > 1:
        lines += [f"  - {p}" for p in problems]
    if hint:
        lines.append(f"  Hint: {hint}")
    return "\n".join(lines)


def compare_output(name: str, got, expected, threshold: float = OUTPUT_THRESHOLD) -> str | None:
    """None if ``got`` matches ``expected`` (the same shape, the same infinities, and the
    :func:`norm_rel_error` of the finite entries at most ``threshold``); else a sentence saying how
    it differs."""
    got, problem = _as_array(got, name)
    if problem:
        return problem
    expected = np.asarray(expected, dtype=np.float64)
    problem = _shape_problem(name, got, expected)
    if problem:
        return problem
    infinite = np.isinf(expected)
    wrong_inf = (np.isinf(got) != infinite) | (infinite & (got != expected))
    if np.any(wrong_inf & infinite):
        index = tuple(int(i) for i in np.argwhere(wrong_inf & infinite)[0])
        return (f"{name}{list(index)} is {got[index]}, expected {expected[index]} "
                f"({int(np.sum(wrong_inf))} entries have an infinity in the wrong place)")
    if got.size == 0:
        return None
    finite = ~infinite
    if np.all(np.isfinite(got[finite])):
        error = norm_rel_error(got[finite], expected[finite])
    else:
        error = np.inf
    if error <= threshold:
        return None
    with np.errstate(invalid="ignore"):
        difference = np.where(finite, np.abs(got - expected), 0.0)
    difference = np.where(np.isnan(difference), np.inf, difference)
    index = tuple(int(i) for i in np.unravel_index(np.argmax(difference), got.shape))
    message = (f"{name} differs from the expected value: relative error {error:.1e} "
               f"(threshold {threshold:.0e}); the largest difference is at {name}{list(index)} "
               f"= {got[index]:.6g}, expected {expected[index]:.6g}")
    why = _value_hint(got, expected)
    return f"{message}; {why}" if why else message


def check_outputs(function: str, outputs: dict, threshold: float = OUTPUT_THRESHOLD,
                  hint: str | None = None, case: str = "") -> None:
    """Compare every output of ``function`` with its expected value.

    ``outputs`` maps a name (``"h_next"``) to a pair ``(got, expected)``. Prints one line per
    output and raises one ``AssertionError`` that lists every mismatch, with ``hint`` (what to look
    at when the values differ) and ``case`` (a description of the inputs) added.
    """
    where = f" [{case}]" if case else ""
    problems = []
    for name, (got, expected) in outputs.items():
        problem = compare_output(name, got, expected, threshold)
        print(f"{function}{where}: {name} " + ("OK" if problem is None else "WRONG"))
        if problem is not None:
            problems.append(problem + where)
    if problems:
        raise AssertionError(_message(function, problems, hint))


def check_that(function: str, condition: bool, problem: str, hint: str | None = None) -> None:
    """An ``AssertionError`` naming ``function`` and saying ``problem`` unless ``condition``."""
    if not condition:
        raise AssertionError(_message(function, [problem], hint))


def check_gradients(
    function: str,
    forward: Callable[..., np.ndarray],
    inputs: Sequence[np.ndarray],
    grads: Sequence,
    names: Sequence[str],
    upstream: np.ndarray,
    threshold: float = GRADIENT_THRESHOLD,
    case: str = "",
    forward_name: str | None = None,
    h: float = 1e-5,
) -> None:
    """Compare every gradient that the backward ``function`` returned with finite differences.

    ``forward(*inputs)`` is the forward pass as one array; ``grads`` are the backward's results for
    the upstream gradient ``upstream`` (of ``forward``'s shape), in the order of ``inputs``, named
    ``names`` (``"dx"``, ``"dh_prev"``, ...). Every gradient is checked, a line printed for each,
    and one ``AssertionError`` lists every gradient whose :func:`norm_rel_error` exceeds
    ``threshold``.
    ``forward_name``, the student's forward function that ``forward`` calls, is named in the hint:
    the numerical gradient differentiates it, so it must pass its own check first.
    """
    where = f" [{case}]" if case else ""
    grads = tuple(grads) if isinstance(grads, (tuple, list)) else (grads,)
    if len(grads) != len(names):
        raise AssertionError(_message(function, [
            f"returned {len(grads)} values, expected {len(names)}: ({', '.join(names)}){where}"],
            "return the gradients in the order of the forward's inputs"))
    problems = []
    for k, (name, grad) in enumerate(zip(names, grads, strict=True)):
        def f(value, k=k):
            args = list(inputs)
            args[k] = value
            return np.asarray(forward(*args), dtype=np.float64)

        numerical = eval_numerical_gradient_array(f, inputs[k].copy(), upstream, h)
        got, problem = _as_array(grad, name)
        if problem is None:
            problem = _shape_problem(name, got, numerical)
        if problem is None and not np.all(np.isfinite(got)):
            problem = f"{name} contains NaN or inf"
        if problem is None:
            error = norm_rel_error(got, numerical)
            print(f"{function}{where}: {name} relative error {error:.1e}"
                  + ("" if error <= threshold else f"  WRONG (threshold {threshold:.0e})"))
            if error > threshold:
                why = _value_hint(got, numerical)
                problem = (f"{name} does not match the numerical gradient: relative error "
                           f"{error:.1e} (threshold {threshold:.0e})" + (f"; {why}" if why else ""))
        else:
            print(f"{function}{where}: {name} WRONG")
        if problem is not None:
            problems.append(problem + where)
    if problems:
        hint = ("follow each wrong gradient back through the operations it passes, and check that "
                "the cache holds the values of this call (not arrays changed later)")
        if forward_name:
            hint += (f"; the numerical gradient differentiates your {forward_name}: if its own "
                     "check fails, fix it first")
        raise AssertionError(_message(function, problems, hint))
