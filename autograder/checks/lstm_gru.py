"""Checks of the ``lstm_gru`` assignment: LSTM and GRU steps and sequences in numpy (forward and
backward), and an LSTM cell as a PyTorch module.

The cases cover batch size 1, one time step, ``D != H``, and gate pre-activations large enough to
saturate the sigmoids, where a wrong derivative shows.
"""

from __future__ import annotations

import numpy as np

from autograder.checks.core import Check
from autograder.checks.fixtures import LAYER_CASES, layer_weights, store

# Float64 throughout: a correct implementation differs from the reference by rounding only (about
# 1e-15 per step, 1e-13 over a sequence); a swapped gate or a missing derivative term changes the
# results at the 1e-2 level.
RTOL, ATOL = 1e-7, 1e-10

# The numpy layers must be written with numpy: neither a built-in recurrent layer nor autograd.
NUMPY_FORBIDDEN = ("torch", "tensorflow", "jax", "autograd")

# The module must compute the gates itself from its four parameters.
MODULE_FORBIDDEN = (
    "LSTMCell", "nn.LSTM", "GRUCell", "nn.GRU", "nn.RNN", "RNNCell", "RNNBase", "torch.lstm",
    "torch.lstm_cell", "torch.gru", "torch.gru_cell", "torch.rnn_tanh", "_VF", "torch._C",
    "torch.ops",
)


def _dims(rng, n_cases=22):
    """(N, T, D, H) of every case: the edge cases first, then random sizes."""
    fixed = [(1, 1, 3, 2), (1, 4, 2, 3), (3, 1, 4, 4), (2, 5, 3, 3), (4, 2, 1, 5), (2, 10, 3, 2)]
    random = [
        tuple(int(v) for v in (rng.integers(1, 5), rng.integers(1, 7), rng.integers(1, 6),
                               rng.integers(1, 6)))
        for _ in range(n_cases - len(fixed))
    ]
    return fixed + random


def _scale(i):
    # Every third case drives the gates into saturation.
    return 2.5 if i % 3 == 2 else 0.8


def _lstm_weights(rng, D, H, scale):
    return {"Wx": rng.normal(0, scale / np.sqrt(D), (D, 4 * H)),
            "Wh": rng.normal(0, scale / np.sqrt(H), (H, 4 * H)),
            "b": rng.normal(0, 0.5, 4 * H)}


def _gru_weights(rng, D, H, scale):
    return {"Wx": rng.normal(0, scale / np.sqrt(D), (D, 3 * H)),
            "Wh": rng.normal(0, scale / np.sqrt(H), (H, 3 * H)),
            "bx": rng.normal(0, 0.5, 3 * H), "bh": rng.normal(0, 0.5, 3 * H)}


def _step_cases(weights, with_cell):
    def cases(rng):
        out = []
        for i, (N, _, D, H) in enumerate(_dims(rng)):
            case = {"N": N, "D": D, "H": H, "x": rng.normal(size=(N, D)),
                    "h_prev": rng.uniform(-1, 1, (N, H))}
            if with_cell:
                case["c_prev"] = rng.normal(size=(N, H))
                case["dc_next"] = rng.normal(size=(N, H))
            case.update(weights(rng, D, H, _scale(i)))
            case["dh_next"] = rng.normal(size=(N, H))
            out.append(case)
        return out
    return cases


def _sequence_cases(weights, with_cell):
    def cases(rng):
        out = []
        for i, (N, T, D, H) in enumerate(_dims(rng)):
            case = {"N": N, "T": T, "D": D, "H": H, "x": rng.normal(size=(N, T, D)),
                    "h0": rng.uniform(-1, 1, (N, H))}
            if with_cell:
                case["c0"] = rng.normal(size=(N, H))
            case.update(weights(rng, D, H, _scale(i)))
            case["dh"] = rng.normal(size=(N, T, H))
            out.append(case)
        return out
    return cases


def _f64(value):
    return np.array(value, dtype=np.float64)


def _named(names, values):
    values = tuple(values)
    if len(values) != len(names):
        raise ValueError(f"returned {len(values)} values, expected {len(names)}: {names}")
    return {name: _f64(v) for name, v in zip(names, values, strict=True)}


def _lstm_step(ns, c):
    return ns["lstm_step_forward"](c["x"], c["h_prev"], c["c_prev"], c["Wx"], c["Wh"], c["b"])


def _run_lstm_step_forward(ns, c):
    h_next, c_next, _ = _lstm_step(ns, c)
    return {"h_next": _f64(h_next), "c_next": _f64(c_next)}


