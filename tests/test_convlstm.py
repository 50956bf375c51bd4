"""ConvLSTMCell, ConvLSTM and EncoderForecaster (solutions/convlstm.py).

Comparisons with torch.nn.LSTMCell are in float64 with ``ATOL = 1e-12``: the same arithmetic in a
different order differs by a few ulps, a wrong weight mapping or gate by far more.
``torch.autograd.gradcheck`` uses its own float64 finite differences and tolerances.
"""

import pytest
import torch
import torch.nn.functional as F

from solutions.convlstm import ConvLSTM, ConvLSTMCell, EncoderForecaster

ATOL = 1e-12


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _copy_lstm_cell_into_conv(cell: ConvLSTMCell, lstm: torch.nn.LSTMCell) -> None:
    """A 1x1 convolution over [x, h] is the matrix [W_ih | W_hh] applied at each pixel."""
    D = lstm.input_size
    with torch.no_grad():
        cell.conv.weight[:, :D, 0, 0] = lstm.weight_ih  # (4H, D): input channels come first
        cell.conv.weight[:, D:, 0, 0] = lstm.weight_hh  # (4H, H)
        cell.conv.bias.copy_(lstm.bias_ih + lstm.bias_hh)


def test_1x1_convlstm_cell_without_peepholes_is_an_lstm_cell():
    torch.manual_seed(0)
    lstm = torch.nn.LSTMCell(3, 4).double()
    cell = ConvLSTMCell(3, 4, kernel_size=1, peephole=False).double()
    _copy_lstm_cell_into_conv(cell, lstm)
    x, h, c = (_randn(*s, seed=k).requires_grad_() for k, s in enumerate([(2, 3), (2, 4), (2, 4)]))

    h_conv, c_conv = cell(x[:, :, None, None], (h[:, :, None, None], c[:, :, None, None]))
    h_lstm, c_lstm = lstm(x, (h, c))
    torch.testing.assert_close(h_conv[:, :, 0, 0], h_lstm, atol=ATOL, rtol=0)
    torch.testing.assert_close(c_conv[:, :, 0, 0], c_lstm, atol=ATOL, rtol=0)

    upstream = _randn(2, 4, seed=9)
    grads_conv = torch.autograd.grad(
        (h_conv[:, :, 0, 0] * upstream + c_conv[:, :, 0, 0]).sum(), (x, h, c)
    )
    grads_lstm = torch.autograd.grad((h_lstm * upstream + c_lstm).sum(), (x, h, c))
    for name, a, b in zip("xhc", grads_conv, grads_lstm, strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0, msg=lambda m, n=name: f"d{n}: {m}")


def test_peepholes_follow_shi_equation_3():
    """With a 1x1 kernel on a 1x1 frame the cell is an LSTM cell plus the three peephole terms."""
    torch.manual_seed(0)
    lstm = torch.nn.LSTMCell(3, 4).double()
    cell = ConvLSTMCell(3, 4, kernel_size=1, peephole=True).double()
    _copy_lstm_cell_into_conv(cell, lstm)
    w_ci, w_cf, w_co = _randn(4, seed=1), _randn(4, seed=2), _randn(4, seed=3)
    with torch.no_grad():
        for weight, value in [
            (cell.weight_ci, w_ci),
            (cell.weight_cf, w_cf),
            (cell.weight_co, w_co),
        ]:
            weight.copy_(value[:, None, None])
    x, h, c = _randn(2, 3, seed=4), _randn(2, 4, seed=5), _randn(2, 4, seed=6)

    i, f, g, o = (x @ lstm.weight_ih.T + lstm.bias_ih + h @ lstm.weight_hh.T + lstm.bias_hh).chunk(
        4, 1
    )
    c_next = torch.sigmoid(f + w_cf * c) * c + torch.sigmoid(i + w_ci * c) * torch.tanh(g)
    h_next = torch.sigmoid(o + w_co * c_next) * torch.tanh(c_next)

    h_cell, c_cell = cell(x[:, :, None, None], (h[:, :, None, None], c[:, :, None, None]))
    torch.testing.assert_close(c_cell[:, :, 0, 0], c_next, atol=ATOL, rtol=0)
    torch.testing.assert_close(h_cell[:, :, 0, 0], h_next, atol=ATOL, rtol=0)


