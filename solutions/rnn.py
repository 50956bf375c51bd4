r"""The vanilla (Elman) recurrent network in numpy: forward, backpropagation through time, gradient
clipping and the bidirectional RNN.

Batch first: a sequence ``x`` has shape ``(N, T, D)``, one step ``(N, D)``; the hidden size is
``H``. The weights are used as ``x @ Wx + h @ Wh + b``, so ``Wx = weight_ih.T`` and
``Wh = weight_hh.T`` of a ``torch.nn.RNN`` (and ``b = bias_ih + bias_hh``). One step is

.. math::

    h_t = \tanh(x_t W_x + h_{t-1} W_h + b).

Every ``*_forward`` returns ``(out, cache)``; the matching ``*_backward(dout, cache)`` returns the
gradients in the order of the forward's inputs. The sequence functions loop over the step functions
in time and are vectorised over the batch. The arithmetic keeps the dtype of the inputs.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from solutions._validate import check_array


def rnn_step_forward(x, h_prev, Wx, Wh, b):
    r"""One time step of a tanh RNN, :math:`h_{next} = \tanh(x W_x + h_{prev} W_h + b)`.

    Inputs:
    - x: input at this step, of shape (N, D)
    - h_prev: hidden state of the previous step, of shape (N, H)
    - Wx: input-to-hidden weights, of shape (D, H)
    - Wh: hidden-to-hidden weights, of shape (H, H)
    - b: bias, of shape (H,)

    Returns a tuple of:
    - h_next: next hidden state, of shape (N, H)
    - cache: values needed by ``rnn_step_backward``
    """
    dims = {}
    check_array("x", x, ("N", "D"), dims)
    check_array("h_prev", h_prev, ("N", "H"), dims)
    check_array("Wx", Wx, ("D", "H"), dims)
    check_array("Wh", Wh, ("H", "H"), dims)
    check_array("b", b, ("H",), dims)
    return _rnn_step(x, h_prev, Wx, Wh, b)


def _rnn_step(x, h_prev, Wx, Wh, b):
    h_next = np.tanh(x @ Wx + h_prev @ Wh + b)  # (N, H)
    return h_next, (x, h_prev, Wx, Wh, h_next)


def rnn_step_backward(dh_next, cache):
    r"""Backward pass of one RNN step.

    With :math:`a = x W_x + h_{prev} W_h + b` and :math:`h_{next} = \tanh(a)`,

    .. math::

        \frac{\partial L}{\partial a} = \frac{\partial L}{\partial h_{next}} \odot (1 - h_{next}^2),
        \quad
        \frac{\partial L}{\partial x} = \frac{\partial L}{\partial a} W_x^\top, \quad
        \frac{\partial L}{\partial h_{prev}} = \frac{\partial L}{\partial a} W_h^\top, \quad
        \frac{\partial L}{\partial W_x} = x^\top \frac{\partial L}{\partial a}, \quad
        \frac{\partial L}{\partial W_h} = h_{prev}^\top \frac{\partial L}{\partial a}, \quad
        \frac{\partial L}{\partial b} = \textstyle\sum_n \frac{\partial L}{\partial a_n}.

    Inputs:
    - dh_next: upstream gradient of the next hidden state, of shape (N, H)
    - cache: the cache returned by ``rnn_step_forward``

    Returns a tuple of:
    - dx: gradient of the input, of shape (N, D)
    - dh_prev: gradient of the previous hidden state, of shape (N, H)
    - dWx: gradient of the input-to-hidden weights, of shape (D, H)
    - dWh: gradient of the hidden-to-hidden weights, of shape (H, H)
    - db: gradient of the bias, of shape (H,)
    """
    h_next = cache[-1]
    N, H = h_next.shape
    check_array("dh_next", dh_next, ("N", "H"), {"N": N, "H": H})
    return _rnn_step_backward(dh_next, cache)


def _rnn_step_backward(dh_next, cache):
    x, h_prev, Wx, Wh, h_next = cache
    da = dh_next * (1 - h_next**2)  # (N, H): through tanh' = 1 - tanh²
    dx = da @ Wx.T  # (N, D)
    dh_prev = da @ Wh.T  # (N, H)
    dWx = x.T @ da  # (D, H)
    dWh = h_prev.T @ da  # (H, H)
    db = da.sum(axis=0)  # (H,)
    return dx, dh_prev, dWx, dWh, db


def rnn_forward(x, h0, Wx, Wh, b):
    r"""Run a tanh RNN over a whole sequence, :math:`h_t = \tanh(x_t W_x + h_{t-1} W_h + b)` for
    :math:`t = 1, \dots, T`, starting from :math:`h_0`.

    Inputs:
    - x: input sequence, of shape (N, T, D), with T >= 1
    - h0: initial hidden state, of shape (N, H)
    - Wx: input-to-hidden weights, of shape (D, H)
    - Wh: hidden-to-hidden weights, of shape (H, H)
    - b: bias, of shape (H,)

    Returns a tuple of:
    - h: every hidden state h_1 ... h_T, of shape (N, T, H) (h0 is not included)
    - cache: values needed by ``rnn_backward``
    """
    dims = {}
    check_array("x", x, ("N", "T", "D"), dims)
    _check_has_steps(x)
    check_array("h0", h0, ("N", "H"), dims)
    check_array("Wx", Wx, ("D", "H"), dims)
    check_array("Wh", Wh, ("H", "H"), dims)
    check_array("b", b, ("H",), dims)
    N, T, _ = x.shape
    H = h0.shape[1]
    h = np.empty((N, T, H), dtype=np.result_type(x, h0, Wx, Wh, b))  # (N, T, H)
    caches = []
    h_prev = h0
    for t in range(T):
        h_prev, step_cache = _rnn_step(x[:, t], h_prev, Wx, Wh, b)
        h[:, t] = h_prev
        caches.append(step_cache)
    return h, caches


def rnn_backward(dh, cache):
    r"""Backpropagation through time for ``rnn_forward``.

    ``dh[:, t]`` is the gradient that reaches :math:`h_t` from above (for example from a loss on
    every output). The gradient of :math:`h_t` also receives what flows back from step
    :math:`t + 1`, so the loop runs from :math:`t = T` down to 1 with

    .. math::

        \frac{\partial L}{\partial h_t} = dh_t + \frac{\partial L}{\partial h_{t+1}}
        \frac{\partial h_{t+1}}{\partial h_t},

    and the weight gradients are the sums of the per-step ones.

    Inputs:
    - dh: upstream gradients of every hidden state, of shape (N, T, H)
    - cache: the cache returned by ``rnn_forward``

    Returns a tuple of:
    - dx: gradient of the inputs, of shape (N, T, D)
    - dh0: gradient of the initial hidden state, of shape (N, H)
    - dWx: gradient of the input-to-hidden weights, of shape (D, H)
    - dWh: gradient of the hidden-to-hidden weights, of shape (H, H)
    - db: gradient of the bias, of shape (H,)
    """
    x0, _, Wx, Wh, h1 = cache[0]
    N, H = h1.shape
    T, D = len(cache), x0.shape[1]
    check_array("dh", dh, ("N", "T", "H"), {"N": N, "T": T, "H": H})
    dtype = np.result_type(dh, h1)
    dx = np.empty((N, T, D), dtype=dtype)  # (N, T, D)
    dWx = np.zeros_like(Wx, dtype=dtype)  # (D, H)
    dWh = np.zeros_like(Wh, dtype=dtype)  # (H, H)
    db = np.zeros(H, dtype=dtype)  # (H,)
    dh_prev = np.zeros((N, H), dtype=dtype)  # nothing flows back into h_T from a later step
    for t in reversed(range(T)):
        dx[:, t], dh_prev, dWx_t, dWh_t, db_t = _rnn_step_backward(dh[:, t] + dh_prev, cache[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dh_prev, dWx, dWh, db


def clip_grad_norm(grads, max_norm):
    r"""Rescale a list of gradients so that their global L2 norm is at most ``max_norm``.

    The global norm treats all the arrays as one long vector,
    :math:`\|g\| = \sqrt{\sum_k \sum_i g_{k,i}^2}`. As ``torch.nn.utils.clip_grad_norm_``, every
    array is multiplied by :math:`\min(1, \mathrm{max\_norm} / (\|g\| + 10^{-6}))`: unchanged when
    the norm is small, scaled to a norm of (just under) ``max_norm`` when it exceeds it, and the
    direction of the whole gradient is kept. The :math:`10^{-6}` guards against a zero norm.

    Inputs:
    - grads: a list (or tuple) of floating-point arrays of any shapes
    - max_norm: the largest global norm allowed, a positive finite number

    Returns a tuple of:
    - clipped: a list of NEW arrays, of the same shapes and dtypes as ``grads`` (the inputs are
      not modified)
    - total_norm: the global norm of ``grads`` before clipping, a float
    """
    is_number = isinstance(max_norm, numbers.Real) and not isinstance(max_norm, bool)
    if not (is_number and math.isfinite(max_norm) and max_norm > 0):
        raise ValueError(f"max_norm: expected a positive finite number, got {max_norm!r}")
    if not isinstance(grads, (list, tuple)):
        raise TypeError(f"grads: expected a list of numpy arrays, got {type(grads).__name__}")
    for k, g in enumerate(grads):
        check_array(f"grads[{k}]", g, tuple(f"d{axis}" for axis in range(np.ndim(g))))
    # Sum the squares in float64 so that float32 gradients of large magnitude do not overflow.
    total_norm = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads))
    scale = min(1.0, float(max_norm) / (total_norm + 1e-6))
    clipped = [(g * scale).astype(g.dtype, copy=False) if scale < 1.0 else g.copy() for g in grads]
    return clipped, total_norm


def birnn_forward(x, h0, Wx_f, Wh_f, b_f, Wx_b, Wh_b, b_b):
    r"""A bidirectional tanh RNN: one RNN reads the sequence left to right, a second one (with its
    own weights) right to left, and their states at each time step are concatenated,

    .. math::

        \overrightarrow{h}_t = \tanh(x_t W_x^f + \overrightarrow{h}_{t-1} W_h^f + b^f), \quad
        \overleftarrow{h}_t = \tanh(x_t W_x^b + \overleftarrow{h}_{t+1} W_h^b + b^b), \quad
        h_t = [\overrightarrow{h}_t; \overleftarrow{h}_t],

    with :math:`\overrightarrow{h}_0 = h0[0]` and :math:`\overleftarrow{h}_{T+1} = h0[1]`. This is
    the ``output`` of ``torch.nn.RNN(bidirectional=True, batch_first=True)``, where the backward
    direction's weights are the ``*_reverse`` parameters.

    Inputs:
    - x: input sequence, of shape (N, T, D), with T >= 1
    - h0: initial states of the two directions, of shape (2, N, H), forward first
    - Wx_f, Wh_f, b_f: forward direction's weights, of shapes (D, H), (H, H), (H,)
    - Wx_b, Wh_b, b_b: backward direction's weights, of shapes (D, H), (H, H), (H,)

    Returns a tuple of:
    - h: the concatenated states, of shape (N, T, 2H), forward half first
    - cache: values needed by ``birnn_backward``
    """
    dims = {}
    check_array("x", x, ("N", "T", "D"), dims)
    _check_has_steps(x)
    check_array("h0", h0, (2, "N", "H"), dims)
    for name, value, spec in (
        ("Wx_f", Wx_f, ("D", "H")),
        ("Wh_f", Wh_f, ("H", "H")),
        ("b_f", b_f, ("H",)),
        ("Wx_b", Wx_b, ("D", "H")),
        ("Wh_b", Wh_b, ("H", "H")),
        ("b_b", b_b, ("H",)),
    ):
        check_array(name, value, spec, dims)
    h_f, cache_f = rnn_forward(x, h0[0], Wx_f, Wh_f, b_f)  # (N, T, H)
    h_b, cache_b = rnn_forward(x[:, ::-1], h0[1], Wx_b, Wh_b, b_b)  # (N, T, H), reversed time
    h = np.concatenate([h_f, h_b[:, ::-1]], axis=2)  # (N, T, 2H)
    return h, (cache_f, cache_b)


def birnn_backward(dh, cache):
    r"""Backward pass of ``birnn_forward``: each half of ``dh`` goes back through its own direction,
    and the two gradients of ``x`` add up.

    Inputs:
    - dh: upstream gradients of every concatenated state, of shape (N, T, 2H)
    - cache: the cache returned by ``birnn_forward``

    Returns a tuple of:
    - dx: gradient of the inputs, of shape (N, T, D)
    - dh0: gradient of the initial states, of shape (2, N, H)
    - dWx_f, dWh_f, db_f: gradients of the forward direction's weights, (D, H), (H, H), (H,)
    - dWx_b, dWh_b, db_b: gradients of the backward direction's weights, (D, H), (H, H), (H,)
    """
    cache_f, cache_b = cache
    N, H = cache_f[0][-1].shape
    check_array("dh", dh, ("N", "T", "2H"), {"N": N, "T": len(cache_f), "H": H})
    dx_f, dh0_f, dWx_f, dWh_f, db_f = rnn_backward(dh[:, :, :H], cache_f)
    dx_b, dh0_b, dWx_b, dWh_b, db_b = rnn_backward(dh[:, ::-1, H:], cache_b)
    dx = dx_f + dx_b[:, ::-1]  # (N, T, D)
    dh0 = np.stack([dh0_f, dh0_b])  # (2, N, H)
    return dx, dh0, dWx_f, dWh_f, db_f, dWx_b, dWh_b, db_b


def _check_has_steps(x):
    if x.shape[1] == 0:
        raise ValueError(f"x: expected shape (N, T, D) with T >= 1, got shape {x.shape}")
