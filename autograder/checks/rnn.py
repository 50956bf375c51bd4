"""Checks of the ``rnn`` assignment: the tanh RNN step and sequence, BPTT, clipping, the BiRNN.

The cases cover batch size 1, one time step, ``D != H`` and ``D == H``, and weights of two scales
(small, where tanh is nearly linear, and large, where it saturates and the derivative matters).
"""

from __future__ import annotations

import numpy as np

from autograder.checks.core import Check
from autograder.checks.fixtures import LAYER_CASES, layer_weights, store

# Float64 throughout. A correct implementation differs from the reference only by the order of the
# floating-point operations: about 1e-15 relative per step, 1e-13 over a BPTT of 10 steps; a
# plausible bug (a missing derivative, a dropped term) changes results at the 1e-2 level or more.
RTOL, ATOL = 1e-7, 1e-10

# The numpy layers must be written with numpy: neither a built-in RNN nor autograd.
FORBIDDEN = ("torch", "tensorflow", "jax", "autograd", "nn.RNN", "rnn_tanh")


def _dims(rng, n_cases=22):
    """(N, T, D, H) for every case: the edge cases first, then random sizes."""
    fixed = [(1, 1, 3, 2), (1, 5, 2, 4), (3, 1, 4, 4), (2, 4, 3, 3), (4, 3, 1, 5), (2, 12, 3, 2)]
    random = [
        tuple(int(v) for v in (rng.integers(1, 5), rng.integers(1, 8), rng.integers(1, 6),
                               rng.integers(1, 6)))
        for _ in range(n_cases - len(fixed))
    ]
    return fixed + random


def _weights(rng, D, H, scale):
    return {
        "Wx": rng.normal(0, scale / np.sqrt(D), (D, H)),
        "Wh": rng.normal(0, scale / np.sqrt(H), (H, H)),
        "b": rng.normal(0, 0.5, H),
    }


def _scale(i):
    # Every third case saturates tanh (pre-activations of a few units), the rest stay moderate.
    return 2.5 if i % 3 == 2 else 0.8


def _step_cases(rng):
    cases = []
    for i, (N, _, D, H) in enumerate(_dims(rng)):
        cases.append({
            "N": N, "D": D, "H": H,
            "x": rng.normal(size=(N, D)),
            "h_prev": rng.uniform(-1, 1, (N, H)),
            **_weights(rng, D, H, _scale(i)),
            "dh_next": rng.normal(size=(N, H)),
        })
    return cases


def _sequence_cases(rng):
    cases = []
    for i, (N, T, D, H) in enumerate(_dims(rng)):
        cases.append({
            "N": N, "T": T, "D": D, "H": H,
            "x": rng.normal(size=(N, T, D)),
            "h0": rng.uniform(-1, 1, (N, H)),
            **_weights(rng, D, H, _scale(i)),
            "dh": rng.normal(size=(N, T, H)),
        })
    return cases


def _f64(value):
    return np.array(value, dtype=np.float64)


def _run_step_forward(ns, c):
    h_next, _ = ns["rnn_step_forward"](c["x"], c["h_prev"], c["Wx"], c["Wh"], c["b"])
    return {"h_next": _f64(h_next)}


def _run_step_backward(ns, c):
    _, cache = ns["rnn_step_forward"](c["x"], c["h_prev"], c["Wx"], c["Wh"], c["b"])
    grads = ns["rnn_step_backward"](c["dh_next"], cache)
    return dict(zip(("dx", "dh_prev", "dWx", "dWh", "db"), map(_f64, grads), strict=True))


def _run_forward(ns, c):
    h, _ = ns["rnn_forward"](c["x"], c["h0"], c["Wx"], c["Wh"], c["b"])
    return {"h": _f64(h)}


def _run_backward(ns, c):
    _, cache = ns["rnn_forward"](c["x"], c["h0"], c["Wx"], c["Wh"], c["b"])
    grads = ns["rnn_backward"](c["dh"], cache)
    return dict(zip(("dx", "dh0", "dWx", "dWh", "db"), map(_f64, grads), strict=True))


def _clip_cases(rng):
    cases = []
    shapes_list = [[(3, 2)], [(4,), (2, 3)], [(2, 2), (3,), (1, 4, 2)], [(5, 5), (5,)]]
    for i in range(24):
        shapes = shapes_list[i % len(shapes_list)]
        grads = [rng.normal(size=s) * rng.uniform(0.1, 3) for s in shapes]
        norm = float(np.sqrt(sum(np.sum(g**2) for g in grads)))
        # Half the cases need clipping (max_norm below the norm), half do not; never within 1e-3
        # of the norm, where the reference's 1e-6 guard could decide between the two branches.
        max_norm = norm * (rng.uniform(0.05, 0.8) if i % 2 == 0 else rng.uniform(1.2, 5))
        case = {"n_grads": len(grads), "max_norm": float(max_norm)}
        case.update({f"g{k}": g for k, g in enumerate(grads)})
        cases.append(case)
    cases.append({"n_grads": 2, "max_norm": 1.0, "g0": np.zeros((2, 3)), "g1": np.zeros(4)})
    return cases