@pytest.mark.parametrize("state_kernel_size", [None, 1])
def test_convlstm_cell_with_peepholes_passes_gradcheck(state_kernel_size):
    """Gradients wrt x, h, c and every parameter (peephole weights made non-zero) on a 3x4 frame."""
    torch.manual_seed(0)
    cell = ConvLSTMCell(2, 2, kernel_size=(3, 2), state_kernel_size=state_kernel_size).double()
    with torch.no_grad():
        for name in ("weight_ci", "weight_cf", "weight_co"):
            getattr(cell, name).normal_()
    names = [n for n, _ in cell.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in cell.parameters()]
    inputs = [_randn(*s, seed=k).requires_grad_() for k, s in enumerate([(1, 2, 3, 4)] * 3)]

    def run(x, h, c, *weights):
        return torch.func.functional_call(cell, dict(zip(names, weights, strict=True)), (x, (h, c)))

    assert torch.autograd.gradcheck(run, (*inputs, *params))


@pytest.mark.parametrize("kernel_size", [1, 3, 5, 2, 4, (2, 3), (5, 4)])
def test_same_padding_keeps_non_square_frames_for_odd_and_even_kernels(kernel_size):
    cell = ConvLSTMCell(2, 3, kernel_size).double()
    h, c = cell(_randn(2, 2, 5, 7))
    assert h.shape == c.shape == (2, 3, 5, 7)
    # The padding is PyTorch's padding="same": even kernels put the extra zeros bottom/right.
    x_h = _randn(2, 5, 5, 7, seed=1)
    expected = F.conv2d(
        F.pad(x_h, _torch_same_pad(cell.kernel_size)), cell.conv.weight, cell.conv.bias
    )
    torch.testing.assert_close(cell.conv(x_h), expected, atol=ATOL, rtol=0)


def _torch_same_pad(kernel_size):
    """The padding that torch's padding="same" applies: total k-1, the smaller half first."""
    kh, kw = kernel_size
    return ((kw - 1) // 2, kw - 1 - (kw - 1) // 2, (kh - 1) // 2, kh - 1 - (kh - 1) // 2)


def test_state_kernel_size_sets_the_state_to_state_receptive_field():
    """With a 1x1 state kernel, h_next at a pixel depends on h_prev at that pixel only."""
    torch.manual_seed(0)
    x = _randn(1, 2, 5, 5)
    for state_kernel_size, expected_reach in [(1, 1), (3, 9)]:
        cell = ConvLSTMCell(2, 3, kernel_size=5, state_kernel_size=state_kernel_size).double()
        h = _randn(1, 3, 5, 5, seed=1).requires_grad_()
        h_next, _ = cell(x, (h, torch.zeros_like(h)))
        (grad,) = torch.autograd.grad(h_next[0, 0, 2, 2], h)
        assert int((grad.abs().sum(dim=1) > 0).sum()) == expected_reach


def test_convlstm_stack_shapes_and_per_layer_kernels():
    torch.manual_seed(0)
    model = ConvLSTM(3, [4, 5, 2], kernel_size=[3, (2, 4), 1], peephole=False)
    x = torch.randn(2, 6, 3, 7, 9)
    outputs, states = model(x)
    assert outputs.shape == (2, 6, 2, 7, 9)
    assert [tuple(h.shape) for h, _ in states] == [(2, c, 7, 9) for c in (4, 5, 2)]
    assert [tuple(c.shape) for _, c in states] == [(2, c, 7, 9) for c in (4, 5, 2)]
    assert [cell.kernel_size for cell in model.cells] == [(3, 3), (2, 4), (1, 1)]
    # The last output is the last layer's final hidden state.
    torch.testing.assert_close(outputs[:, -1], states[-1][0])


def test_convlstm_resumes_from_a_given_state():
    """Running 2 + 3 steps with the state carried over equals running 5 steps at once."""
    torch.manual_seed(0)
    model = ConvLSTM(2, [3, 3], kernel_size=3).double()
    x = _randn(1, 5, 2, 4, 6)
    whole, whole_states = model(x)
    first, states = model(x[:, :2])
    second, final_states = model(x[:, 2:], states)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole, atol=ATOL, rtol=0)
    for (h_a, c_a), (h_b, c_b) in zip(final_states, whole_states, strict=True):
        torch.testing.assert_close(h_a, h_b, atol=ATOL, rtol=0)
        torch.testing.assert_close(c_a, c_b, atol=ATOL, rtol=0)


