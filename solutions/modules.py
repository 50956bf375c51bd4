r"""Recurrent layers as PyTorch modules: ``LSTMCell``, ``GRUCell`` and a multi-layer ``LSTM``.

These are the reference versions of ``torch.nn.LSTMCell``, ``torch.nn.GRUCell`` and
``torch.nn.LSTM``. Parameter names, shapes, initialisation, inputs and outputs are PyTorch's, so

>>> ours = LSTM(10, 20, num_layers=2, bidirectional=True)
>>> ours.load_state_dict(torch.nn.LSTM(10, 20, num_layers=2, bidirectional=True).state_dict())
<All keys matched successfully>

works, and the two modules give the same outputs and gradients. Gate order is PyTorch's:
**i, f, g, o** for the LSTM (rows ``0:H``, ``H:2H``, ``2H:3H``, ``3H:4H`` of ``weight_ih``) and
**r, z, n** for the GRU. The numpy layers of the course use the transposed weights,
``Wx = weight_ih.T``, ``Wh = weight_hh.T``.

How the LSTM is made fast (``benchmarks/bench_lstm.py`` measures it against ``torch.nn.LSTM``):

1. The input-to-hidden product does not depend on the recurrence, so it is computed for all time
   steps at once, one ``(T*N, D) @ (D, 4H)`` matmul per layer and direction, with both biases added.
2. Each step then needs one ``(N, H) @ (H, 4H)`` matmul for all four gates; the result is cut
   into ``i, f, g, o``.
3. The recurrence over time is one ``torch.autograd.Function`` (``_LSTMRecurrence``) whose backward
   is the course's BPTT written out by hand. Left to autograd, a Python loop records about ten
   graph nodes per step and computes ``dW_hh`` as ``T`` small matmuls; the hand-written backward
   stores the gate activations, runs one matmul per step for ``dh_prev`` and computes ``dW_hh``
   at the end in a single ``(4H, T*N) @ (T*N, H)`` matmul. On one CPU core that makes the layer
   several times faster than the autograd loop (the benchmark prints both). TorchScript is
   deprecated in torch 2.13, and ``torch.compile`` of the per-step gate arithmetic is slower
   than eager on CPU (``bench_lstm.py --compile-cell``), so neither is used.

The custom recurrence is differentiable once (``backward`` works, double backward raises); the
cells are plain autograd code and support higher derivatives.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from solutions._validate import check_positive_int, check_shape, format_spec

__all__ = ["GRUCell", "LSTM", "LSTMCell", "check_tensor"]


def check_tensor(name: str, value, spec: tuple, dims: dict) -> torch.Tensor:
    """Check that ``value`` is a floating-point tensor whose shape matches ``spec``.

    The torch counterpart of :func:`solutions._validate.check_array`: letters in ``spec`` are
    bound in ``dims`` the first time they are seen and checked every later time; integers are
    fixed sizes and ``"4H"`` is a multiple of a bound letter. Raises ``TypeError`` (not a
    floating tensor) or ``ValueError`` (wrong rank or size) with a message naming ``name`` and the
    expected shape.
    """
    expected = format_spec(spec)
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{name}: expected a tensor of shape {expected}, got {type(value).__name__}"
        )
    if not value.is_floating_point():
        raise TypeError(
            f"{name}: expected a floating-point tensor of shape {expected}, got {value.dtype}"
        )
    check_shape(name, value.shape, spec, dims)
    return value


def _init_uniform(module: nn.Module, hidden_size: int) -> None:
    # PyTorch's initialisation for every recurrent parameter: U(-1/sqrt(H), 1/sqrt(H)).
    bound = 1.0 / math.sqrt(hidden_size)
    for weight in module.parameters():
        nn.init.uniform_(weight, -bound, bound)


def _check_cell_input(cell: nn.Module, x, dims: dict) -> tuple[torch.Tensor, bool]:
    """Validate a cell input ``(N, D)`` or unbatched ``(D,)``; return it as ``(N, D)``."""
    if isinstance(x, torch.Tensor) and x.dim() == 1:
        check_tensor("x", x, ("D",), dims)
        batched = False
        x = x.unsqueeze(0)
    else:
        batched = True
    check_tensor("x", x, ("N", cell.input_size), dims)
    return x, batched


class LSTMCell(nn.Module):
    r"""One LSTM step.

    .. math::
        \begin{array}{ll}
        i = \sigma(W_{ii} x + b_{ii} + W_{hi} h + b_{hi}) \\
        f = \sigma(W_{if} x + b_{if} + W_{hf} h + b_{hf}) \\
        g = \tanh(W_{ig} x + b_{ig} + W_{hg} h + b_{hg}) \\
        o = \sigma(W_{io} x + b_{io} + W_{ho} h + b_{ho}) \\
        c' = f \odot c + i \odot g \\
        h' = o \odot \tanh(c')
        \end{array}

    Args:
        input_size: ``D``, the number of features of ``x``.
        hidden_size: ``H``, the number of features of ``h`` and ``c``.
        bias: if ``False``, no ``bias_ih`` and ``bias_hh``.

    Shapes (``state`` defaults to zeros; an unbatched ``x (D,)`` takes ``h, c (H,)``):

    ======== =============== =====================
    argument shape           meaning
    ======== =============== =====================
    x        ``(N, D)``      input at this step
    state    ``((N, H),      ``(h_prev, c_prev)``
             (N, H))``
    returns  ``((N, H),      ``(h_next, c_next)``
             (N, H))``
    ======== =============== =====================

    Parameters: ``weight_ih (4H, D)``, ``weight_hh (4H, H)``, ``bias_ih (4H,)``,
    ``bias_hh (4H,)``, gate rows in the order i, f, g, o.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self.input_size = check_positive_int("input_size", input_size)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.bias = bool(bias)
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size)) if bias else None
        self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size)) if bias else None
        _init_uniform(self, hidden_size)

    def forward(self, x: torch.Tensor, state=None) -> tuple[torch.Tensor, torch.Tensor]:
        dims = {}
        x, batched = _check_cell_input(self, x, dims)
        H = self.hidden_size
        if state is None:
            h_prev = c_prev = x.new_zeros(x.shape[0], H)
        else:
            h_prev, c_prev = _unpack_pair("state", state)
            spec = ("N", H) if batched else (H,)
            check_tensor("h_prev (state[0])", h_prev, spec, dims)
            check_tensor("c_prev (state[1])", c_prev, spec, dims)
            if not batched:
                h_prev, c_prev = h_prev.unsqueeze(0), c_prev.unsqueeze(0)
        gates = F.linear(x, self.weight_ih, self.bias_ih) + F.linear(
            h_prev, self.weight_hh, self.bias_hh
        )  # (N, 4H)
        i, f, g, o = gates.chunk(4, dim=1)
        c_next = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)  # (N, H)
        h_next = torch.sigmoid(o) * torch.tanh(c_next)  # (N, H)
        if not batched:
            return h_next.squeeze(0), c_next.squeeze(0)
        return h_next, c_next

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}"