def _run_lstm_step_backward(ns, c):
    *_, cache = _lstm_step(ns, c)
    grads = ns["lstm_step_backward"](c["dh_next"], c["dc_next"], cache)
    return _named(("dx", "dh_prev", "dc_prev", "dWx", "dWh", "db"), grads)


def _run_lstm_forward(ns, c):
    h, _ = ns["lstm_forward"](c["x"], c["h0"], c["c0"], c["Wx"], c["Wh"], c["b"])
    return {"h": _f64(h)}


def _run_lstm_backward(ns, c):
    _, cache = ns["lstm_forward"](c["x"], c["h0"], c["c0"], c["Wx"], c["Wh"], c["b"])
    grads = ns["lstm_backward"](c["dh"], cache)
    return _named(("dx", "dh0", "dc0", "dWx", "dWh", "db"), grads)


def _gru_step(ns, c):
    return ns["gru_step_forward"](c["x"], c["h_prev"], c["Wx"], c["Wh"], c["bx"], c["bh"])


def _run_gru_step_forward(ns, c):
    h_next, _ = _gru_step(ns, c)
    return {"h_next": _f64(h_next)}


def _run_gru_step_backward(ns, c):
    _, cache = _gru_step(ns, c)
    grads = ns["gru_step_backward"](c["dh_next"], cache)
    return _named(("dx", "dh_prev", "dWx", "dWh", "dbx", "dbh"), grads)


def _run_gru_forward(ns, c):
    h, _ = ns["gru_forward"](c["x"], c["h0"], c["Wx"], c["Wh"], c["bx"], c["bh"])
    return {"h": _f64(h)}


def _run_gru_backward(ns, c):
    _, cache = ns["gru_forward"](c["x"], c["h0"], c["Wx"], c["Wh"], c["bx"], c["bh"])
    grads = ns["gru_backward"](c["dh"], cache)
    return _named(("dx", "dh0", "dWx", "dWh", "dbx", "dbh"), grads)


_CELL_PARAMETERS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _cell_cases(rng):
    cases = []
    for i, (N, _, D, H) in enumerate(_dims(rng)):
        bias = int(i % 5 != 4)  # a few cells without biases
        with_state = int(i % 4 != 3)  # a few calls with the default (zero) state
        scale = _scale(i)
        case = {"N": N, "D": D, "H": H, "bias": bias, "with_state": with_state,
                "weight_ih": rng.normal(0, scale / np.sqrt(D), (4 * H, D)),
                "weight_hh": rng.normal(0, scale / np.sqrt(H), (4 * H, H)),
                "x": rng.normal(size=(N, D)),
                "dh": rng.normal(size=(N, H)), "dc": rng.normal(size=(N, H))}
        if bias:
            case["bias_ih"] = rng.normal(0, 0.5, 4 * H)
            case["bias_hh"] = rng.normal(0, 0.5, 4 * H)
        if with_state:
            case["h0"] = rng.uniform(-1, 1, (N, H))
            case["c0"] = rng.normal(size=(N, H))
        cases.append(case)
    return cases


def _run_cell(ns, c):
    """Load the case's parameters into the student's cell, run one step in float64 and backpropagate
    ``sum(h * dh) + sum(c * dc)``; return the outputs and every gradient."""
    import torch

    cell = ns["LSTMCell"](c["D"], c["H"], bias=bool(c["bias"])).double()
    expected = [p for p in _CELL_PARAMETERS if p in c]
    params = dict(cell.named_parameters())
    if sorted(params) != sorted(expected):
        raise ValueError(f"LSTMCell has parameters {sorted(params)}, expected {sorted(expected)}")
    with torch.no_grad():
        for name in expected:
            if tuple(params[name].shape) != c[name].shape:
                raise ValueError(f"{name} has shape {tuple(params[name].shape)}, "
                                 f"expected {c[name].shape}")
            params[name].copy_(torch.from_numpy(c[name]))
    x = torch.tensor(c["x"], requires_grad=True)
    inputs = {"x": x}
    if c["with_state"]:
        inputs["h0"] = torch.tensor(c["h0"], requires_grad=True)
        inputs["c0"] = torch.tensor(c["c0"], requires_grad=True)
        h, cn = cell(x, (inputs["h0"], inputs["c0"]))
    else:
        h, cn = cell(x)
    loss = (h * torch.from_numpy(c["dh"])).sum() + (cn * torch.from_numpy(c["dc"])).sum()
    leaves = {**inputs, **{name: params[name] for name in expected}}
    grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
    out = {"h": h.detach().numpy().astype(np.float64), "c": cn.detach().numpy().astype(np.float64)}
    for name, grad in zip(leaves, grads, strict=True):
        value = torch.zeros_like(leaves[name]) if grad is None else grad
        out[f"d{name}"] = value.detach().numpy().astype(np.float64)
    return out


