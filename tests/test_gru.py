"""Specification of the numpy GRU in ``solutions.gru`` (PyTorch semantics, gate order r, z, n).

The reference is PyTorch: ``torch.nn.GRU`` / ``torch.nn.GRUCell`` with the weights copied
(``weight_ih = Wx.T``, ``weight_hh = Wh.T``, ``bias_ih = bx``, ``bias_hh = bh``) and autograd for
the gradients. Everything runs in float64, where the two implementations differ only by rounding:
forward passes agree to 1e-10 and gradients to 1e-8 (max abs difference), far below the size of
any real bug. Finite differences give a second, PyTorch-free check of every gradient.
"""

import warnings

import numpy as np
import pytest
import torch
from _layers import (
    BACKWARD_ATOL,
    FORWARD_ATOL,
    SHAPES,
    assert_numerical_grads,
    leaf,
    load_weights,
)

from solutions.gru import gru_backward, gru_forward, gru_step_backward, gru_step_forward


def _weights(rng, D, H, scale=0.5):
    Wx = scale * rng.standard_normal((D, 3 * H))
    Wh = scale * rng.standard_normal((H, 3 * H))
    bx = scale * rng.standard_normal(3 * H)
    bh = scale * rng.standard_normal(3 * H)
    return Wx, Wh, bx, bh


@pytest.mark.parametrize("N, T, D, H", SHAPES)
def test_gru_step_forward_matches_torch_grucell(N, T, D, H):
    rng = np.random.default_rng(0)
    x, h_prev = rng.standard_normal((N, D)), rng.standard_normal((N, H))
    weights = _weights(rng, D, H)
    cell = load_weights(torch.nn.GRUCell(D, H).double(), *weights)

    h_next, _ = gru_step_forward(x, h_prev, *weights)

    expected = cell(torch.from_numpy(x), torch.from_numpy(h_prev)).detach().numpy()
    assert h_next.shape == (N, H)
    assert np.max(np.abs(h_next - expected)) < FORWARD_ATOL


def test_gru_hidden_bias_of_the_candidate_sits_inside_the_reset_product():
    """Moving bh into bx leaves the output unchanged for the r and z blocks, but not for the n
    block, where bh_n is multiplied by r: this is why the GRU has two biases."""
    rng = np.random.default_rng(1)
    H = 4
    x, h_prev = rng.standard_normal((2, 3)), rng.standard_normal((2, H))
    Wx, Wh, bx, bh = _weights(rng, 3, H)
    rz = np.arange(3 * H) < 2 * H  # (3H,) True on the r and z blocks

    h_next, _ = gru_step_forward(x, h_prev, Wx, Wh, bx, bh)
    h_rz_moved, _ = gru_step_forward(x, h_prev, Wx, Wh, bx + bh * rz, bh * ~rz)
    h_n_moved, _ = gru_step_forward(x, h_prev, Wx, Wh, bx + bh * ~rz, bh * rz)

    np.testing.assert_allclose(h_rz_moved, h_next, rtol=1e-13)
    assert np.max(np.abs(h_n_moved - h_next)) > 1e-3


@pytest.mark.parametrize("N, T, D, H", SHAPES)
def test_gru_step_backward_matches_autograd(N, T, D, H):
    rng = np.random.default_rng(2)
    x, h_prev = rng.standard_normal((N, D)), rng.standard_normal((N, H))
    weights = _weights(rng, D, H)
    dh_next = rng.standard_normal((N, H))
    cell = load_weights(torch.nn.GRUCell(D, H).double(), *weights)
    xt, ht = leaf(x), leaf(h_prev)
    (cell(xt, ht) * torch.from_numpy(dh_next)).sum().backward()

    _, cache = gru_step_forward(x, h_prev, *weights)
    grads = gru_step_backward(dh_next, cache)

    expected = [
        xt.grad,
        ht.grad,
        cell.weight_ih.grad.T,
        cell.weight_hh.grad.T,
        cell.bias_ih.grad,
        cell.bias_hh.grad,
    ]
    for got, want in zip(grads, expected, strict=True):
        assert got.shape == want.shape
        assert np.max(np.abs(got - want.numpy())) < BACKWARD_ATOL


def test_gru_step_backward_matches_finite_differences():
    rng = np.random.default_rng(3)
    N, D, H = 2, 3, 2
    args = [rng.standard_normal((N, D)), rng.standard_normal((N, H)), *_weights(rng, D, H)]
    dh_next = rng.standard_normal((N, H))

    _, cache = gru_step_forward(*args)
    grads = gru_step_backward(dh_next, cache)

    names = ["x", "h_prev", "Wx", "Wh", "bx", "bh"]
    assert_numerical_grads(gru_step_forward, args, [dh_next], grads, names)


def _sequence_setup(rng, N, T, D, H):
    return [rng.standard_normal((N, T, D)), rng.standard_normal((N, H)), *_weights(rng, D, H)]


def _torch_gru(Wx, Wh, bx, bh):
    D, H = Wx.shape[0], Wh.shape[0]
    return load_weights(torch.nn.GRU(D, H, batch_first=True).double(), Wx, Wh, bx, bh, "_l0")


