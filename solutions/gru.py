r"""The gated recurrent unit (GRU) in numpy: one step, a whole sequence, and their backward passes.

PyTorch's semantics, gate order **r, z, n**. The input and hidden projections are kept apart,
:math:`a^x = x_t W_x + b_x` and :math:`a^h = h_{t-1} W_h + b_h`, each split into three blocks of
``H`` columns, because the reset gate multiplies the hidden part of the candidate *including its
bias* :math:`b_h^n`:

.. math::

    r_t = \sigma(a^x_r + a^h_r), \qquad z_t = \sigma(a^x_z + a^h_z),

    n_t = \tanh(a^x_n + r_t \odot a^h_n), \qquad h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}.

Shapes: ``x (N, T, D)``, ``Wx (D, 3H)``, ``Wh (H, 3H)``, ``bx (3H,)``, ``bh (3H,)``, so
``Wx = weight_ih.T``, ``Wh = weight_hh.T``, ``bx = bias_ih`` and ``bh = bias_hh`` of a
``torch.nn.GRU``. Every ``*_forward`` returns a cache that the matching ``*_backward`` takes;
gradients come back in the order of the forward's inputs. The arithmetic keeps the dtype of the
inputs.
"""

from __future__ import annotations

import numpy as np

from solutions._validate import check_array
from solutions.lstm import sigmoid


def gru_step_forward(x, h_prev, Wx, Wh, bx, bh):
    r"""One time step of a GRU (equations in the module docstring).

    Inputs:
    - x: input at this step, of shape (N, D)
    - h_prev: previous hidden state, of shape (N, H)
    - Wx: input-to-hidden weights of the gates r, z, n, of shape (D, 3H)
    - Wh: hidden-to-hidden weights, of shape (H, 3H)
    - bx: input bias, of shape (3H,)
    - bh: hidden bias, of shape (3H,)

    Returns a tuple of:
    - h_next: next hidden state, of shape (N, H)
    - cache: values needed by ``gru_step_backward``
    """
    dims = {}
    check_array("x", x, ("N", "D"), dims)
    check_array("h_prev", h_prev, ("N", "H"), dims)
    check_array("Wx", Wx, ("D", "3H"), dims)
    check_array("Wh", Wh, ("H", "3H"), dims)
    check_array("bx", bx, ("3H",), dims)
    check_array("bh", bh, ("3H",), dims)
    return _gru_step(x, h_prev, Wx, Wh, bx, bh)


def _gru_step(x, h_prev, Wx, Wh, bx, bh):
    H = h_prev.shape[1]
    ax = x @ Wx + bx  # (N, 3H)
    ah = h_prev @ Wh + bh  # (N, 3H)
    r = sigmoid(ax[:, :H] + ah[:, :H])  # (N, H) reset gate
    z = sigmoid(ax[:, H : 2 * H] + ah[:, H : 2 * H])  # (N, H) update gate
    ah_n = ah[:, 2 * H :]  # (N, H)
    n = np.tanh(ax[:, 2 * H :] + r * ah_n)  # (N, H) candidate state
    h_next = (1 - z) * n + z * h_prev  # (N, H)
    return h_next, (x, h_prev, Wx, Wh, r, z, n, ah_n)


def gru_step_backward(dh_next, cache):
    r"""Backward pass of one GRU step.

    From :math:`h_{next} = (1 - z) \odot n + z \odot h_{prev}`:

    .. math::

        \delta n = dh_{next} \odot (1 - z), \quad \delta z = dh_{next} \odot (h_{prev} - n),
        \quad \delta a_n = \delta n \odot (1 - n^2), \quad \delta r = \delta a_n \odot a^h_n,

    and :math:`\delta a_r = \delta r \odot r(1 - r)`, :math:`\delta a_z = \delta z \odot z(1 - z)`.
    The input projection gets :math:`\delta a^x = [\delta a_r, \delta a_z, \delta a_n]`; the hidden
    projection gets :math:`\delta a^h = [\delta a_r, \delta a_z, r \odot \delta a_n]`, since
    :math:`a^h_n` enters through the reset product. Then :math:`dx = \delta a^x W_x^\top`,
    :math:`dW_x = x^\top \delta a^x`, :math:`db_x = \sum_n \delta a^x_n`,
    :math:`dW_h = h_{prev}^\top \delta a^h`, :math:`db_h = \sum_n \delta a^h_n`, and
    :math:`dh_{prev} = dh_{next} \odot z + \delta a^h W_h^\top` (the direct path plus the
    projection).

    Inputs:
    - dh_next: upstream gradient of the next hidden state, of shape (N, H)
    - cache: the cache returned by ``gru_step_forward``

    Returns a tuple of:
    - dx: gradient of the input, of shape (N, D)
    - dh_prev: gradient of the previous hidden state, of shape (N, H)
    - dWx: gradient of the input-to-hidden weights, of shape (D, 3H)
    - dWh: gradient of the hidden-to-hidden weights, of shape (H, 3H)
    - dbx: gradient of the input bias, of shape (3H,)
    - dbh: gradient of the hidden bias, of shape (3H,)
    """
    N, H = cache[1].shape
    check_array("dh_next", dh_next, ("N", "H"), {"N": N, "H": H})
    return _gru_step_backward(dh_next, cache)


