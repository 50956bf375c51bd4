"""Input checks shared by the reference functions.

Every public function validates its arguments before doing any arithmetic, so a wrong shape fails
with a message that names the argument and the shape expected, instead of broadcasting silently or
failing deep inside a matmul.

Shapes are written with letters, as in the docstrings:
``check_array("x", x, ("N", "T", "D"), dims)`` binds ``N``, ``T`` and ``D`` in the dict ``dims`` the
first time they are seen and checks them every later time, so
``check_array("Wx", Wx, ("D", "H"), dims)`` fails if ``Wx`` does not match ``x``. An integer in a
spec is a fixed size; a string of the form ``"4H"`` is a multiple of a bound letter.
"""

from __future__ import annotations

import re

import numpy as np

_MULTIPLE = re.compile(r"^(\d+)([A-Za-z]\w*)$")


def format_spec(spec: tuple) -> str:
    """``("N", "T", "D")`` -> ``"(N, T, D)"``, as the error messages write a shape."""
    return "(" + ", ".join(str(s) for s in spec) + ("," if len(spec) == 1 else "") + ")"


def check_array(name: str, value, spec: tuple, dims: dict | None = None) -> np.ndarray:
    """Check that ``value`` is a floating-point numpy array whose shape matches ``spec``.

    Returns the array unchanged. Raises ``TypeError`` for a non-array or a non-float dtype and
    ``ValueError`` for a wrong rank or size; both messages name ``name`` and the expected shape.
    """
    expected = format_spec(spec)
    if not isinstance(value, np.ndarray):
        raise TypeError(
            f"{name}: expected a numpy array of shape {expected}, got {type(value).__name__}"
        )
    if not np.issubdtype(value.dtype, np.floating):
        raise TypeError(
            f"{name}: expected a floating-point array of shape {expected}, got dtype {value.dtype}"
        )
    check_shape(name, value.shape, spec, {} if dims is None else dims)
    return value


def check_shape(name: str, shape: tuple, spec: tuple, dims: dict) -> None:
    """Check ``shape`` against ``spec``, binding the letters not yet in ``dims`` (shared by the
    numpy check above and the tensor check of ``solutions.modules``)."""
    expected = format_spec(spec)
    shape = tuple(shape)
    if len(shape) != len(spec):
        raise ValueError(f"{name}: expected {len(spec)} dimensions {expected}, got shape {shape}")
    for axis, (symbol, size) in enumerate(zip(spec, shape, strict=True)):
        want = _expected_size(symbol, dims)
        if want is None:
            dims[symbol] = size
        elif want != size:
            bound = ", ".join(f"{k}={v}" for k, v in dims.items())
            raise ValueError(
                f"{name}: expected shape {expected} with {bound}, got shape {shape} "
                f"(axis {axis} is {size}, expected {want})"
            )


def _expected_size(symbol, dims: dict) -> int | None:
    if isinstance(symbol, int):
        return symbol
    if symbol in dims:
        return dims[symbol]
    match = _MULTIPLE.match(symbol)
    if match and match.group(2) in dims:
        return int(match.group(1)) * dims[match.group(2)]
    if match:
        raise ValueError(f"shape spec {symbol!r} uses {match.group(2)!r} before it is bound")
    return None


def check_positive_int(name: str, value) -> int:
    """Check that ``value`` is a positive Python or numpy integer (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)
