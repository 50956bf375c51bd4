r"""The long short-term memory (LSTM) layer in numpy: one step, a whole sequence, and their
backward passes.

Gate order **i, f, g, o** (PyTorch's). With :math:`a = x_t W_x + h_{t-1} W_h + b` split into four
blocks of ``H`` columns,

.. math::

    i_t = \sigma(a^i), \quad f_t = \sigma(a^f), \quad g_t = \tanh(a^g), \quad o_t = \sigma(a^o),

    c_t = f_t \odot c_{t-1} + i_t \odot g_t, \qquad h_t = o_t \odot \tanh(c_t).

Shapes: ``x (N, T, D)``, ``Wx (D, 4H)``, ``Wh (H, 4H)``, ``b (4H,)``, so ``Wx = weight_ih.T``,
``Wh = weight_hh.T`` and ``b = bias_ih + bias_hh`` of a ``torch.nn.LSTM``. Every ``*_forward``
returns a cache that the matching ``*_backward`` takes; gradients come back in the order of the
forward's inputs. The arithmetic keeps the dtype of the inputs.
"""

from __future__ import annotations

import numpy as np

from solutions._validate import check_array


def sigmoid(x):
    r"""Logistic function :math:`\sigma(x) = 1 / (1 + e^{-x})`, without overflow.

    ``np.exp(-x)`` overflows for large negative ``x``; instead ``z = exp(-|x|)`` (always in
    ``(0, 1]``) gives :math:`\sigma(x) = 1 / (1 + z)` for ``x >= 0`` and :math:`z / (1 + z)`
    otherwise, both exact rearrangements.
    """
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z))


def lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b):
    r"""One time step of an LSTM (equations in the module docstring).

    Inputs:
    - x: input at this step, of shape (N, D)
    - h_prev: previous hidden state, of shape (N, H)
    - c_prev: previous cell state, of shape (N, H)
    - Wx: input-to-hidden weights of the gates i, f, g, o, of shape (D, 4H)
    - Wh: hidden-to-hidden weights, of shape (H, 4H)
    - b: bias, of shape (4H,)

    Returns a tuple of:
    - h_next: next hidden state, of shape (N, H)
    - c_next: next cell state, of shape (N, H)
    - cache: values needed by ``lstm_step_backward``
    """
    dims = {}
    check_array("x", x, ("N", "D"), dims)
    check_array("h_prev", h_prev, ("N", "H"), dims)
    check_array("c_prev", c_prev, ("N", "H"), dims)
    check_array("Wx", Wx, ("D", "4H"), dims)
    check_array("Wh", Wh, ("H", "4H"), dims)
    check_array("b", b, ("4H",), dims)
    return _lstm_step(x, h_prev, c_prev, Wx, Wh, b)


def _lstm_step(x, h_prev, c_prev, Wx, Wh, b):
    H = h_prev.shape[1]
    a = x @ Wx + h_prev @ Wh + b  # (N, 4H)
    i = sigmoid(a[:, :H])  # (N, H) input gate
    f = sigmoid(a[:, H : 2 * H])  # (N, H) forget gate
    g = np.tanh(a[:, 2 * H : 3 * H])  # (N, H) candidate cell
    o = sigmoid(a[:, 3 * H :])  # (N, H) output gate
    c_next = f * c_prev + i * g  # (N, H)
    tanh_c = np.tanh(c_next)  # (N, H)
    h_next = o * tanh_c  # (N, H)
    cache = (x, h_prev, c_prev, Wx, Wh, i, f, g, o, tanh_c)
    return h_next, c_next, cache


def lstm_step_backward(dh_next, dc_next, cache):
    r"""Backward pass of one LSTM step.

    The cell state receives gradient from two places, directly (``dc_next``) and through
    :math:`h_{next} = o \odot \tanh(c_{next})`:

    .. math::

        \delta c = dc_{next} + dh_{next} \odot o \odot (1 - \tanh^2 c_{next}), \qquad
        \delta o = dh_{next} \odot \tanh c_{next},

        \delta i = \delta c \odot g, \quad \delta f = \delta c \odot c_{prev}, \quad
        \delta g = \delta c \odot i, \quad dc_{prev} = \delta c \odot f.

    Each gate's pre-activation gradient multiplies by :math:`\sigma' = \sigma(1 - \sigma)` or
    :math:`\tanh' = 1 - \tanh^2`; with :math:`\delta a = [\delta a^i, \delta a^f, \delta a^g,
    \delta a^o]` the rest is as in the RNN: :math:`dx = \delta a W_x^\top`,
    :math:`dh_{prev} = \delta a W_h^\top`, :math:`dW_x = x^\top \delta a`,
    :math:`dW_h = h_{prev}^\top \delta a`, :math:`db = \sum_n \delta a_n`.

    Inputs:
    - dh_next: upstream gradient of the next hidden state, of shape (N, H)
    - dc_next: upstream gradient of the next cell state, of shape (N, H)
    - cache: the cache returned by ``lstm_step_forward``

    Returns a tuple of:
    - dx: gradient of the input, of shape (N, D)
    - dh_prev: gradient of the previous hidden state, of shape (N, H)
    - dc_prev: gradient of the previous cell state, of shape (N, H)
    - dWx: gradient of the input-to-hidden weights, of shape (D, 4H)
    - dWh: gradient of the hidden-to-hidden weights, of shape (H, 4H)
    - db: gradient of the bias, of shape (4H,)
    """
    N, H = cache[1].shape
    dims = {"N": N, "H": H}
    check_array("dh_next", dh_next, ("N", "H"), dims)
    check_array("dc_next", dc_next, ("N", "H"), dims)
    return _lstm_step_backward(dh_next, dc_next, cache)