CHECKS = [
    Check("lstm_step_forward", 2, ("lstm_step_forward",), _step_cases(_lstm_weights, True),
          _run_lstm_step_forward, RTOL, ATOL, NUMPY_FORBIDDEN),
    Check("lstm_step_backward", 3, ("lstm_step_forward", "lstm_step_backward"),
          _step_cases(_lstm_weights, True), _run_lstm_step_backward, RTOL, ATOL, NUMPY_FORBIDDEN),
    Check("lstm_forward", 1, ("lstm_forward",), _sequence_cases(_lstm_weights, True),
          _run_lstm_forward, RTOL, ATOL, NUMPY_FORBIDDEN),
    Check("lstm_backward", 2, ("lstm_forward", "lstm_backward"),
          _sequence_cases(_lstm_weights, True), _run_lstm_backward, RTOL, ATOL, NUMPY_FORBIDDEN),
    Check("gru_step_forward", 2, ("gru_step_forward",), _step_cases(_gru_weights, False),
          _run_gru_step_forward, RTOL, ATOL, NUMPY_FORBIDDEN),
    Check("gru_step_backward", 3, ("gru_step_forward", "gru_step_backward"),
          _step_cases(_gru_weights, False), _run_gru_step_backward, RTOL, ATOL, NUMPY_FORBIDDEN),
    Check("gru_forward", 1, ("gru_forward",), _sequence_cases(_gru_weights, False),
          _run_gru_forward, RTOL, ATOL, NUMPY_FORBIDDEN),
    Check("gru_backward", 2, ("gru_forward", "gru_backward"),
          _sequence_cases(_gru_weights, False), _run_gru_backward, RTOL, ATOL, NUMPY_FORBIDDEN),
    Check("LSTMCell", 3, ("LSTMCell",), _cell_cases, _run_cell, RTOL, ATOL, MODULE_FORBIDDEN),
]


# ------------------------------------------------------------------------------------------------
# The fixtures of the visible tests (the student's notebook checks itself with them).


def fixtures(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The fixtures of the visible tests of this assignment (see ``fixtures.py``)."""
    from solutions.gru import gru_forward, gru_step_forward
    from solutions.lstm import lstm_forward, lstm_step_forward

    f: dict[str, np.ndarray] = {}
    for i, (N, T, D, H, scale) in enumerate(LAYER_CASES):
        Wx, Wh = layer_weights(rng, D, H, 4, scale)
        x, h_prev, c_prev = rng.normal(size=(N, D)), rng.uniform(-1, 1, (N, H)), rng.normal(
            size=(N, H))
        b = rng.normal(0, 0.5, 4 * H)
        h_next, c_next, _ = lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b)
        store(f, "lstm_step", i, x=x, h_prev=h_prev, c_prev=c_prev, Wx=Wx, Wh=Wh, b=b,
               h_next=h_next, c_next=c_next)
        Wx, Wh = layer_weights(rng, D, H, 4, scale)
        x, h0, c0 = rng.normal(size=(N, T, D)), rng.uniform(-1, 1, (N, H)), rng.normal(size=(N, H))
        b = rng.normal(0, 0.5, 4 * H)
        h, _ = lstm_forward(x, h0, c0, Wx, Wh, b)
        store(f, "lstm_seq", i, x=x, h0=h0, c0=c0, Wx=Wx, Wh=Wh, b=b, h=h)
        Wx, Wh = layer_weights(rng, D, H, 3, scale)
        x, h_prev = rng.normal(size=(N, D)), rng.uniform(-1, 1, (N, H))
        bx, bh = rng.normal(0, 0.5, 3 * H), rng.normal(0, 0.5, 3 * H)
        h_next, _ = gru_step_forward(x, h_prev, Wx, Wh, bx, bh)
        store(f, "gru_step", i, x=x, h_prev=h_prev, Wx=Wx, Wh=Wh, bx=bx, bh=bh, h_next=h_next)
        Wx, Wh = layer_weights(rng, D, H, 3, scale)
        x, h0 = rng.normal(size=(N, T, D)), rng.uniform(-1, 1, (N, H))
        bx, bh = rng.normal(0, 0.5, 3 * H), rng.normal(0, 0.5, 3 * H)
        h, _ = gru_forward(x, h0, Wx, Wh, bx, bh)
        store(f, "gru_seq", i, x=x, h0=h0, Wx=Wx, Wh=Wh, bx=bx, bh=bh, h=h)
    return f
