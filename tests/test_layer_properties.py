"""Property tests: on random shapes and weight scales, the numpy RNN, LSTM, GRU and bidirectional
RNN agree with PyTorch's built-in layers (forward) and with autograd (backward).

Hypothesis draws N, T, D, H in small ranges, a weight scale from mild to saturating, and a seed
for the values. It runs derandomized, so CI sees the same examples every time. The tolerances
are the float64 ones of the per-layer test files: 1e-10 for outputs and 1e-8 for gradients
(max abs difference).
"""

import numpy as np
import pytest
import torch
from _layers import BACKWARD_ATOL, FORWARD_ATOL, load_weights
from hypothesis import given, settings
from hypothesis import strategies as st

from solutions.gru import gru_backward, gru_forward
from solutions.lstm import lstm_backward, lstm_forward
from solutions.rnn import birnn_backward, birnn_forward, clip_grad_norm, rnn_backward, rnn_forward

PROPERTY = settings(max_examples=25, deadline=None, derandomize=True)

# Per layer: the numpy functions, the torch module, and the number of gate blocks in Wx.
LAYERS = {
    "rnn": (rnn_forward, rnn_backward, torch.nn.RNN, 1),
    "lstm": (lstm_forward, lstm_backward, torch.nn.LSTM, 4),
    "gru": (gru_forward, gru_backward, torch.nn.GRU, 3),
}