def _lstm_step_backward(dh_next, dc_next, cache):
    x, h_prev, c_prev, Wx, Wh, i, f, g, o, tanh_c = cache
    do = dh_next * tanh_c  # (N, H)
    dc = dc_next + dh_next * o * (1 - tanh_c**2)  # (N, H)
    da = np.concatenate(
        [
            dc * g * i * (1 - i),  # input gate
            dc * c_prev * f * (1 - f),  # forget gate
            dc * i * (1 - g**2),  # candidate cell
            do * o * (1 - o),  # output gate
        ],
        axis=1,
    )  # (N, 4H)
    dx = da @ Wx.T  # (N, D)
    dh_prev = da @ Wh.T  # (N, H)
    dc_prev = dc * f  # (N, H)
    dWx = x.T @ da  # (D, 4H)
    dWh = h_prev.T @ da  # (H, 4H)
    db = da.sum(axis=0)  # (4H,)
    return dx, dh_prev, dc_prev, dWx, dWh, db


def lstm_forward(x, h0, c0, Wx, Wh, b):
    r"""Run an LSTM over a whole sequence, starting from :math:`(h_0, c_0)`.

    Inputs:
    - x: input sequence, of shape (N, T, D), with T >= 1
    - h0: initial hidden state, of shape (N, H)
    - c0: initial cell state, of shape (N, H)
    - Wx: input-to-hidden weights of the gates i, f, g, o, of shape (D, 4H)
    - Wh: hidden-to-hidden weights, of shape (H, 4H)
    - b: bias, of shape (4H,)

    Returns a tuple of:
    - h: every hidden state h_1 ... h_T, of shape (N, T, H) (the cell states stay in the cache)
    - cache: values needed by ``lstm_backward``
    """
    dims = {}
    check_array("x", x, ("N", "T", "D"), dims)
    if x.shape[1] == 0:
        raise ValueError(f"x: expected shape (N, T, D) with T >= 1, got shape {x.shape}")
    check_array("h0", h0, ("N", "H"), dims)
    check_array("c0", c0, ("N", "H"), dims)
    check_array("Wx", Wx, ("D", "4H"), dims)
    check_array("Wh", Wh, ("H", "4H"), dims)
    check_array("b", b, ("4H",), dims)
    N, T, _ = x.shape
    H = h0.shape[1]
    h = np.empty((N, T, H), dtype=np.result_type(x, h0, c0, Wx, Wh, b))  # (N, T, H)
    caches = []
    h_prev, c_prev = h0, c0
    for t in range(T):
        h_prev, c_prev, step_cache = _lstm_step(x[:, t], h_prev, c_prev, Wx, Wh, b)
        h[:, t] = h_prev
        caches.append(step_cache)
    return h, caches


def lstm_backward(dh, cache):
    r"""Backpropagation through time for ``lstm_forward``.

    ``dh[:, t]`` is the upstream gradient of :math:`h_t`; the loop from :math:`t = T` down to 1
    adds to it the gradient flowing back from step :math:`t + 1`, and carries the cell-state
    gradient :math:`dc_t` (zero after the last step, since only ``h`` is an output). The weight
    gradients are the sums of the per-step ones.

    Inputs:
    - dh: upstream gradients of every hidden state, of shape (N, T, H)
    - cache: the cache returned by ``lstm_forward``

    Returns a tuple of:
    - dx: gradient of the inputs, of shape (N, T, D)
    - dh0: gradient of the initial hidden state, of shape (N, H)
    - dc0: gradient of the initial cell state, of shape (N, H)
    - dWx: gradient of the input-to-hidden weights, of shape (D, 4H)
    - dWh: gradient of the hidden-to-hidden weights, of shape (H, 4H)
    - db: gradient of the bias, of shape (4H,)
    """
    x0, h_prev0, _, Wx, Wh = cache[0][:5]
    N, H = h_prev0.shape
    T, D = len(cache), x0.shape[1]
    check_array("dh", dh, ("N", "T", "H"), {"N": N, "T": T, "H": H})
    dtype = np.result_type(dh, cache[0][-1])
    dx = np.empty((N, T, D), dtype=dtype)  # (N, T, D)
    dWx = np.zeros_like(Wx, dtype=dtype)  # (D, 4H)
    dWh = np.zeros_like(Wh, dtype=dtype)  # (H, 4H)
    db = np.zeros(4 * H, dtype=dtype)  # (4H,)
    dh_prev = np.zeros((N, H), dtype=dtype)  # nothing flows back into h_T, c_T from a later step
    dc_prev = np.zeros((N, H), dtype=dtype)
    for t in reversed(range(T)):
        dx[:, t], dh_prev, dc_prev, dWx_t, dWh_t, db_t = _lstm_step_backward(
            dh[:, t] + dh_prev, dc_prev, cache[t]
        )
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dh_prev, dc_prev, dWx, dWh, db