@pytest.mark.parametrize("N, T, D, H", SHAPES)
def test_gru_forward_matches_torch_gru(N, T, D, H):
    x, h0, *weights = _sequence_setup(np.random.default_rng(4), N, T, D, H)

    h, _ = gru_forward(x, h0, *weights)

    out, h_n = _torch_gru(*weights)(torch.from_numpy(x), torch.from_numpy(h0[None]))
    assert h.shape == (N, T, H)
    assert np.max(np.abs(h - out.detach().numpy())) < FORWARD_ATOL
    assert np.max(np.abs(h[:, -1] - h_n[0].detach().numpy())) < FORWARD_ATOL


@pytest.mark.parametrize("N, T, D, H", SHAPES)
def test_gru_backward_matches_autograd(N, T, D, H):
    rng = np.random.default_rng(5)
    x, h0, *weights = _sequence_setup(rng, N, T, D, H)
    dh = rng.standard_normal((N, T, H))  # a loss on every hidden state, as in BPTT
    gru = _torch_gru(*weights)
    xt, h0t = leaf(x), leaf(h0[None])
    (gru(xt, h0t)[0] * torch.from_numpy(dh)).sum().backward()

    _, cache = gru_forward(x, h0, *weights)
    grads = gru_backward(dh, cache)

    expected = [
        xt.grad,
        h0t.grad[0],
        gru.weight_ih_l0.grad.T,
        gru.weight_hh_l0.grad.T,
        gru.bias_ih_l0.grad,
        gru.bias_hh_l0.grad,
    ]
    for got, want in zip(grads, expected, strict=True):
        assert got.shape == want.shape
        assert np.max(np.abs(got - want.numpy())) < BACKWARD_ATOL


def test_gru_backward_matches_finite_differences():
    rng = np.random.default_rng(6)
    N, T, D, H = 2, 3, 3, 2
    args = _sequence_setup(rng, N, T, D, H)
    dh = rng.standard_normal((N, T, H))

    _, cache = gru_forward(*args)
    grads = gru_backward(dh, cache)

    names = ["x", "h0", "Wx", "Wh", "bx", "bh"]
    assert_numerical_grads(gru_forward, args, [dh], grads, names)


def test_gru_forward_and_backward_keep_float32():
    args = [a.astype(np.float32) for a in _sequence_setup(np.random.default_rng(7), 2, 4, 3, 2)]

    h, cache = gru_forward(*args)
    grads = gru_backward(np.ones_like(h), cache)

    assert h.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads)


def test_gru_saturated_gates_give_finite_results_without_warnings():
    args = _sequence_setup(np.random.default_rng(8), 2, 3, 4, 3)
    args[2] *= 1e4  # pre-activations of order 1e4: every gate saturates

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h, cache = gru_forward(*args)
        grads = gru_backward(np.ones_like(h), cache)

    assert np.all(np.isfinite(h)) and all(np.all(np.isfinite(g)) for g in grads)


N_, T_, D_, H_ = 2, 3, 4, 5


def _good_args():
    names = ["x", "h0", "Wx", "Wh", "bx", "bh"]
    return dict(zip(names, _sequence_setup(np.random.default_rng(9), N_, T_, D_, H_), strict=True))


@pytest.mark.parametrize(
    "name, bad, error, message",
    [
        ("x", np.zeros((N_, T_, D_, 1)), ValueError, r"x: expected 3 dimensions \(N, T, D\)"),
        ("x", np.zeros((N_, 0, D_)), ValueError, r"x: .*T >= 1"),
        ("h0", np.zeros((N_, H_), dtype=np.int64), TypeError, r"h0: .*floating"),
        ("h0", np.zeros((N_ + 1, H_)), ValueError, r"h0: expected shape \(N, H\) with N=2"),
        (
            "Wx",
            np.zeros((D_, 4 * H_)),
            ValueError,
            r"Wx: expected shape \(D, 3H\) with N=2, T=3, D=4, H=5, got shape \(4, 20\)",
        ),
        ("Wh", np.zeros((H_, 4 * H_)), ValueError, r"Wh: expected shape \(H, 3H\)"),
        ("bx", np.zeros(4 * H_), ValueError, r"bx: expected shape \(3H,\)"),
        ("bh", np.zeros((3 * H_, 1)), ValueError, r"bh: expected 1 dimensions \(3H,\)"),
    ],
)
def test_gru_forward_rejects_bad_input_naming_the_argument(name, bad, error, message):
    args = _good_args()
    args[name] = bad
    with pytest.raises(error, match=message):
        gru_forward(**args)


def test_gru_step_forward_rejects_input_size_mismatch():
    x, h0, Wx, Wh, bx, bh = _good_args().values()
    with pytest.raises(ValueError, match=r"Wx: expected shape \(D, 3H\) with N=2, D=4, H=5"):
        gru_step_forward(x[:, 0], h0, Wx[1:], Wh, bx, bh)


def test_gru_backward_rejects_wrong_upstream_shape():
    _, cache = gru_forward(**_good_args())
    with pytest.raises(ValueError, match=r"dh: expected shape \(N, T, H\) with N=2, T=3, H=5"):
        gru_backward(np.zeros((N_ + 1, T_, H_)), cache)


def test_gru_step_backward_rejects_wrong_upstream_shape():
    x, h0, Wx, Wh, bx, bh = _good_args().values()
    _, cache = gru_step_forward(x[:, 0], h0, Wx, Wh, bx, bh)
    with pytest.raises(ValueError, match=r"dh_next: expected shape \(N, H\)"):
        gru_step_backward(np.zeros((N_, H_ - 1)), cache)
