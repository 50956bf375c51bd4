"""Specification of the numpy LSTM in ``solutions.lstm`` (gate order i, f, g, o).

The reference is PyTorch: ``torch.nn.LSTM`` / ``torch.nn.LSTMCell`` with the weights copied
(``weight_ih = Wx.T``, ``weight_hh = Wh.T``, and ``b`` split at random into ``bias_ih + bias_hh``
to show that only their sum matters) and autograd for the gradients. Everything runs in float64,
where the two implementations differ only by rounding: forward passes agree to 1e-10 and gradients
to 1e-8 (max abs difference), far below the size of any real bug. Finite differences give a
second, PyTorch-free check of every gradient.
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

from solutions.lstm import (
    lstm_backward,
    lstm_forward,
    lstm_step_backward,
    lstm_step_forward,
    sigmoid,
)


def _weights(rng, D, H, scale=0.5):
    Wx = scale * rng.standard_normal((D, 4 * H))
    Wh = scale * rng.standard_normal((H, 4 * H))
    b = scale * rng.standard_normal(4 * H)
    return Wx, Wh, b


def _load(module, Wx, Wh, b, suffix=""):
    """Copy numpy weights into a torch LSTM/LSTMCell, splitting ``b`` between the two biases."""
    bias_hh = np.random.default_rng(100).standard_normal(b.shape)
    return load_weights(module, Wx, Wh, b - bias_hh, bias_hh, suffix)


def test_sigmoid_matches_torch_without_overflow():
    x = np.concatenate([np.linspace(-50, 50, 1001), [-1e308, -800.0, 800.0, 1e308]])

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = sigmoid(x)

    np.testing.assert_allclose(y, torch.sigmoid(torch.from_numpy(x)).numpy(), rtol=1e-14, atol=0)
    assert sigmoid(np.float32(3.0)).dtype == np.float32


@pytest.mark.parametrize("N, T, D, H", SHAPES)
def test_lstm_step_forward_matches_torch_lstmcell(N, T, D, H):
    rng = np.random.default_rng(0)
    x, h_prev, c_prev = (rng.standard_normal(s) for s in [(N, D), (N, H), (N, H)])
    Wx, Wh, b = _weights(rng, D, H)
    cell = _load(torch.nn.LSTMCell(D, H).double(), Wx, Wh, b)

    h_next, c_next, _ = lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b)

    h_ref, c_ref = cell(torch.from_numpy(x), (torch.from_numpy(h_prev), torch.from_numpy(c_prev)))
    assert h_next.shape == c_next.shape == (N, H)
    assert np.max(np.abs(h_next - h_ref.detach().numpy())) < FORWARD_ATOL
    assert np.max(np.abs(c_next - c_ref.detach().numpy())) < FORWARD_ATOL


@pytest.mark.parametrize("N, T, D, H", SHAPES)
def test_lstm_step_backward_matches_autograd(N, T, D, H):
    rng = np.random.default_rng(1)
    x, h_prev, c_prev = (rng.standard_normal(s) for s in [(N, D), (N, H), (N, H)])
    Wx, Wh, b = _weights(rng, D, H)
    dh_next, dc_next = rng.standard_normal((N, H)), rng.standard_normal((N, H))
    cell = _load(torch.nn.LSTMCell(D, H).double(), Wx, Wh, b)
    xt, ht, ct = leaf(x), leaf(h_prev), leaf(c_prev)
    h_ref, c_ref = cell(xt, (ht, ct))
    (h_ref * torch.from_numpy(dh_next) + c_ref * torch.from_numpy(dc_next)).sum().backward()

    _, _, cache = lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b)
    grads = lstm_step_backward(dh_next, dc_next, cache)

    expected = [
        xt.grad,
        ht.grad,
        ct.grad,
        cell.weight_ih.grad.T,
        cell.weight_hh.grad.T,
        cell.bias_ih.grad,
    ]
    for got, want in zip(grads, expected, strict=True):
        assert got.shape == want.shape
        assert np.max(np.abs(got - want.numpy())) < BACKWARD_ATOL


def test_lstm_step_backward_matches_finite_differences():
    rng = np.random.default_rng(2)
    N, D, H = 2, 3, 2
    args = [rng.standard_normal(s) for s in [(N, D), (N, H), (N, H)]] + list(_weights(rng, D, H))
    dh_next, dc_next = rng.standard_normal((N, H)), rng.standard_normal((N, H))

    _, _, cache = lstm_step_forward(*args)
    grads = lstm_step_backward(dh_next, dc_next, cache)

    names = ["x", "h_prev", "c_prev", "Wx", "Wh", "b"]
    assert_numerical_grads(lstm_step_forward, args, [dh_next, dc_next], grads, names)


def _sequence_setup(rng, N, T, D, H):
    x = rng.standard_normal((N, T, D))
    h0, c0 = rng.standard_normal((N, H)), rng.standard_normal((N, H))
    return [x, h0, c0, *_weights(rng, D, H)]


def _torch_lstm(Wx, Wh, b):
    D, H = Wx.shape[0], Wh.shape[0]
    return _load(torch.nn.LSTM(D, H, batch_first=True).double(), Wx, Wh, b, "_l0")


@pytest.mark.parametrize("N, T, D, H", SHAPES)
def test_lstm_forward_matches_torch_lstm(N, T, D, H):
    x, h0, c0, Wx, Wh, b = _sequence_setup(np.random.default_rng(3), N, T, D, H)

    h, _ = lstm_forward(x, h0, c0, Wx, Wh, b)

    state = (torch.from_numpy(h0[None]), torch.from_numpy(c0[None]))
    out, (h_n, _) = _torch_lstm(Wx, Wh, b)(torch.from_numpy(x), state)
    assert h.shape == (N, T, H)
    assert np.max(np.abs(h - out.detach().numpy())) < FORWARD_ATOL
    assert np.max(np.abs(h[:, -1] - h_n[0].detach().numpy())) < FORWARD_ATOL


@pytest.mark.parametrize("N, T, D, H", SHAPES)
def test_lstm_backward_matches_autograd(N, T, D, H):
    rng = np.random.default_rng(4)
    x, h0, c0, Wx, Wh, b = _sequence_setup(rng, N, T, D, H)
    dh = rng.standard_normal((N, T, H))  # a loss on every hidden state, as in BPTT
    lstm = _torch_lstm(Wx, Wh, b)
    xt, h0t, c0t = leaf(x), leaf(h0[None]), leaf(c0[None])
    (lstm(xt, (h0t, c0t))[0] * torch.from_numpy(dh)).sum().backward()

    _, cache = lstm_forward(x, h0, c0, Wx, Wh, b)
    grads = lstm_backward(dh, cache)

    expected = [
        xt.grad,
        h0t.grad[0],
        c0t.grad[0],
        lstm.weight_ih_l0.grad.T,
        lstm.weight_hh_l0.grad.T,
        lstm.bias_ih_l0.grad,
    ]
    for got, want in zip(grads, expected, strict=True):
        assert got.shape == want.shape
        assert np.max(np.abs(got - want.numpy())) < BACKWARD_ATOL


def test_lstm_backward_matches_finite_differences():
    rng = np.random.default_rng(5)
    N, T, D, H = 2, 3, 3, 2
    args = _sequence_setup(rng, N, T, D, H)
    dh = rng.standard_normal((N, T, H))

    _, cache = lstm_forward(*args)
    grads = lstm_backward(dh, cache)

    names = ["x", "h0", "c0", "Wx", "Wh", "b"]
    assert_numerical_grads(lstm_forward, args, [dh], grads, names)


def test_lstm_forward_and_backward_keep_float32():
    args = [a.astype(np.float32) for a in _sequence_setup(np.random.default_rng(6), 2, 4, 3, 2)]

    h, cache = lstm_forward(*args)
    grads = lstm_backward(np.ones_like(h), cache)

    assert h.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads)


def test_lstm_saturated_gates_give_finite_results_without_warnings():
    rng = np.random.default_rng(7)
    args = _sequence_setup(rng, 2, 3, 4, 3)
    args[3] *= 1e4  # pre-activations of order 1e4: every gate saturates

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h, cache = lstm_forward(*args)
        grads = lstm_backward(np.ones_like(h), cache)

    assert np.all(np.isfinite(h)) and all(np.all(np.isfinite(g)) for g in grads)


N_, T_, D_, H_ = 2, 3, 4, 5


def _good_args():
    names = ["x", "h0", "c0", "Wx", "Wh", "b"]
    return dict(zip(names, _sequence_setup(np.random.default_rng(8), N_, T_, D_, H_), strict=True))


@pytest.mark.parametrize(
    "name, bad, error, message",
    [
        ("x", np.zeros((N_, D_)), ValueError, r"x: expected 3 dimensions \(N, T, D\)"),
        ("x", np.zeros((N_, 0, D_)), ValueError, r"x: .*T >= 1"),
        ("x", np.zeros((N_, T_, D_), dtype=np.int32), TypeError, r"x: .*floating"),
        ("c0", np.zeros((N_, H_ + 1)), ValueError, r"c0: expected shape \(N, H\) with .*H=5"),
        (
            "Wx",
            np.zeros((D_, 16)),
            ValueError,
            r"Wx: expected shape \(D, 4H\) with N=2, T=3, D=4, H=5, got shape \(4, 16\)",
        ),
        ("Wx", np.zeros((D_ + 1, 4 * H_)), ValueError, r"Wx: expected shape \(D, 4H\)"),
        ("Wh", np.zeros((H_, H_)), ValueError, r"Wh: expected shape \(H, 4H\)"),
        ("b", np.zeros(H_), ValueError, r"b: expected shape \(4H,\)"),
    ],
)
def test_lstm_forward_rejects_bad_input_naming_the_argument(name, bad, error, message):
    args = _good_args()
    args[name] = bad
    with pytest.raises(error, match=message):
        lstm_forward(**args)


def test_lstm_step_forward_rejects_cell_state_mismatch():
    x, h0, c0, Wx, Wh, b = _good_args().values()
    with pytest.raises(ValueError, match=r"c_prev: expected shape \(N, H\)"):
        lstm_step_forward(x[:, 0], h0, c0[:, :-1], Wx, Wh, b)


def test_lstm_backward_rejects_wrong_upstream_shape():
    _, cache = lstm_forward(**_good_args())
    with pytest.raises(ValueError, match=r"dh: expected shape \(N, T, H\) with N=2, T=3, H=5"):
        lstm_backward(np.zeros((N_, T_, H_ + 1)), cache)


def test_lstm_step_backward_rejects_wrong_upstream_shape():
    x, h0, c0, Wx, Wh, b = _good_args().values()
    _, _, cache = lstm_step_forward(x[:, 0], h0, c0, Wx, Wh, b)
    with pytest.raises(ValueError, match=r"dc_next: expected shape \(N, H\)"):
        lstm_step_backward(np.zeros((N_, H_)), np.zeros((N_ + 1, H_)), cache)
