"""Specification of the numpy tanh RNN in ``solutions.rnn``.

The reference is PyTorch: ``torch.nn.RNN`` / ``torch.nn.RNNCell`` with the weights copied
(``weight_ih = Wx.T``, ``weight_hh = Wh.T``, ``bias_ih = b``, ``bias_hh = 0``) and autograd for the
gradients. Everything runs in float64, where the two implementations differ only by rounding:
forward passes agree to 1e-10 and gradients to 1e-8 (max abs difference), far below the size of
any real bug. Finite differences give a second, PyTorch-free check of every gradient.
"""

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

from solutions.rnn import (
    birnn_backward,
    birnn_forward,
    clip_grad_norm,
    rnn_backward,
    rnn_forward,
    rnn_step_backward,
    rnn_step_forward,
)


def _params(rng, N, D, H, scale=0.5):
    """Random x-step, h, Wx, Wh, b; the scale keeps tanh away from saturation."""
    x = rng.standard_normal((N, D))
    h = rng.standard_normal((N, H))
    Wx = scale * rng.standard_normal((D, H))
    Wh = scale * rng.standard_normal((H, H))
    b = scale * rng.standard_normal(H)
    return x, h, Wx, Wh, b


def _load(module, Wx, Wh, b, suffix=""):
    """Copy numpy weights into a torch RNN/RNNCell: ``b`` into ``bias_ih``, ``bias_hh`` zero."""
    return load_weights(module, Wx, Wh, b, np.zeros_like(b), suffix)


def _torch_rnn(Wx, Wh, b, bidirectional=False, back=None):
    D, H = Wx.shape
    rnn = torch.nn.RNN(D, H, batch_first=True, bidirectional=bidirectional).double()
    _load(rnn, Wx, Wh, b, "_l0")
    if back is not None:
        _load(rnn, *back, "_l0_reverse")
    return rnn


@pytest.mark.parametrize("N, T, D, H", SHAPES)
def test_rnn_step_forward_matches_torch_rnncell(N, T, D, H):
    rng = np.random.default_rng(0)
    x, h_prev, Wx, Wh, b = _params(rng, N, D, H)
    cell = _load(torch.nn.RNNCell(D, H).double(), Wx, Wh, b)

    h_next, _ = rnn_step_forward(x, h_prev, Wx, Wh, b)

    expected = cell(torch.from_numpy(x), torch.from_numpy(h_prev)).detach().numpy()
    assert h_next.shape == (N, H)
    assert np.max(np.abs(h_next - expected)) < FORWARD_ATOL


@pytest.mark.parametrize("N, T, D, H", SHAPES)
def test_rnn_step_backward_matches_autograd(N, T, D, H):
    rng = np.random.default_rng(1)
    x, h_prev, Wx, Wh, b = _params(rng, N, D, H)
    dh_next = rng.standard_normal((N, H))
    cell = _load(torch.nn.RNNCell(D, H).double(), Wx, Wh, b)
    xt, ht = leaf(x), leaf(h_prev)
    (cell(xt, ht) * torch.from_numpy(dh_next)).sum().backward()

    _, cache = rnn_step_forward(x, h_prev, Wx, Wh, b)
    dx, dh_prev, dWx, dWh, db = rnn_step_backward(dh_next, cache)

    expected = [xt.grad, ht.grad, cell.weight_ih.grad.T, cell.weight_hh.grad.T, cell.bias_ih.grad]
    for got, want in zip([dx, dh_prev, dWx, dWh, db], expected, strict=True):
        assert got.shape == want.shape
        assert np.max(np.abs(got - want.numpy())) < BACKWARD_ATOL


def test_rnn_step_backward_matches_finite_differences():
    rng = np.random.default_rng(2)
    args = list(_params(rng, 2, 3, 4))
    dh_next = rng.standard_normal((2, 4))

    _, cache = rnn_step_forward(*args)
    grads = rnn_step_backward(dh_next, cache)

    assert_numerical_grads(rnn_step_forward, args, [dh_next], grads, ["x", "h", "Wx", "Wh", "b"])


@pytest.mark.parametrize("N, T, D, H", SHAPES)
def test_rnn_forward_matches_torch_rnn(N, T, D, H):
    rng = np.random.default_rng(3)
    _, h0, Wx, Wh, b = _params(rng, N, D, H)
    x = rng.standard_normal((N, T, D))

    h, _ = rnn_forward(x, h0, Wx, Wh, b)

    out, h_n = _torch_rnn(Wx, Wh, b)(torch.from_numpy(x), torch.from_numpy(h0[None]))
    assert h.shape == (N, T, H)
    assert np.max(np.abs(h - out.detach().numpy())) < FORWARD_ATOL
    assert np.max(np.abs(h[:, -1] - h_n[0].detach().numpy())) < FORWARD_ATOL