class GRUCell(nn.Module):
    r"""One GRU step, with PyTorch's placement of the reset gate (``b_hn`` inside the product).

    .. math::
        \begin{array}{ll}
        r = \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}) \\
        z = \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz}) \\
        n = \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})) \\
        h' = (1 - z) \odot n + z \odot h
        \end{array}

    Args:
        input_size: ``D``, the number of features of ``x``.
        hidden_size: ``H``, the number of features of ``h``.
        bias: if ``False``, no ``bias_ih`` and ``bias_hh``.

    Shapes (``h`` defaults to zeros; an unbatched ``x (D,)`` takes ``h (H,)``):

    ======== ============ ================
    argument shape        meaning
    ======== ============ ================
    x        ``(N, D)``   input at this step
    h        ``(N, H)``   ``h_prev``
    returns  ``(N, H)``   ``h_next``
    ======== ============ ================

    Parameters: ``weight_ih (3H, D)``, ``weight_hh (3H, H)``, ``bias_ih (3H,)``,
    ``bias_hh (3H,)``, gate rows in the order r, z, n.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self.input_size = check_positive_int("input_size", input_size)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.bias = bool(bias)
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(3 * hidden_size)) if bias else None
        self.bias_hh = nn.Parameter(torch.empty(3 * hidden_size)) if bias else None
        _init_uniform(self, hidden_size)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        dims = {}
        x, batched = _check_cell_input(self, x, dims)
        if h is None:
            h_prev = x.new_zeros(x.shape[0], self.hidden_size)
        else:
            check_tensor("h", h, ("N", self.hidden_size) if batched else (self.hidden_size,), dims)
            h_prev = h if batched else h.unsqueeze(0)
        x_r, x_z, x_n = F.linear(x, self.weight_ih, self.bias_ih).chunk(3, dim=1)  # (N, H) each
        h_r, h_z, h_n = F.linear(h_prev, self.weight_hh, self.bias_hh).chunk(3, dim=1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        h_next = (1 - z) * n + z * h_prev  # (N, H)
        return h_next if batched else h_next.squeeze(0)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}"


def _unpack_pair(name: str, state) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(state, (tuple, list)) or len(state) != 2:
        raise TypeError(f"{name}: expected a pair (h, c) of tensors, got {type(state).__name__}")
    return state[0], state[1]


class _LSTMRecurrence(torch.autograd.Function):
    """The time loop of one LSTM layer in one direction, with a hand-written BPTT backward.

    ``forward(x_proj (T, N, 4H), h0 (N, H), c0 (N, H), weight_hh (4H, H)) -> (h (T, N, H),
    c_n (N, H))``, where ``x_proj`` already holds ``x_t W_ih^T + b_ih + b_hh`` for every step.
    The arithmetic is done in ``x_proj``'s dtype, so the layer also runs under autocast (where
    the projection comes out in half precision); gradients are returned in each input's dtype.
    """

    @staticmethod
    def forward(ctx, x_proj, h0, c0, weight_hh):
        T, H = x_proj.shape[0], h0.shape[-1]
        w_hh = weight_hh.to(x_proj.dtype)
        h_all = x_proj.new_empty(T + 1, *h0.shape)  # (T+1, N, H): h_all[t] is h_{t-1}
        c_all = x_proj.new_empty(T + 1, *h0.shape)  # (T+1, N, H)
        acts = torch.empty_like(x_proj)  # (T, N, 4H): sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)
        h_all[0] = h0
        c_all[0] = c0
        for t in range(T):
            a = torch.addmm(x_proj[t], h_all[t], w_hh.t(), out=acts[t])  # (N, 4H)
            a[:, : 2 * H].sigmoid_()
            a[:, 2 * H : 3 * H].tanh_()
            a[:, 3 * H :].sigmoid_()
            i, f, g, o = a.chunk(4, dim=1)
            torch.addcmul(i * g, f, c_all[t], out=c_all[t + 1])
            torch.mul(o, torch.tanh(c_all[t + 1]), out=h_all[t + 1])
        ctx.save_for_backward(h_all, c_all, acts, w_hh)
        ctx.dtypes = (h0.dtype, c0.dtype, weight_hh.dtype)
        return h_all[1:], c_all[T]

    @staticmethod
    @once_differentiable
    def backward(ctx, dh_out, dc_n):
        h_all, c_all, acts, w_hh = ctx.saved_tensors
        T = acts.shape[0]
        d_gates = torch.empty_like(acts)  # (T, N, 4H): gradient wrt the pre-activations
        dh_next = torch.zeros_like(h_all[0])  # gradient reaching h_t from step t+1
        dc_next = dc_n.to(acts.dtype)
        for t in reversed(range(T)):
            i, f, g, o = acts[t].chunk(4, dim=1)
            di, df, dg, do = d_gates[t].chunk(4, dim=1)
            # h_t = o * tanh(c_t) sends dh into do and into dc; c_t = f * c_{t-1} + i * g splits
            # dc into di, df, dg and dc_{t-1}. Derivatives come from the stored activations:
            # sigmoid' = s (1 - s), tanh' = 1 - tanh^2.
            dh = dh_next + dh_out[t]
            tanh_c = torch.tanh(c_all[t + 1])
            dc = dc_next + dh * o * (1 - tanh_c * tanh_c)
            torch.mul(dc * g, i * (1 - i), out=di)
            torch.mul(dc * c_all[t], f * (1 - f), out=df)
            torch.mul(dc * i, 1 - g * g, out=dg)
            torch.mul(dh * tanh_c, o * (1 - o), out=do)
            dc_next = dc * f
            dh_next = d_gates[t] @ w_hh  # (N, H)
        # One matmul over all steps instead of T small ones: dW_hh = sum_t dgates_t^T h_{t-1}.
        d_weight_hh = d_gates.flatten(0, 1).t() @ h_all[:-1].flatten(0, 1)  # (4H, H)
        h_dtype, c_dtype, w_dtype = ctx.dtypes
        return d_gates, dh_next.to(h_dtype), dc_next.to(c_dtype), d_weight_hh.to(w_dtype)


class LSTM(nn.Module):
    r"""A multi-layer (optionally bidirectional) LSTM, a drop-in for ``torch.nn.LSTM``.

    For each layer, direction and time step :math:`t`:

    .. math::
        \begin{array}{ll}
        i_t = \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) \\
        f_t = \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\
        g_t = \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
        o_t = \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) \\
        c_t = f_t \odot c_{t-1} + i_t \odot g_t \\
        h_t = o_t \odot \tanh(c_t)
        \end{array}

    Layer :math:`k > 0` reads the hidden states :math:`h_t` of layer :math:`k-1` (both directions
    concatenated when bidirectional). The reverse direction runs from :math:`t = T` down to 1.

    Args:
        input_size: ``D``, the number of features of ``x``.
        hidden_size: ``H``, the number of features of ``h`` and ``c``.
        num_layers: ``L``, the number of stacked layers.
        bias: if ``False``, no ``bias_ih_l{k}`` and ``bias_hh_l{k}``.
        batch_first: if ``True``, ``x`` and ``output`` are ``(N, T, ...)`` instead of
            ``(T, N, ...)``; the states are ``(L*dirs, N, H)`` either way, as in PyTorch.
        bidirectional: if ``True``, each layer also runs backwards in time (``dirs = 2``).

    Shapes (``dirs`` is 2 if bidirectional else 1; for an unbatched ``x (T, D)`` drop ``N``):

    ============ ======================== ================================================
    argument     shape                    meaning
    ============ ======================== ================================================
    x            ``(T, N, D)``            input sequence (``(N, T, D)`` if ``batch_first``)
    h0, c0       ``(L*dirs, N, H)``       initial states, zeros if not given
    output       ``(T, N, dirs*H)``       ``h_t`` of the last layer (``(N, T, dirs*H)`` if
                                          ``batch_first``), forward direction first
    h_n, c_n     ``(L*dirs, N, H)``       final states, ordered layer 0 forward, layer 0
                                          reverse, layer 1 forward, ...
    ============ ======================== ================================================

    Parameters of layer ``k`` (``_reverse`` appended for the reverse direction):
    ``weight_ih_l{k} (4H, D)`` for ``k = 0`` and ``(4H, dirs*H)`` above, ``weight_hh_l{k} (4H, H)``,
    ``bias_ih_l{k} (4H,)``, ``bias_hh_l{k} (4H,)``, gate rows in the order i, f, g, o.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        self.input_size = check_positive_int("input_size", input_size)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        num_directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else num_directions * hidden_size
            for suffix in self._suffixes(layer):
                self.register_parameter(
                    "weight_ih" + suffix, nn.Parameter(torch.empty(4 * hidden_size, layer_input))
                )
                self.register_parameter(
                    "weight_hh" + suffix, nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
                )
                if bias:
                    self.register_parameter(
                        "bias_ih" + suffix, nn.Parameter(torch.empty(4 * hidden_size))
                    )
                    self.register_parameter(
                        "bias_hh" + suffix, nn.Parameter(torch.empty(4 * hidden_size))
                    )
        _init_uniform(self, hidden_size)

    def _suffixes(self, layer: int) -> list[str]:
        suffixes = [f"_l{layer}"]
        if self.bidirectional:
            suffixes.append(f"_l{layer}_reverse")
        return suffixes

    def forward(self, x: torch.Tensor, state=None):
        num_states = self.num_layers * (2 if self.bidirectional else 1)
        H, dims = self.hidden_size, {}
        batched = not (isinstance(x, torch.Tensor) and x.dim() == 2)
        if batched:
            layout = (
                ("N", "T", self.input_size) if self.batch_first else ("T", "N", self.input_size)
            )
            check_tensor("x", x, layout, dims)
            if self.batch_first:
                x = x.transpose(0, 1)
        else:
            check_tensor("x", x, ("T", self.input_size), dims)
            x = x.unsqueeze(1)
        T, N = x.shape[0], x.shape[1]
        if T == 0:
            raise ValueError("x: expected at least one time step, got T=0")

        if state is None:
            h0 = c0 = x.new_zeros(num_states, N, H)
        else:
            h0, c0 = _unpack_pair("state", state)
            spec = (num_states, "N", H) if batched else (num_states, H)
            check_tensor("h0 (state[0])", h0, spec, dims)
            check_tensor("c0 (state[1])", c0, spec, dims)
            if not batched:
                h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)

        h_n, c_n = [], []
        layer_input = x  # (T, N, D) then (T, N, dirs*H)
        for layer in range(self.num_layers):
            outputs = []
            for direction, suffix in enumerate(self._suffixes(layer)):
                k = len(h_n)
                bias = None
                if self.bias:
                    bias = getattr(self, "bias_ih" + suffix) + getattr(self, "bias_hh" + suffix)
                # All time steps' input projections in one matmul.
                x_proj = F.linear(layer_input, getattr(self, "weight_ih" + suffix), bias)
                if direction == 1:
                    x_proj = x_proj.flip(0)
                h, c_last = _LSTMRecurrence.apply(
                    x_proj, h0[k], c0[k], getattr(self, "weight_hh" + suffix)
                )  # (T, N, H), (N, H)
                h_n.append(h[-1])
                c_n.append(c_last)
                outputs.append(h.flip(0) if direction == 1 else h)
            layer_input = torch.cat(outputs, dim=2) if len(outputs) == 2 else outputs[0]

        output = layer_input  # (T, N, dirs*H)
        h_n, c_n = torch.stack(h_n), torch.stack(c_n)  # (L*dirs, N, H)
        if not batched:
            return output.squeeze(1), (h_n.squeeze(1), c_n.squeeze(1))
        if self.batch_first:
            output = output.transpose(0, 1)
        return output, (h_n, c_n)

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
            f"bias={self.bias}, batch_first={self.batch_first}, "
            f"bidirectional={self.bidirectional}"
        )
