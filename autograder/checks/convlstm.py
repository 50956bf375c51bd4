"""Checks of the ``convlstm`` assignment: a ConvLSTM cell with peepholes and a stack of them run
over a sequence, both PyTorch modules.

The check loads the case's parameters into the submitted module (the parameter names are part of
the specification: ``conv.weight``, ``conv.bias``, ``weight_ci``, ``weight_cf``, ``weight_co``, and
``cells.{l}.`` in front of them in the stack), runs it in float64, and backpropagates a random
upstream gradient, so the outputs and the gradients of the input, the initial state and every
parameter are compared. The peephole weights are random (not zero as at initialisation), so each
peephole term matters. Cases cover batch size 1, one time step, kernels 1, 3 and 5, no bias, no
peepholes, the default (zero) state, and non-square frames.
"""

from __future__ import annotations

import numpy as np

from autograder.checks.core import Check
from autograder.checks.fixtures import store

# Float64 convolutions: a correct module differs from the reference by rounding only (about 1e-15
# relative); a swapped gate or a missing peephole term changes the outputs at the 1e-2 level.
RTOL, ATOL = 1e-7, 1e-10

# The cell must compute the gates itself: no built-in LSTM inside.
FORBIDDEN = (
    "LSTMCell", "nn.LSTM", "nn.GRU", "GRUCell", "nn.RNN", "RNNBase", "torch.lstm",
    "torch.lstm_cell", "_VF", "torch._C", "torch.ops",
)

_PARAM = "param."


def _cell_parameters(rng, C, Ch, k, bias, peephole, prefix=""):
    fan_in = (C + Ch) * k * k
    params = {f"{prefix}conv.weight": rng.normal(0, 1.5 / np.sqrt(fan_in), (4 * Ch, C + Ch, k, k))}
    if bias:
        params[f"{prefix}conv.bias"] = rng.normal(0, 0.5, 4 * Ch)
    if peephole:
        for name in ("weight_ci", "weight_cf", "weight_co"):
            params[f"{prefix}{name}"] = rng.normal(0, 0.7, (Ch, 1, 1))
    return {_PARAM + name: value for name, value in params.items()}


def _cell_cases(rng):
    fixed = [  # (N, C, Ch, H, W, k, bias, peephole, with_state)
        (1, 1, 1, 3, 3, 1, 1, 1, 1), (2, 2, 3, 5, 4, 3, 1, 1, 1), (1, 3, 2, 4, 6, 5, 1, 1, 1),
        (2, 2, 2, 4, 4, 3, 0, 1, 1), (2, 1, 3, 5, 5, 3, 1, 0, 1), (3, 2, 2, 3, 5, 3, 1, 1, 0),
    ]
    cases = []
    for i in range(22):
        if i < len(fixed):
            N, C, Ch, H, W, k, bias, peephole, with_state = fixed[i]
        else:
            N, C, Ch = (int(v) for v in rng.integers(1, 4, 3))
            H, W = (int(v) for v in rng.integers(2, 7, 2))
            k = int(rng.choice([1, 3, 5]))
            bias, peephole, with_state = 1, 1, int(rng.random() < 0.8)
        case = {"N": N, "C": C, "Ch": Ch, "H": H, "W": W, "k": k, "bias": bias,
                "peephole": peephole, "with_state": with_state,
                "x": rng.normal(size=(N, C, H, W)),
                "dh": rng.normal(size=(N, Ch, H, W)), "dc": rng.normal(size=(N, Ch, H, W))}
        if with_state:
            case["h0"] = rng.uniform(-1, 1, (N, Ch, H, W))
            case["c0"] = rng.normal(size=(N, Ch, H, W))
        case.update(_cell_parameters(rng, C, Ch, k, bias, peephole))
        cases.append(case)
    return cases


def _load(module, case):
    """Copy the case's parameters into ``module`` (float64); the names must match exactly."""
    import torch

    module = module.double()
    params = dict(module.named_parameters())
    expected = sorted(k[len(_PARAM):] for k in case if k.startswith(_PARAM))
    if sorted(params) != expected:
        raise ValueError(f"the module has parameters {sorted(params)}, expected {expected}")
    with torch.no_grad():
        for name in expected:
            value = case[_PARAM + name]
            if tuple(params[name].shape) != value.shape:
                raise ValueError(f"{name} has shape {tuple(params[name].shape)}, "
                                 f"expected {value.shape}")
            params[name].copy_(torch.from_numpy(value))
    return module, params