def _gru_step_backward(dh_next, cache):
    x, h_prev, Wx, Wh, r, z, n, ah_n = cache
    dan = dh_next * (1 - z) * (1 - n**2)  # (N, H)
    dar = dan * ah_n * r * (1 - r)  # (N, H)
    daz = dh_next * (h_prev - n) * z * (1 - z)  # (N, H)
    dax = np.concatenate([dar, daz, dan], axis=1)  # (N, 3H)
    dah = np.concatenate([dar, daz, dan * r], axis=1)  # (N, 3H)
    dx = dax @ Wx.T  # (N, D)
    dh_prev = dh_next * z + dah @ Wh.T  # (N, H)
    dWx = x.T @ dax  # (D, 3H)
    dWh = h_prev.T @ dah  # (H, 3H)
    dbx = dax.sum(axis=0)  # (3H,)
    dbh = dah.sum(axis=0)  # (3H,)
    return dx, dh_prev, dWx, dWh, dbx, dbh


def gru_forward(x, h0, Wx, Wh, bx, bh):
    r"""Run a GRU over a whole sequence, starting from :math:`h_0`.

    Inputs:
    - x: input sequence, of shape (N, T, D), with T >= 1
    - h0: initial hidden state, of shape (N, H)
    - Wx: input-to-hidden weights of the gates r, z, n, of shape (D, 3H)
    - Wh: hidden-to-hidden weights, of shape (H, 3H)
    - bx: input bias, of shape (3H,)
    - bh: hidden bias, of shape (3H,)

    Returns a tuple of:
    - h: every hidden state h_1 ... h_T, of shape (N, T, H)
    - cache: values needed by ``gru_backward``
    """
    dims = {}
    check_array("x", x, ("N", "T", "D"), dims)
    if x.shape[1] == 0:
        raise ValueError(f"x: expected shape (N, T, D) with T >= 1, got shape {x.shape}")
    check_array("h0", h0, ("N", "H"), dims)
    check_array("Wx", Wx, ("D", "3H"), dims)
    check_array("Wh", Wh, ("H", "3H"), dims)
    check_array("bx", bx, ("3H",), dims)
    check_array("bh", bh, ("3H",), dims)
    N, T, _ = x.shape
    H = h0.shape[1]
    h = np.empty((N, T, H), dtype=np.result_type(x, h0, Wx, Wh, bx, bh))  # (N, T, H)
    caches = []
    h_prev = h0
    for t in range(T):
        h_prev, step_cache = _gru_step(x[:, t], h_prev, Wx, Wh, bx, bh)
        h[:, t] = h_prev
        caches.append(step_cache)
    return h, caches


def gru_backward(dh, cache):
    r"""Backpropagation through time for ``gru_forward``.

    ``dh[:, t]`` is the upstream gradient of :math:`h_t`; the loop from :math:`t = T` down to 1
    adds to it the gradient flowing back from step :math:`t + 1`. The weight and bias gradients
    are the sums of the per-step ones.

    Inputs:
    - dh: upstream gradients of every hidden state, of shape (N, T, H)
    - cache: the cache returned by ``gru_forward``

    Returns a tuple of:
    - dx: gradient of the inputs, of shape (N, T, D)
    - dh0: gradient of the initial hidden state, of shape (N, H)
    - dWx: gradient of the input-to-hidden weights, of shape (D, 3H)
    - dWh: gradient of the hidden-to-hidden weights, of shape (H, 3H)
    - dbx: gradient of the input bias, of shape (3H,)
    - dbh: gradient of the hidden bias, of shape (3H,)
    """
    x0, h_prev0, Wx, Wh = cache[0][:4]
    N, H = h_prev0.shape
    T, D = len(cache), x0.shape[1]
    check_array("dh", dh, ("N", "T", "H"), {"N": N, "T": T, "H": H})
    dtype = np.result_type(dh, cache[0][6])
    dx = np.empty((N, T, D), dtype=dtype)  # (N, T, D)
    dWx = np.zeros_like(Wx, dtype=dtype)  # (D, 3H)
    dWh = np.zeros_like(Wh, dtype=dtype)  # (H, 3H)
    dbx = np.zeros(3 * H, dtype=dtype)  # (3H,)
    dbh = np.zeros(3 * H, dtype=dtype)  # (3H,)
    dh_prev = np.zeros((N, H), dtype=dtype)  # nothing flows back into h_T from a later step
    for t in reversed(range(T)):
        dx[:, t], dh_prev, dWx_t, dWh_t, dbx_t, dbh_t = _gru_step_backward(
            dh[:, t] + dh_prev, cache[t]
        )
        dWx += dWx_t
        dWh += dWh_t
        dbx += dbx_t
        dbh += dbh_t
    return dx, dh_prev, dWx, dWh, dbx, dbh
