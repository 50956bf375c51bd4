"""What the tests of the numpy layers (RNN, LSTM, GRU) share: tolerances, shapes, copying numpy
weights into a torch module, and the finite-difference check.

In float64 the numpy layers and PyTorch differ only by rounding: forward passes agree to 1e-10 and
gradients to 1e-8 (max abs difference), far below the size of any real bug. Centred differences
with h = 1e-5 agree with a correct backward to a relative error of about 1e-8 (solutions.gradcheck).
"""

import numpy as np
import torch

from solutions.gradcheck import eval_numerical_gradient_array, rel_error

FORWARD_ATOL = 1e-10
BACKWARD_ATOL = 1e-8
FD_RTOL = 1e-7

# (N, T, D, H): a single example, a single step, D < H, D > H, D = 1.
SHAPES = [(1, 1, 3, 2), (1, 4, 2, 3), (3, 1, 4, 4), (2, 5, 6, 3), (4, 3, 1, 5)]


def load_weights(module, Wx, Wh, bias_ih, bias_hh, suffix=""):
    """Copy numpy weights used as ``x @ Wx + h @ Wh + b`` into a torch RNN/LSTM/GRU or its cell,
    whose parameters are ``weight_ih{suffix} = Wx.T``, ``weight_hh{suffix} = Wh.T`` and the two
    biases."""
    with torch.no_grad():
        getattr(module, f"weight_ih{suffix}").copy_(torch.from_numpy(Wx.T))
        getattr(module, f"weight_hh{suffix}").copy_(torch.from_numpy(Wh.T))
        getattr(module, f"bias_ih{suffix}").copy_(torch.from_numpy(bias_ih))
        getattr(module, f"bias_hh{suffix}").copy_(torch.from_numpy(bias_hh))
    return module


def leaf(a):
    return torch.tensor(a, requires_grad=True)


def assert_numerical_grads(forward, args, douts, grads, names):
    """Compare each analytic gradient with centred differences of
    ``sum_k sum(forward(*args)[k] * douts[k])``: the first ``len(douts)`` outputs are weighted by
    their upstream gradients, later ones (the cache) are ignored."""

    def f(_):
        outs = forward(*args)
        return sum(np.sum(out * dout) for out, dout in zip(outs, douts, strict=False))

    for i, (grad, name) in enumerate(zip(grads, names, strict=True)):
        num = eval_numerical_gradient_array(f, args[i], 1.0)
        assert rel_error(grad, num) < FD_RTOL, name