def _run_clip(ns, c):
    grads = [c[f"g{k}"] for k in range(c["n_grads"])]
    clipped, total_norm = ns["clip_grad_norm"](grads, c["max_norm"])
    if len(clipped) != len(grads):
        raise ValueError(f"returned {len(clipped)} arrays for {len(grads)} gradients")
    out = {f"clipped_{k}": _f64(g) for k, g in enumerate(clipped)}
    out["total_norm"] = _f64(total_norm)
    return out


def _birnn_cases(rng):
    cases = []
    for i, (N, T, D, H) in enumerate(_dims(rng)):
        scale = _scale(i)
        forward = _weights(rng, D, H, scale)
        backward = _weights(rng, D, H, scale)
        case = {"N": N, "T": T, "D": D, "H": H, "x": rng.normal(size=(N, T, D)),
                "h0": rng.uniform(-1, 1, (2, N, H))}
        case.update({f"{k}_f": v for k, v in forward.items()})
        case.update({f"{k}_b": v for k, v in backward.items()})
        cases.append(case)
    return cases


def _run_birnn(ns, c):
    h, _ = ns["birnn_forward"](c["x"], c["h0"], c["Wx_f"], c["Wh_f"], c["b_f"],
                               c["Wx_b"], c["Wh_b"], c["b_b"])
    return {"h": _f64(h)}


CHECKS = [
    Check("rnn_step_forward", 2, ("rnn_step_forward",), _step_cases, _run_step_forward,
          RTOL, ATOL, FORBIDDEN),
    Check("rnn_step_backward", 3, ("rnn_step_forward", "rnn_step_backward"), _step_cases,
          _run_step_backward, RTOL, ATOL, FORBIDDEN),
    Check("rnn_forward", 2, ("rnn_forward",), _sequence_cases, _run_forward, RTOL, ATOL, FORBIDDEN),
    Check("rnn_backward", 4, ("rnn_forward", "rnn_backward"), _sequence_cases, _run_backward,
          RTOL, ATOL, FORBIDDEN),
    # The reference divides by (norm + 1e-6), as PyTorch; dividing by the norm alone changes the
    # result by about 1e-6 / norm relative, and the norms here are at least 0.05.
    Check("clip_grad_norm", 2, ("clip_grad_norm",), _clip_cases, _run_clip, 1e-4, 1e-9,
          (*FORBIDDEN, "clip_grad_norm_")),
    Check("birnn_forward", 2, ("birnn_forward",), _birnn_cases, _run_birnn, RTOL, ATOL, FORBIDDEN),
]


# ------------------------------------------------------------------------------------------------
# The fixtures of the visible tests (the student's notebook checks itself with them).


def fixtures(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The fixtures of the visible tests of this assignment (see ``fixtures.py``)."""
    from solutions.rnn import birnn_forward, clip_grad_norm, rnn_forward, rnn_step_forward

    f: dict[str, np.ndarray] = {}
    for i, (N, T, D, H, scale) in enumerate(LAYER_CASES):
        Wx, Wh = layer_weights(rng, D, H, 1, scale)
        x, h_prev, b = rng.normal(size=(N, D)), rng.uniform(-1, 1, (N, H)), rng.normal(0, 0.5, H)
        h_next, _ = rnn_step_forward(x, h_prev, Wx, Wh, b)
        store(f, "step", i, x=x, h_prev=h_prev, Wx=Wx, Wh=Wh, b=b, h_next=h_next)
        Wx, Wh = layer_weights(rng, D, H, 1, scale)
        x, h0, b = rng.normal(size=(N, T, D)), rng.uniform(-1, 1, (N, H)), rng.normal(0, 0.5, H)
        h, _ = rnn_forward(x, h0, Wx, Wh, b)
        store(f, "seq", i, x=x, h0=h0, Wx=Wx, Wh=Wh, b=b, h=h)
        x, h0 = rng.normal(size=(N, T, D)), rng.uniform(-1, 1, (2, N, H))
        weights = {}
        for direction in ("f", "b"):
            weights[f"Wx_{direction}"], weights[f"Wh_{direction}"] = layer_weights(
                rng, D, H, 1, scale)
            weights[f"b_{direction}"] = rng.normal(0, 0.5, H)
        h, _ = birnn_forward(x, h0, *(weights[k] for k in ("Wx_f", "Wh_f", "b_f", "Wx_b", "Wh_b",
                                                           "b_b")))
        store(f, "bi", i, x=x, h0=h0, **weights, h=h)
    # Clipping: a list that needs it, one that does not, and all zeros (norm 0: unchanged, no NaN).
    for i, (shapes, factor) in enumerate([([(3, 4), (5,)], 0.3), ([(2, 2, 2)], 4.0),
                                          ([(2, 3), (4,)], 0.0)]):
        grads = [rng.normal(size=s) * (factor > 0) for s in shapes]
        norm = float(np.sqrt(sum(np.sum(g**2) for g in grads)))
        max_norm = norm * factor if factor else 1.0
        clipped, total_norm = clip_grad_norm(grads, max_norm)
        arrays = {f"g{k}": g for k, g in enumerate(grads)}
        arrays.update({f"clipped{k}": c for k, c in enumerate(clipped)})
        store(f, "clip", i, max_norm=max_norm, total_norm=total_norm, **arrays)
    return f