def test_encoder_forecaster_output_shape_and_gradcheck():
    torch.manual_seed(0)
    model = EncoderForecaster(
        in_channels=1,
        hidden_channels=[2, 3],
        kernel_size=3,
        state_kernel_size=1,
        out_channels=2,
        future_steps=2,
        patch_size=2,
    ).double()
    x = _randn(1, 2, 1, 4, 6).requires_grad_()
    assert model(x).shape == (1, 2, 2, 4, 6)
    assert model(x, future_steps=3).shape == (1, 3, 2, 4, 6)
    # fast_mode compares random projections of the Jacobian: one backward pass instead of one
    # per output element, and a wrong gradient still fails with probability ~1.
    assert torch.autograd.gradcheck(model, (x,), fast_mode=True)


def test_encoder_forecaster_prediction_depends_on_the_past_frames():
    """The forecaster has no input, so the encoder's states are its only source of information."""
    torch.manual_seed(0)
    model = EncoderForecaster(in_channels=1, hidden_channels=[4], kernel_size=3, future_steps=3)
    x = torch.rand(2, 4, 1, 8, 8)
    logits = model(x)
    logits.sum().backward()
    assert not torch.allclose(logits[0], logits[1])
    assert all(p.grad.abs().sum() > 0 for p in model.encoder.parameters())


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda: ConvLSTMCell(2, 3, 3)(torch.randn(1, 2, 5)),
            ValueError,
            r"x: expected 4 dimensions \(N, 2, H, W\)",
        ),
        (
            lambda: ConvLSTMCell(2, 3, 3)(torch.randn(1, 4, 5, 5)),
            ValueError,
            r"x: expected shape \(N, 2, H, W\).*axis 1 is 4",
        ),
        (
            lambda: ConvLSTMCell(2, 3, 3)(torch.randn(1, 2, 5, 5), (torch.zeros(1, 3, 5, 4),) * 2),
            ValueError,
            r"h_prev \(state\[0\]\).*axis 3 is 4, expected 5",
        ),
        (
            lambda: ConvLSTMCell(2, 3, 3)(torch.randn(1, 2, 5, 5), torch.zeros(1, 3, 5, 5)),
            TypeError,
            r"state: expected a pair \(h, c\)",
        ),
        (lambda: ConvLSTMCell(2, 3, 0), ValueError, r"kernel_size: expected a positive integer"),
        (
            lambda: ConvLSTMCell(2, 3, (3, 3, 3)),
            ValueError,
            r"kernel_size: expected an int or a pair",
        ),
        (
            lambda: ConvLSTM(2, [3, 3], kernel_size=[3]),
            ValueError,
            r"kernel_size: a list gives one kernel size per layer, expected 2 entries",
        ),
        (
            lambda: ConvLSTM(2, [], kernel_size=3),
            ValueError,
            r"hidden_channels: expected a non-empty",
        ),
        (
            lambda: ConvLSTM(2, [3], kernel_size=3)(torch.randn(1, 4, 2, 5)),
            ValueError,
            r"x: expected 5 dimensions \(N, T, 2, H, W\)",
        ),
        (
            lambda: ConvLSTM(2, [3], kernel_size=3)(torch.randn(1, 4, 2, 5, 5), []),
            ValueError,
            r"state: expected a list of 1 \(h, c\) pairs",
        ),
        (
            lambda: EncoderForecaster(1, [2], patch_size=4)(torch.randn(1, 2, 1, 8, 6)),
            ValueError,
            r"multiples of patch_size=4",
        ),
    ],
)
def test_bad_input_raises_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()