@pytest.mark.parametrize("N, T, D, H", SHAPES)
def test_rnn_backward_matches_autograd(N, T, D, H):
    rng = np.random.default_rng(4)
    _, h0, Wx, Wh, b = _params(rng, N, D, H)
    x = rng.standard_normal((N, T, D))
    dh = rng.standard_normal((N, T, H))  # a loss on every hidden state, as in BPTT
    rnn = _torch_rnn(Wx, Wh, b)
    xt, h0t = leaf(x), leaf(h0[None])
    (rnn(xt, h0t)[0] * torch.from_numpy(dh)).sum().backward()

    _, cache = rnn_forward(x, h0, Wx, Wh, b)
    dx, dh0, dWx, dWh, db = rnn_backward(dh, cache)

    expected = [
        xt.grad,
        h0t.grad[0],
        rnn.weight_ih_l0.grad.T,
        rnn.weight_hh_l0.grad.T,
        rnn.bias_ih_l0.grad,
    ]
    for got, want in zip([dx, dh0, dWx, dWh, db], expected, strict=True):
        assert got.shape == want.shape
        assert np.max(np.abs(got - want.numpy())) < BACKWARD_ATOL


def test_rnn_backward_matches_finite_differences():
    rng = np.random.default_rng(5)
    N, T, D, H = 2, 3, 4, 3
    _, h0, Wx, Wh, b = _params(rng, N, D, H)
    args = [rng.standard_normal((N, T, D)), h0, Wx, Wh, b]
    dh = rng.standard_normal((N, T, H))

    _, cache = rnn_forward(*args)
    grads = rnn_backward(dh, cache)

    assert_numerical_grads(rnn_forward, args, [dh], grads, ["x", "h0", "Wx", "Wh", "b"])


def test_rnn_forward_keeps_float32():
    rng = np.random.default_rng(6)
    _, h0, Wx, Wh, b = (a.astype(np.float32) for a in _params(rng, 2, 3, 4))
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)

    h, cache = rnn_forward(x, h0, Wx, Wh, b)
    grads = rnn_backward(np.ones_like(h), cache)

    assert h.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads)


def _birnn_setup(rng, N, T, D, H):
    x = rng.standard_normal((N, T, D))
    h0 = rng.standard_normal((2, N, H))
    fwd = _params(rng, 1, D, H)[2:]
    back = _params(rng, 1, D, H)[2:]
    return x, h0, fwd, back


@pytest.mark.parametrize("N, T, D, H", SHAPES)
def test_birnn_forward_matches_torch_bidirectional_rnn(N, T, D, H):
    x, h0, fwd, back = _birnn_setup(np.random.default_rng(7), N, T, D, H)

    h, _ = birnn_forward(x, h0, *fwd, *back)

    rnn = _torch_rnn(*fwd, bidirectional=True, back=back)
    out, _ = rnn(torch.from_numpy(x), torch.from_numpy(h0))
    assert h.shape == (N, T, 2 * H)
    assert np.max(np.abs(h - out.detach().numpy())) < FORWARD_ATOL


@pytest.mark.parametrize("N, T, D, H", SHAPES[:3])
def test_birnn_backward_matches_autograd(N, T, D, H):
    rng = np.random.default_rng(8)
    x, h0, fwd, back = _birnn_setup(rng, N, T, D, H)
    dh = rng.standard_normal((N, T, 2 * H))
    rnn = _torch_rnn(*fwd, bidirectional=True, back=back)
    xt, h0t = leaf(x), leaf(h0)
    (rnn(xt, h0t)[0] * torch.from_numpy(dh)).sum().backward()

    _, cache = birnn_forward(x, h0, *fwd, *back)
    grads = birnn_backward(dh, cache)

    expected = [xt.grad, h0t.grad]
    for suffix in ("_l0", "_l0_reverse"):
        expected += [
            getattr(rnn, f"weight_ih{suffix}").grad.T,
            getattr(rnn, f"weight_hh{suffix}").grad.T,
            getattr(rnn, f"bias_ih{suffix}").grad,
        ]
    for got, want in zip(grads, expected, strict=True):
        assert got.shape == want.shape
        assert np.max(np.abs(got - want.numpy())) < BACKWARD_ATOL


def _grad_list(rng):
    return [rng.standard_normal((3, 4)), rng.standard_normal(5), rng.standard_normal((2, 2, 2))]


@pytest.mark.parametrize("max_norm", [0.5, 1e3], ids=["clipped", "unclipped"])
def test_clip_grad_norm_matches_torch(max_norm):
    grads = _grad_list(np.random.default_rng(9))
    originals = [g.copy() for g in grads]
    params = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, g in zip(params, grads, strict=True):
        p.grad = torch.from_numpy(g.copy())

    clipped, total_norm = clip_grad_norm(grads, max_norm)

    torch_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    assert abs(total_norm - torch_norm.item()) < FORWARD_ATOL
    for got, p in zip(clipped, params, strict=True):
        assert np.max(np.abs(got - p.grad.numpy())) < FORWARD_ATOL
    for g, original in zip(grads, originals, strict=True):
        np.testing.assert_array_equal(g, original)