@st.composite
def problems(draw):
    """Shapes (N, T, D, H), a weight scale and a generator for the values."""
    N = draw(st.integers(1, 4))
    T = draw(st.integers(1, 5))
    D = draw(st.integers(1, 5))
    H = draw(st.integers(1, 5))
    scale = draw(st.sampled_from([0.1, 0.5, 1.0, 3.0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return N, T, D, H, scale, rng


def _setup(kind, N, T, D, H, scale, rng):
    """numpy inputs in the forward's order, the matching torch module, and its initial state."""
    G = LAYERS[kind][3]
    x = rng.standard_normal((N, T, D))
    h0 = rng.standard_normal((N, H))
    Wx = scale * rng.standard_normal((D, G * H))
    Wh = scale * rng.standard_normal((H, G * H))
    b_ih = scale * rng.standard_normal(G * H)
    b_hh = scale * rng.standard_normal(G * H)
    module = LAYERS[kind][2](D, H, batch_first=True).double()
    load_weights(module, Wx, Wh, b_ih, b_hh, "_l0")
    if kind == "gru":
        args = [x, h0, Wx, Wh, b_ih, b_hh]
    elif kind == "lstm":
        args = [x, h0, rng.standard_normal((N, H)), Wx, Wh, b_ih + b_hh]
    else:
        args = [x, h0, Wx, Wh, b_ih + b_hh]
    return args, module


def _torch_run(kind, module, args):
    """Run the torch module on leaf copies of the numpy inputs; returns (output, input leaves)."""
    leaves = [torch.tensor(a[None] if i > 0 else a, requires_grad=True) for i, a in enumerate(args)]
    x, h0 = leaves[0], leaves[1]
    if kind == "lstm":
        out, _ = module(x, (h0, leaves[2]))
        return out, leaves[:3]
    out, _ = module(x, h0)
    return out, leaves[:2]


def _expected_grads(kind, module, leaves):
    grads = [leaf.grad[0] if i > 0 else leaf.grad for i, leaf in enumerate(leaves)]
    grads += [module.weight_ih_l0.grad.T, module.weight_hh_l0.grad.T]
    if kind == "gru":
        return grads + [module.bias_ih_l0.grad, module.bias_hh_l0.grad]
    return grads + [module.bias_ih_l0.grad]  # b = bias_ih + bias_hh: either grad is db


def _check_forward(kind, problem):
    args, module = _setup(kind, *problem)
    with torch.no_grad():
        out, _ = _torch_run(kind, module, args)

    h, _ = LAYERS[kind][0](*args)

    assert h.shape == tuple(out.shape)
    assert np.max(np.abs(h - out.numpy())) < FORWARD_ATOL


def _check_backward(kind, problem):
    args, module = _setup(kind, *problem)
    dh = problem[-1].standard_normal((problem[0], problem[1], problem[3]))
    out, leaves = _torch_run(kind, module, args)
    (out * torch.from_numpy(dh)).sum().backward()

    _, cache = LAYERS[kind][0](*args)
    grads = LAYERS[kind][1](dh, cache)

    for got, want in zip(grads, _expected_grads(kind, module, leaves), strict=True):
        assert got.shape == tuple(want.shape)
        assert np.max(np.abs(got - want.numpy())) < BACKWARD_ATOL


@PROPERTY
@given(problems())
def test_rnn_forward_matches_torch_on_random_shapes(problem):
    _check_forward("rnn", problem)


@PROPERTY
@given(problems())
def test_rnn_backward_matches_autograd_on_random_shapes(problem):
    _check_backward("rnn", problem)


@PROPERTY
@given(problems())
def test_lstm_forward_matches_torch_on_random_shapes(problem):
    _check_forward("lstm", problem)


@PROPERTY
@given(problems())
def test_lstm_backward_matches_autograd_on_random_shapes(problem):
    _check_backward("lstm", problem)


@PROPERTY
@given(problems())
def test_gru_forward_matches_torch_on_random_shapes(problem):
    _check_forward("gru", problem)


@PROPERTY
@given(problems())
def test_gru_backward_matches_autograd_on_random_shapes(problem):
    _check_backward("gru", problem)


@PROPERTY
@given(problems())
def test_birnn_matches_torch_bidirectional_rnn_forward_and_backward(problem):
    N, T, D, H, scale, rng = problem
    x, h0 = rng.standard_normal((N, T, D)), rng.standard_normal((2, N, H))
    fwd = [scale * rng.standard_normal(s) for s in [(D, H), (H, H), (H,)]]
    back = [scale * rng.standard_normal(s) for s in [(D, H), (H, H), (H,)]]
    dh = rng.standard_normal((N, T, 2 * H))
    rnn = torch.nn.RNN(D, H, batch_first=True, bidirectional=True).double()
    with torch.no_grad():
        for suffix, (Wx, Wh, b) in (("_l0", fwd), ("_l0_reverse", back)):
            getattr(rnn, f"weight_ih{suffix}").copy_(torch.from_numpy(Wx.T))
            getattr(rnn, f"weight_hh{suffix}").copy_(torch.from_numpy(Wh.T))
            getattr(rnn, f"bias_ih{suffix}").copy_(torch.from_numpy(b))
            getattr(rnn, f"bias_hh{suffix}").zero_()
    xt, h0t = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    out, _ = rnn(xt, h0t)
    (out * torch.from_numpy(dh)).sum().backward()

    h, cache = birnn_forward(x, h0, *fwd, *back)
    grads = birnn_backward(dh, cache)

    assert np.max(np.abs(h - out.detach().numpy())) < FORWARD_ATOL
    expected = [xt.grad, h0t.grad]
    for suffix in ("_l0", "_l0_reverse"):
        expected += [
            getattr(rnn, f"weight_ih{suffix}").grad.T,
            getattr(rnn, f"weight_hh{suffix}").grad.T,
            getattr(rnn, f"bias_ih{suffix}").grad,
        ]
    for got, want in zip(grads, expected, strict=True):
        assert np.max(np.abs(got - want.numpy())) < BACKWARD_ATOL


@PROPERTY
@given(
    shapes=st.lists(st.lists(st.integers(1, 4), max_size=3), min_size=1, max_size=4),
    max_norm=st.floats(1e-3, 1e3),
    seed=st.integers(0, 2**32 - 1),
)
def test_clip_grad_norm_bounds_the_norm_and_keeps_the_direction(shapes, max_norm, seed):
    rng = np.random.default_rng(seed)
    grads = [rng.standard_normal(shape) for shape in shapes]

    clipped, total_norm = clip_grad_norm(grads, max_norm)

    new_norm = np.sqrt(sum(np.sum(c**2) for c in clipped))
    assert total_norm == pytest.approx(np.sqrt(sum(np.sum(g**2) for g in grads)), rel=1e-12)
    assert new_norm <= max_norm * (1 + 1e-12)
    if total_norm + 1e-6 <= max_norm:
        for g, c in zip(grads, clipped, strict=True):
            np.testing.assert_array_equal(c, g)
    scale = new_norm / total_norm
    for g, c in zip(grads, clipped, strict=True):
        np.testing.assert_allclose(c, g * scale, rtol=1e-12, atol=0)