def _gradients(loss, leaves):
    """``{f"d{name}": gradient}`` of every leaf, zeros for the leaves that ``loss`` ignores."""
    import torch

    grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
    out = {}
    for (name, leaf), grad in zip(leaves.items(), grads, strict=True):
        value = torch.zeros_like(leaf) if grad is None else grad
        out[f"d{name}"] = value.detach().numpy().astype(np.float64)
    return out


def _run_cell(ns, c):
    import torch

    cell, params = _load(ns["ConvLSTMCell"](c["C"], c["Ch"], c["k"], bias=bool(c["bias"]),
                                            peephole=bool(c["peephole"])), c)
    leaves = {"x": torch.tensor(c["x"], requires_grad=True)}
    if c["with_state"]:
        leaves["h0"] = torch.tensor(c["h0"], requires_grad=True)
        leaves["c0"] = torch.tensor(c["c0"], requires_grad=True)
        h, cn = cell(leaves["x"], (leaves["h0"], leaves["c0"]))
    else:
        h, cn = cell(leaves["x"])
    loss = (h * torch.from_numpy(c["dh"])).sum() + (cn * torch.from_numpy(c["dc"])).sum()
    out = {"h": h.detach().numpy().astype(np.float64), "c": cn.detach().numpy().astype(np.float64)}
    out.update(_gradients(loss, {**leaves, **params}))
    return out


def _stack_cases(rng):
    fixed = [  # (N, T, C, channels, H, W, k, with_state)
        (1, 1, 1, [2], 3, 3, 3, 1), (2, 4, 2, [3, 2], 4, 5, 3, 1), (1, 3, 1, [2, 2, 2], 4, 4, 1, 0),
        (2, 2, 3, [4], 5, 3, 5, 0), (2, 5, 1, [2, 3], 3, 4, 3, 1),
    ]
    cases = []
    for i in range(20):
        if i < len(fixed):
            N, T, C, channels, H, W, k, with_state = fixed[i]
        else:
            N, T, C = int(rng.integers(1, 3)), int(rng.integers(1, 5)), int(rng.integers(1, 3))
            channels = [int(v) for v in rng.integers(1, 4, int(rng.integers(1, 3)))]
            H, W = (int(v) for v in rng.integers(2, 6, 2))
            k, with_state = int(rng.choice([1, 3])), int(rng.random() < 0.6)
        case = {"N": N, "T": T, "C": C, "channels": channels, "H": H, "W": W, "k": k,
                "with_state": with_state, "x": rng.normal(size=(N, T, C, H, W)),
                "d_outputs": rng.normal(size=(N, T, channels[-1], H, W))}
        layer_in = C
        for layer, Ch in enumerate(channels):
            case.update(_cell_parameters(rng, layer_in, Ch, k, True, True, f"cells.{layer}."))
            for name in ("h", "c"):
                case[f"d{name}{layer}"] = rng.normal(size=(N, Ch, H, W))
                if with_state:
                    case[f"{name}0_{layer}"] = rng.normal(size=(N, Ch, H, W)) * 0.8
            layer_in = Ch
        cases.append(case)
    return cases


def _run_stack(ns, c):
    import torch

    model, params = _load(ns["ConvLSTM"](c["C"], list(c["channels"]), c["k"]), c)
    leaves = {"x": torch.tensor(c["x"], requires_grad=True)}
    state = None
    if c["with_state"]:
        state = []
        for layer in range(len(c["channels"])):
            for name in ("h", "c"):
                leaves[f"{name}0_{layer}"] = torch.tensor(c[f"{name}0_{layer}"],
                                                          requires_grad=True)
            state.append((leaves[f"h0_{layer}"], leaves[f"c0_{layer}"]))
    outputs, states = model(leaves["x"], state)
    states = list(states)
    if len(states) != len(c["channels"]):
        raise ValueError(f"returned {len(states)} states, expected one per layer "
                         f"({len(c['channels'])})")
    loss = (outputs * torch.from_numpy(c["d_outputs"])).sum()
    out = {"outputs": outputs.detach().numpy().astype(np.float64)}
    for layer, (h, cn) in enumerate(states):
        loss = loss + (h * torch.from_numpy(c[f"dh{layer}"])).sum()
        loss = loss + (cn * torch.from_numpy(c[f"dc{layer}"])).sum()
        out[f"h{layer}"] = h.detach().numpy().astype(np.float64)
        out[f"c{layer}"] = cn.detach().numpy().astype(np.float64)
    out.update(_gradients(loss, {**leaves, **params}))
    return out