def test_clip_grad_norm_limits_the_global_norm_and_keeps_direction():
    grads = _grad_list(np.random.default_rng(10))

    clipped, total_norm = clip_grad_norm(grads, 1.0)

    new_norm = np.sqrt(sum(np.sum(g**2) for g in clipped))
    assert total_norm > 1.0
    assert new_norm == pytest.approx(1.0, abs=1e-5)
    for g, c in zip(grads, clipped, strict=True):
        np.testing.assert_allclose(c, g * (new_norm / total_norm), rtol=1e-12)


def test_clip_grad_norm_returns_new_arrays_when_not_clipping():
    grads = _grad_list(np.random.default_rng(11))

    clipped, _ = clip_grad_norm(grads, 1e3)

    for g, c in zip(grads, clipped, strict=True):
        assert c is not g and not np.shares_memory(c, g)
        np.testing.assert_array_equal(c, g)


@pytest.mark.parametrize("max_norm", [0, -1.0, float("nan"), float("inf"), "1", None, True])
def test_clip_grad_norm_rejects_bad_max_norm(max_norm):
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm([np.ones(3)], max_norm)


def test_clip_grad_norm_rejects_integer_gradients():
    with pytest.raises(TypeError, match=r"grads\[1\]"):
        clip_grad_norm([np.ones(3), np.ones(3, dtype=np.int64)], 1.0)


N_, T_, D_, H_ = 2, 3, 4, 5


def _good_sequence_args():
    rng = np.random.default_rng(12)
    _, h0, Wx, Wh, b = _params(rng, N_, D_, H_)
    return {"x": rng.standard_normal((N_, T_, D_)), "h0": h0, "Wx": Wx, "Wh": Wh, "b": b}


@pytest.mark.parametrize(
    "name, bad, error, message",
    [
        ("x", np.zeros((N_, D_)), ValueError, r"x: expected 3 dimensions \(N, T, D\)"),
        ("x", np.zeros((N_, 0, D_)), ValueError, r"x: .*T >= 1"),
        ("x", np.zeros((N_, T_, D_), dtype=np.int64), TypeError, r"x: .*floating"),
        ("h0", np.zeros((N_ + 1, H_)), ValueError, r"h0: expected shape \(N, H\) with N=2"),
        ("Wx", np.zeros((D_ + 1, H_)), ValueError, r"Wx: expected shape \(D, H\) with .*D=4"),
        ("Wx", np.zeros((D_, H_ + 1)), ValueError, r"Wx: expected shape \(D, H\) .*got shape"),
        ("Wh", np.zeros((H_, H_, 1)), ValueError, r"Wh: expected 2 dimensions \(H, H\)"),
        ("b", np.zeros((1, H_)), ValueError, r"b: expected 1 dimensions \(H,\)"),
        ("b", [0.0] * H_, TypeError, r"b: expected a numpy array"),
    ],
)
def test_rnn_forward_rejects_bad_input_naming_the_argument(name, bad, error, message):
    args = _good_sequence_args()
    args[name] = bad
    with pytest.raises(error, match=message):
        rnn_forward(**args)


def test_rnn_step_forward_rejects_hidden_size_mismatch():
    x, h_prev, Wx, Wh, b = _params(np.random.default_rng(13), 2, 3, 4)
    with pytest.raises(ValueError, match=r"Wh: expected shape \(H, H\) with N=2, D=3, H=4"):
        rnn_step_forward(x, h_prev, Wx, np.zeros((4, 5)), b)


def test_rnn_backward_rejects_wrong_upstream_shape():
    _, cache = rnn_forward(**_good_sequence_args())
    with pytest.raises(ValueError, match=r"dh: expected shape \(N, T, H\) with N=2, T=3, H=5"):
        rnn_backward(np.zeros((N_, T_ + 1, H_)), cache)


def test_rnn_step_backward_rejects_wrong_upstream_shape():
    _, cache = rnn_step_forward(*_params(np.random.default_rng(14), 2, 3, 4))
    with pytest.raises(ValueError, match=r"dh_next: expected shape \(N, H\)"):
        rnn_step_backward(np.zeros((2, 3)), cache)


def test_birnn_forward_rejects_one_direction_of_h0():
    args = _good_sequence_args()
    fwd = (args["Wx"], args["Wh"], args["b"])
    with pytest.raises(ValueError, match=r"h0: expected 3 dimensions \(2, N, H\)"):
        birnn_forward(args["x"], args["h0"], *fwd, *fwd)


def test_birnn_forward_rejects_mismatched_backward_weights():
    args = _good_sequence_args()
    fwd = (args["Wx"], args["Wh"], args["b"])
    h0 = np.stack([args["h0"], args["h0"]])
    with pytest.raises(ValueError, match=r"Wx_b: expected shape \(D, H\)"):
        birnn_forward(args["x"], h0, *fwd, args["Wx"][:, :-1], args["Wh"], args["b"])
