r"""ConvLSTM (Shi et al., 2015, "Convolutional LSTM Network: A Machine Learning Approach for
Precipitation Nowcasting") as PyTorch modules: a cell, a stack of cells, and the paper's
encoding-forecasting network.

A ConvLSTM is an LSTM whose inputs, hidden states and cell states are images ``(C, H, W)`` and
whose matrix products are convolutions, so each pixel's gates see a neighbourhood of the input and
of the previous hidden state. Equation (3) of the paper, with :math:`*` a convolution and
:math:`\circ` the Hadamard product:

.. math::
    \begin{array}{ll}
    i_t = \sigma(W_{xi} * X_t + W_{hi} * H_{t-1} + W_{ci} \circ C_{t-1} + b_i) \\
    f_t = \sigma(W_{xf} * X_t + W_{hf} * H_{t-1} + W_{cf} \circ C_{t-1} + b_f) \\
    C_t = f_t \circ C_{t-1} + i_t \circ \tanh(W_{xc} * X_t + W_{hc} * H_{t-1} + b_c) \\
    o_t = \sigma(W_{xo} * X_t + W_{ho} * H_{t-1} + W_{co} \circ C_t + b_o) \\
    H_t = o_t \circ \tanh(C_t)
    \end{array}

The four gates come from **one** convolution over the channel concatenation ``[X_t, H_{t-1}]``
with ``4 C_h`` output channels in the order i, f, g, o (``g`` is the candidate inside the
``tanh``), exactly as ``torch.nn.LSTM`` stacks its gate rows. Padding is "same" so that every state
keeps the frame size, as the paper requires ("zero-padding ... to ensure that the states have
the same number of rows and columns as the inputs").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from solutions._validate import check_positive_int
from solutions.modules import _unpack_pair, check_tensor

__all__ = ["ConvLSTM", "ConvLSTMCell", "EncoderForecaster"]


def _kernel_pair(name: str, kernel_size) -> tuple[int, int]:
    """``k`` or ``(kh, kw)`` -> ``(kh, kw)``, both positive integers."""
    if isinstance(kernel_size, (tuple, list)):
        if len(kernel_size) != 2:
            raise ValueError(f"{name}: expected an int or a pair (kh, kw), got {kernel_size!r}")
        return (check_positive_int(name, kernel_size[0]), check_positive_int(name, kernel_size[1]))
    k = check_positive_int(name, kernel_size)
    return (k, k)


class _SameConv2d(nn.Conv2d):
    """A stride-1 convolution whose output has the height and width of its input.

    An odd kernel ``k`` is padded by ``k // 2`` on both sides. An even kernel cannot be centred,
    so it is padded by ``(k - 1) // 2`` before and ``k // 2`` after (the extra row and column go
    to the bottom and right, as with ``padding="same"`` in PyTorch), with an explicit ``F.pad``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, bias: bool) -> None:
        kh, kw = kernel_size
        symmetric = kh % 2 == 1 and kw % 2 == 1
        super().__init__(
            in_channels,
            out_channels,
            (kh, kw),
            padding=(kh // 2, kw // 2) if symmetric else 0,
            bias=bias,
        )
        self.extra_pad = None if symmetric else ((kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.extra_pad is not None:
            x = F.pad(x, self.extra_pad)
        return super().forward(x)


class ConvLSTMCell(nn.Module):
    r"""One ConvLSTM step, equation (3) of Shi et al. (2015) (see the module docstring).

    Args:
        in_channels: ``C``, the channels of ``x``. ``0`` makes a cell without input, driven by its
            state alone, as the bottom layer of the paper's forecasting network; ``x`` is then a
            tensor with zero channels, ``(N, 0, H, W)``.
        hidden_channels: ``C_h``, the channels of ``h`` and ``c``.
        kernel_size: ``k`` or ``(kh, kw)``, the input-to-state kernel; odd or even (see below).
        bias: if ``False``, the gate convolution has no bias.
        peephole: if ``True``, the peephole terms :math:`W_{ci} \circ C_{t-1}`,
            :math:`W_{cf} \circ C_{t-1}` and :math:`W_{co} \circ C_t` are added.
        state_kernel_size: the state-to-state kernel; ``None`` means ``kernel_size``. The paper
            compares, for instance, 5x5 input-to-state with 1x1 state-to-state kernels. When the
            two differ the cell uses two convolutions, ``conv_x`` over ``x`` (with the bias) and
            ``conv_h`` over ``h``; otherwise one convolution ``conv`` over ``[x, h]``.

    **Peephole weights are per channel**, ``weight_ci``, ``weight_cf``, ``weight_co`` of shape
    ``(C_h, 1, 1)``, broadcast over the frame. In the paper they are per position, ``(C_h, H, W)``,
    which ties a trained cell to one frame size and multiplies the peephole parameters by
    ``H * W``; per-channel weights keep the cell fully convolutional (any frame size, as the
    convolutions allow) and are the common practical choice. They start at zero, so an untrained
    cell behaves like one without peepholes until training moves them.

    Padding is "same" for every kernel: odd kernels are centred; even kernels get the extra row
    and column of zeros at the bottom and right, so ``h`` and ``c`` always keep the frame size.

    Shapes (``state`` defaults to zeros):

    ======== =================== =====================
    argument shape               meaning
    ======== =================== =====================
    x        ``(N, C, H, W)``    input frame
    state    ``((N, C_h, H, W),  ``(h_prev, c_prev)``
             (N, C_h, H, W))``
    returns  ``((N, C_h, H, W),  ``(h_next, c_next)``
             (N, C_h, H, W))``
    ======== =================== =====================

    Parameters: ``conv.weight (4 C_h, C + C_h, kh, kw)`` and ``conv.bias (4 C_h,)`` with output
    channels in the order i, f, g, o and input channels ``x`` first (or ``conv_x`` and ``conv_h``,
    see ``state_kernel_size``); ``weight_ci``, ``weight_cf``, ``weight_co`` ``(C_h, 1, 1)`` if
    ``peephole``.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size,
        bias: bool = True,
        peephole: bool = True,
        state_kernel_size=None,
    ) -> None:
        super().__init__()
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 0:
            raise ValueError(f"in_channels: expected a non-negative integer, got {in_channels!r}")
        self.in_channels = in_channels
        self.hidden_channels = check_positive_int("hidden_channels", hidden_channels)
        self.kernel_size = _kernel_pair("kernel_size", kernel_size)
        self.state_kernel_size = (
            self.kernel_size
            if state_kernel_size is None
            else _kernel_pair("state_kernel_size", state_kernel_size)
        )
        self.peephole = bool(peephole)
        gates = 4 * hidden_channels
        if in_channels == 0 or self.state_kernel_size == self.kernel_size:
            # One convolution over [x, h]; with no input it is the state-to-state one.
            kernel = self.state_kernel_size if in_channels == 0 else self.kernel_size
            self.conv = _SameConv2d(in_channels + hidden_channels, gates, kernel, bias)
            self.conv_x = self.conv_h = None
        else:
            self.conv = None
            self.conv_x = _SameConv2d(in_channels, gates, self.kernel_size, bias)
            self.conv_h = _SameConv2d(hidden_channels, gates, self.state_kernel_size, False)
        if peephole:
            self.weight_ci = nn.Parameter(torch.zeros(hidden_channels, 1, 1))
            self.weight_cf = nn.Parameter(torch.zeros(hidden_channels, 1, 1))
            self.weight_co = nn.Parameter(torch.zeros(hidden_channels, 1, 1))

    def forward(self, x: torch.Tensor, state=None) -> tuple[torch.Tensor, torch.Tensor]:
        dims = {}
        check_tensor("x", x, ("N", self.in_channels, "H", "W"), dims)
        if state is None:
            h_prev = c_prev = x.new_zeros(x.shape[0], self.hidden_channels, *x.shape[2:])
        else:
            h_prev, c_prev = _unpack_pair("state", state)
            spec = ("N", self.hidden_channels, "H", "W")
            check_tensor("h_prev (state[0])", h_prev, spec, dims)
            check_tensor("c_prev (state[1])", c_prev, spec, dims)

        if self.conv is not None:
            stacked = h_prev if self.in_channels == 0 else torch.cat([x, h_prev], dim=1)
            gates = self.conv(stacked)  # (N, 4 C_h, H, W)
        else:
            gates = self.conv_x(x) + self.conv_h(h_prev)  # (N, 4 C_h, H, W)
        i, f, g, o = gates.chunk(4, dim=1)  # (N, C_h, H, W) each
        if self.peephole:
            i = i + self.weight_ci * c_prev
            f = f + self.weight_cf * c_prev
        c_next = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)  # (N, C_h, H, W)
        if self.peephole:
            o = o + self.weight_co * c_next  # the output gate peeks at the new cell state
        h_next = torch.sigmoid(o) * torch.tanh(c_next)  # (N, C_h, H, W)
        return h_next, c_next

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.hidden_channels}, kernel_size={self.kernel_size}, "
            f"state_kernel_size={self.state_kernel_size}, peephole={self.peephole}"
        )


def _per_layer(name: str, value, num_layers: int) -> list:
    """An int or a tuple applies to every layer; a list gives one entry per layer."""
    if isinstance(value, list):
        if len(value) != num_layers:
            raise ValueError(
                f"{name}: a list gives one kernel size per layer, expected {num_layers} entries "
                f"(one per hidden_channels entry), got {len(value)}"
            )
        return value
    return [value] * num_layers


def _channel_list(hidden_channels) -> list[int]:
    if isinstance(hidden_channels, int):
        hidden_channels = [hidden_channels]
    if not isinstance(hidden_channels, (list, tuple)) or len(hidden_channels) == 0:
        raise ValueError(
            f"hidden_channels: expected a non-empty list of positive integers, one per layer, "
            f"got {hidden_channels!r}"
        )
    return [check_positive_int(f"hidden_channels[{k}]", c) for k, c in enumerate(hidden_channels)]


class ConvLSTM(nn.Module):
    r"""A stack of :class:`ConvLSTMCell` run over a sequence of frames.

    Layer ``l`` reads the hidden states of layer ``l - 1`` (layer 0 reads ``x``) and its own
    previous state, as in equation (3) of Shi et al. (2015).

    Args:
        in_channels: ``C``, the channels of the input frames (``0``: no input, see
            :class:`ConvLSTMCell`).
        hidden_channels: one entry per layer, ``[C_1, ..., C_L]`` (an int means one layer).
        kernel_size: an int or a tuple ``(kh, kw)`` for every layer, or a **list** with one int or
            ``(kh, kw)`` per layer.
        bias, peephole: as in :class:`ConvLSTMCell`, for every layer.
        state_kernel_size: the state-to-state kernel, given like ``kernel_size``; ``None`` means
            the same as ``kernel_size`` in every layer.

    Shapes:

    ========== ====================== ==========================================
    argument   shape                  meaning
    ========== ====================== ==========================================
    x          ``(N, T, C, H, W)``    input frames, batch first
    state      list of L pairs        initial ``(h, c)`` of each layer, each
               ``(N, C_l, H, W)``     ``(N, C_l, H, W)``; zeros if not given
    outputs    ``(N, T, C_L, H, W)``  hidden states of the last layer
    states     list of L pairs        final ``(h, c)`` of each layer
    ========== ====================== ==========================================

    Parameters: ``cells.{l}.*``, those of :class:`ConvLSTMCell` for layer ``l``.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels,
        kernel_size,
        bias: bool = True,
        peephole: bool = True,
        state_kernel_size=None,
    ) -> None:
        super().__init__()
        self.hidden_channels = _channel_list(hidden_channels)
        num_layers = len(self.hidden_channels)
        kernels = _per_layer("kernel_size", kernel_size, num_layers)
        state_kernels = _per_layer("state_kernel_size", state_kernel_size, num_layers)
        self.in_channels = in_channels
        self.cells = nn.ModuleList()
        layer_in = in_channels
        for channels, kernel, state_kernel in zip(
            self.hidden_channels, kernels, state_kernels, strict=True
        ):
            self.cells.append(
                ConvLSTMCell(layer_in, channels, kernel, bias, peephole, state_kernel)
            )
            layer_in = channels

    def forward(self, x: torch.Tensor, state=None):
        check_tensor("x", x, ("N", "T", self.in_channels, "H", "W"), {})
        if x.shape[1] == 0:
            raise ValueError("x: expected at least one time step, got T=0")
        if state is not None and (
            not isinstance(state, (list, tuple)) or len(state) != len(self.cells)
        ):
            raise ValueError(
                f"state: expected a list of {len(self.cells)} (h, c) pairs, one per layer, "
                f"or None, got {type(state).__name__}"
                + (f" of length {len(state)}" if isinstance(state, (list, tuple)) else "")
            )
        states = []
        layer_input = x  # (N, T, C, H, W) then (N, T, C_l, H, W)
        for layer, cell in enumerate(self.cells):
            layer_state = None if state is None else state[layer]
            hidden = []
            for t in range(x.shape[1]):
                layer_state = cell(layer_input[:, t], layer_state)
                hidden.append(layer_state[0])
            layer_input = torch.stack(hidden, dim=1)  # (N, T, C_l, H, W)
            states.append(layer_state)
        return layer_input, states


class EncoderForecaster(nn.Module):
    r"""The encoding-forecasting network of Shi et al. (2015), section 3.3 and figure 3.

    The **encoder**, a :class:`ConvLSTM` stack, reads the ``T`` past frames. The **forecaster**, a
    stack with the same hidden channels, starts from the encoder's final states (layer ``l``
    from encoder layer ``l``) and runs ``K`` steps without input: its bottom layer is driven by its
    state alone (``in_channels = 0``), each layer above reads the hidden state of the layer
    below. At every future step the hidden states of **all** forecaster layers are concatenated
    and a 1x1 convolution gives the frame's logits:

    .. math::
        \hat{X}_{T+k} = \sigma\big(W_{1\times1} * [H^{(1)}_{T+k}, \dots, H^{(L)}_{T+k}] + b\big),
        \quad k = 1, \dots, K.

    ``forward`` returns the logits, before the sigmoid: train with
    ``F.binary_cross_entropy_with_logits`` (the paper's cross-entropy loss for pixel intensities in
    [0, 1]) and apply ``torch.sigmoid`` for predicted frames.

    As in the paper, frames can be cut into ``patch_size x patch_size`` patches stacked as channels
    before the network (64x64x1 frames with 4x4 patches become 16x16x16 tensors), which makes the
    ConvLSTMs ``patch_size**2`` times cheaper; the output is reassembled to full frames.

    Args (keywords recommended):
        in_channels: ``C``, channels of each input frame.
        hidden_channels: one entry per layer of the encoder and of the forecaster, e.g.
            ``[64, 64]``.
        kernel_size: input-to-state kernel, as in :class:`ConvLSTM` (default 5, the paper's).
        state_kernel_size: state-to-state kernel, as in :class:`ConvLSTM`; ``None``: as
            ``kernel_size``.
        out_channels: channels of each predicted frame; ``None`` means ``in_channels``.
        future_steps: ``K``, frames predicted when ``forward`` is not told otherwise.
        patch_size: side of the square patches (1: none); ``H`` and ``W`` must be multiples.
        bias, peephole: as in :class:`ConvLSTMCell`, for every cell.

    Shapes:

    ============ ============================ ========================================
    argument     shape                        meaning
    ============ ============================ ========================================
    x            ``(N, T, C, H, W)``          past frames
    future_steps int or ``None``              ``K``; ``None``: the constructor's value
    returns      ``(N, K, C_out, H, W)``      logits of the next ``K`` frames
    ============ ============================ ========================================

    Example: Moving MNIST as in the paper (64x64 frames, 10 in, 10 out, 4x4 patches)::

        model = EncoderForecaster(in_channels=1, hidden_channels=[64, 64], kernel_size=5,
                                  future_steps=10, patch_size=4)
        logits = model(past)  # past (N, 10, 1, 64, 64) -> logits (N, 10, 1, 64, 64)
        loss = F.binary_cross_entropy_with_logits(logits, future)
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels,
        kernel_size=5,
        state_kernel_size=None,
        out_channels: int | None = None,
        future_steps: int = 10,
        patch_size: int = 1,
        bias: bool = True,
        peephole: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int(
            "out_channels", in_channels if out_channels is None else out_channels
        )
        self.future_steps = check_positive_int("future_steps", future_steps)
        self.patch_size = check_positive_int("patch_size", patch_size)
        hidden_channels = _channel_list(hidden_channels)
        area = self.patch_size**2
        self.encoder = ConvLSTM(
            in_channels * area, hidden_channels, kernel_size, bias, peephole, state_kernel_size
        )
        self.forecaster = ConvLSTM(
            0, hidden_channels, kernel_size, bias, peephole, state_kernel_size
        )
        self.head = nn.Conv2d(sum(hidden_channels), self.out_channels * area, kernel_size=1)

    def forward(self, x: torch.Tensor, future_steps: int | None = None) -> torch.Tensor:
        dims = {}
        check_tensor("x", x, ("N", "T", self.in_channels, "H", "W"), dims)
        steps = self.future_steps if future_steps is None else future_steps
        steps = check_positive_int("future_steps", steps)
        p = self.patch_size
        if dims["H"] % p or dims["W"] % p:
            raise ValueError(
                f"x: frame height and width must be multiples of patch_size={p}, got shape "
                f"{tuple(x.shape)} (N, T, C, H, W)"
            )
        N, T = x.shape[:2]
        patches = F.pixel_unshuffle(x.flatten(0, 1), p)  # (N T, C p², H/p, W/p)
        patches = patches.unflatten(0, (N, T))  # (N, T, C p², H/p, W/p)
        _, states = self.encoder(patches)

        no_input = patches.new_zeros(N, 0, *patches.shape[3:])  # (N, 0, H/p, W/p)
        logits = []
        for _ in range(steps):
            layer_input, hidden = no_input, []
            for layer, cell in enumerate(self.forecaster.cells):
                states[layer] = cell(layer_input, states[layer])
                layer_input = states[layer][0]
                hidden.append(layer_input)
            logits.append(self.head(torch.cat(hidden, dim=1)))  # (N, C_out p², H/p, W/p)
        logits = torch.stack(logits, dim=1)  # (N, K, C_out p², H/p, W/p)
        return F.pixel_shuffle(logits.flatten(0, 1), p).unflatten(0, (N, steps))