CHECKS = [
    Check("ConvLSTMCell", 6, ("ConvLSTMCell",), _cell_cases, _run_cell, RTOL, ATOL, FORBIDDEN),
    Check("ConvLSTM", 4, ("ConvLSTMCell", "ConvLSTM"), _stack_cases, _run_stack, RTOL, ATOL,
          FORBIDDEN),
]


# ------------------------------------------------------------------------------------------------
# The fixtures of the visible tests (the student's notebook checks itself with them).


def fixtures(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The fixtures of the visible tests of this assignment (see ``fixtures.py``)."""
    import torch

    from solutions.convlstm import ConvLSTM, ConvLSTMCell

    def randomise(module):
        # Random peephole weights too (they start at zero), so that the fixtures test them; the
        # convolution's weights scaled like 1/sqrt(fan_in).
        with torch.no_grad():
            for name, param in module.named_parameters():
                fan_in = param[0].numel() if name.endswith("conv.weight") else 1
                scale = 1.5 / np.sqrt(fan_in) if fan_in > 1 else 0.5
                param.copy_(torch.from_numpy(rng.normal(0, scale, tuple(param.shape))))
        return module

    def gradients(loss, leaves):
        grads = torch.autograd.grad(loss, list(leaves.values()))
        return {f"grad.{name}": g.numpy() for name, g in zip(leaves, grads, strict=True)}

    f: dict[str, np.ndarray] = {}
    # (N, C, C_h, height, width, k, bias, peephole, given state)
    cells = [(2, 2, 3, 5, 6, 3, 1, 1, 1), (1, 1, 2, 4, 7, 5, 0, 1, 0), (2, 3, 2, 3, 3, 1, 1, 0, 1)]
    for i, (N, C, Ch, height, width, k, bias, peephole, given) in enumerate(cells):
        cell = randomise(ConvLSTMCell(C, Ch, k, bias=bool(bias), peephole=bool(peephole)).double())
        x = torch.tensor(rng.normal(size=(N, C, height, width)), requires_grad=True)
        leaves = {"x": x}
        if given:
            leaves["h0"] = torch.tensor(rng.uniform(-1, 1, (N, Ch, height, width)),
                                        requires_grad=True)
            leaves["c0"] = torch.tensor(rng.normal(size=(N, Ch, height, width)),
                                        requires_grad=True)
        h, c = cell(x, (leaves["h0"], leaves["c0"]) if given else None)
        dh, dc = rng.normal(size=h.shape), rng.normal(size=c.shape)
        loss = (h * torch.from_numpy(dh)).sum() + (c * torch.from_numpy(dc)).sum()
        params = dict(cell.named_parameters())
        store(f, "cell", i, config=[C, Ch, k, bias, peephole],
               **{k_: v.detach().numpy() for k_, v in leaves.items()},
               **{f"param.{n}": p.detach().numpy() for n, p in params.items()},
               h=h.detach().numpy(), c=c.detach().numpy(), dh=dh, dc=dc,
               **gradients(loss, {**leaves, **params}))
    # (N, T, C, hidden channels, height, width, k, given state)
    stacks = [(2, 3, 2, [3, 2], 4, 5, 3, 0), (1, 1, 1, [2], 3, 4, 3, 1),
              (1, 2, 1, [2, 2, 2], 3, 3, 1, 1)]
    for i, (N, T, C, channels, height, width, k, given) in enumerate(stacks):
        model = randomise(ConvLSTM(C, channels, k).double())
        x = torch.tensor(rng.normal(size=(N, T, C, height, width)), requires_grad=True)
        leaves, state = {"x": x}, None
        if given:
            state = []
            for layer, Ch in enumerate(channels):
                for name in ("h0", "c0"):
                    leaves[f"{name}_{layer}"] = torch.tensor(
                        rng.uniform(-1, 1, (N, Ch, height, width)), requires_grad=True)
                state.append((leaves[f"h0_{layer}"], leaves[f"c0_{layer}"]))
        outputs, states = model(x, state)
        d_outputs = rng.normal(size=outputs.shape)
        loss = (outputs * torch.from_numpy(d_outputs)).sum()
        finals = {}
        for layer, (h, c) in enumerate(states):
            finals[f"h{layer}"], finals[f"c{layer}"] = h.detach().numpy(), c.detach().numpy()
        params = dict(model.named_parameters())
        store(f, "stack", i, config=[C, k, *channels],
               **{k_: v.detach().numpy() for k_, v in leaves.items()},
               **{f"param.{n}": p.detach().numpy() for n, p in params.items()},
               outputs=outputs.detach().numpy(), d_outputs=d_outputs, **finals,
               **gradients(loss, {**leaves, **params}))
    return f
