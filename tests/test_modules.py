"""The PyTorch reference modules against torch.nn.LSTMCell, GRUCell and LSTM.

Each test loads the PyTorch module's state_dict into ours and compares outputs and gradients in
float64. Both sides compute the same arithmetic in a different order, so they agree to a few
ulps; ``ATOL = 1e-10`` leaves room for the accumulation over time steps and layers while any
wrong gate, index or sign gives errors of order 1e-2 or more.
"""

import pytest
import torch

from solutions.modules import LSTM, GRUCell, LSTMCell

ATOL = 1e-10


def _gradients(outputs, inputs, seed=0):
    """Gradients of a random linear functional of ``outputs``, so every output element matters."""
    gen = torch.Generator().manual_seed(seed)
    loss = sum(
        (out * torch.randn(out.shape, generator=gen, dtype=out.dtype)).sum() for out in outputs
    )
    return torch.autograd.grad(loss, inputs)


def _leaves(*tensors):
    return [t.detach().clone().requires_grad_() for t in tensors]


def _assert_close_all(ours, theirs, names):
    for name, a, b in zip(names, ours, theirs, strict=True):
        assert a.shape == b.shape, name
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0, msg=lambda m, n=name: f"{n}: {m}")


def _pair(ours_cls, torch_cls, *args, **kwargs):
    torch.manual_seed(0)
    theirs = torch_cls(*args, **kwargs).double()
    ours = ours_cls(*args, **kwargs).double()
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


@pytest.mark.parametrize("given_state", [False, True])
def test_lstm_cell_matches_torch_outputs_and_gradients(given_state):
    ours, theirs = _pair(LSTMCell, torch.nn.LSTMCell, 5, 7)
    gen = torch.Generator().manual_seed(1)
    x, h, c = _leaves(
        *(torch.randn(s, generator=gen, dtype=torch.float64) for s in [(3, 5), (3, 7), (3, 7)])
    )
    state = (h, c) if given_state else None
    inputs = [x, h, c] if given_state else [x]
    names = ["x", "h", "c"][: len(inputs)] + [n for n, _ in ours.named_parameters()]
    out_ours = ours(x, state)
    out_theirs = theirs(x, state)
    _assert_close_all(out_ours, out_theirs, ["h_next", "c_next"])
    _assert_close_all(
        _gradients(out_ours, inputs + list(ours.parameters())),
        _gradients(out_theirs, inputs + list(theirs.parameters())),
        names,
    )


@pytest.mark.parametrize("given_state", [False, True])
def test_gru_cell_matches_torch_outputs_and_gradients(given_state):
    ours, theirs = _pair(GRUCell, torch.nn.GRUCell, 5, 7)
    gen = torch.Generator().manual_seed(1)
    x, h = _leaves(
        torch.randn(3, 5, generator=gen, dtype=torch.float64),
        torch.randn(3, 7, generator=gen, dtype=torch.float64),
    )
    h_arg = h if given_state else None
    inputs = [x, h] if given_state else [x]
    names = ["x", "h"][: len(inputs)] + [n for n, _ in ours.named_parameters()]
    out_ours, out_theirs = ours(x, h_arg), theirs(x, h_arg)
    _assert_close_all([out_ours], [out_theirs], ["h_next"])
    _assert_close_all(
        _gradients([out_ours], inputs + list(ours.parameters())),
        _gradients([out_theirs], inputs + list(theirs.parameters())),
        names,
    )


def test_cells_accept_unbatched_input_like_torch():
    lstm, lstm_torch = _pair(LSTMCell, torch.nn.LSTMCell, 4, 3, bias=False)
    gru, gru_torch = _pair(GRUCell, torch.nn.GRUCell, 4, 3, bias=False)
    x, h, c = (torch.randn(n, dtype=torch.float64) for n in (4, 3, 3))
    _assert_close_all(lstm(x, (h, c)), lstm_torch(x, (h, c)), ["h_next", "c_next"])
    _assert_close_all([gru(x, h)], [gru_torch(x, h)], ["h_next"])


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("given_state", [False, True])
def test_lstm_matches_torch_outputs_and_gradients(batch_first, given_state):
    """Two bidirectional layers: every parameter, the input and the initial states."""
    ours, theirs = _pair(
        LSTM, torch.nn.LSTM, 3, 4, num_layers=2, bidirectional=True, batch_first=batch_first
    )
    gen = torch.Generator().manual_seed(2)
    T, N = 6, 2
    x_shape = (N, T, 3) if batch_first else (T, N, 3)
    x, h0, c0 = _leaves(
        *(
            torch.randn(s, generator=gen, dtype=torch.float64)
            for s in [x_shape, (4, N, 4), (4, N, 4)]
        )
    )
    state = (h0, c0) if given_state else None
    inputs = [x, h0, c0] if given_state else [x]
    names = ["x", "h0", "c0"][: len(inputs)] + [n for n, _ in ours.named_parameters()]

    out_ours, (h_ours, c_ours) = ours(x, state)
    out_theirs, (h_theirs, c_theirs) = theirs(x, state)
    _assert_close_all(
        [out_ours, h_ours, c_ours], [out_theirs, h_theirs, c_theirs], ["output", "h_n", "c_n"]
    )
    _assert_close_all(
        _gradients([out_ours, h_ours, c_ours], inputs + list(ours.parameters())),
        _gradients([out_theirs, h_theirs, c_theirs], inputs + list(theirs.parameters())),
        names,
    )


def test_lstm_without_bias_and_unbatched_input_matches_torch():
    ours, theirs = _pair(LSTM, torch.nn.LSTM, 3, 4, num_layers=2, bias=False)
    x, h0, c0 = _leaves(*(torch.randn(s, dtype=torch.float64) for s in [(5, 3), (2, 4), (2, 4)]))
    out_ours = ours(x, (h0, c0))
    out_theirs = theirs(x, (h0, c0))
    flat_ours = [out_ours[0], *out_ours[1]]
    flat_theirs = [out_theirs[0], *out_theirs[1]]
    _assert_close_all(flat_ours, flat_theirs, ["output", "h_n", "c_n"])
    _assert_close_all(
        _gradients(flat_ours, [x, h0, c0]), _gradients(flat_theirs, [x, h0, c0]), ["x", "h0", "c0"]
    )


def test_lstm_parameters_have_torch_names_shapes_and_init_range():
    ours = LSTM(3, 16, num_layers=2, bidirectional=True)
    theirs = torch.nn.LSTM(3, 16, num_layers=2, bidirectional=True)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()
    }
    bound = 1 / 16**0.5
    for name, p in ours.named_parameters():
        assert p.abs().max() <= bound, name
        assert p.abs().max() > 0.5 * bound, name  # really drawn from U(-bound, bound), not zeros


def test_lstm_recurrence_passes_gradcheck():
    """The hand-written BPTT backward against finite differences, independent of torch.nn.LSTM."""
    torch.manual_seed(3)
    lstm = LSTM(2, 3, bidirectional=True).double()
    x, h0, c0 = _leaves(
        *(torch.randn(s, dtype=torch.float64) for s in [(4, 2, 2), (2, 2, 3), (2, 2, 3)])
    )
    params = list(lstm.parameters())
    names = [n for n, _ in lstm.named_parameters()]

    def run(x, h0, c0, *weights):
        out, (h_n, c_n) = torch.func.functional_call(
            lstm, dict(zip(names, weights, strict=True)), (x, (h0, c0))
        )
        return out, h_n, c_n

    assert torch.autograd.gradcheck(run, (x, h0, c0, *_leaves(*params)))


def test_lstm_follows_dtype_and_runs_under_autocast():
    lstm = LSTM(3, 4, num_layers=2)
    x = torch.randn(5, 2, 3)
    assert lstm.double()(x.double())[0].dtype == torch.float64
    lstm.float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, (h_n, c_n) = lstm(x)
    (out.float().sum() + c_n.float().sum()).backward()
    assert out.dtype == torch.bfloat16
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in lstm.parameters())


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m: m(torch.randn(5, 2)), r"x: expected shape \(T, 3\)"),
        (lambda m: m(torch.randn(5, 2, 4)), r"x: expected shape \(T, N, 3\).*axis 2 is 4"),
        (lambda m: m(torch.randn(1, 5, 2, 3)), r"x: expected 3 dimensions \(T, N, 3\)"),
        (lambda m: m(torch.randn(0, 2, 3)), r"x: expected at least one time step"),
        (
            lambda m: m(torch.randn(5, 2, 3), (torch.zeros(1, 2, 4), torch.zeros(2, 2, 4))),
            r"h0 \(state\[0\]\): expected shape \(2, N, 4\)",
        ),
        (
            lambda m: m(torch.randn(5, 2, 3), (torch.zeros(2, 3, 4), torch.zeros(2, 3, 4))),
            r"h0 \(state\[0\]\).*axis 1 is 3, expected 2",
        ),
        (
            lambda m: m(torch.randn(5, 2, 3), (torch.zeros(2, 2, 4), torch.zeros(2, 2, 5))),
            r"c0 \(state\[1\]\)",
        ),
    ],
)
def test_lstm_rejects_bad_shapes_with_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call(LSTM(3, 4, num_layers=2))


def test_lstm_rejects_a_state_that_is_not_a_pair():
    with pytest.raises(TypeError, match=r"state: expected a pair \(h, c\)"):
        LSTM(3, 4)(torch.randn(5, 2, 3), torch.zeros(1, 2, 4))


def test_cells_reject_bad_shapes_with_clear_errors():
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 3\).*axis 1 is 2"):
        LSTMCell(3, 4)(torch.randn(5, 2))
    with pytest.raises(ValueError, match=r"h_prev \(state\[0\]\): expected shape \(N, 4\)"):
        LSTMCell(3, 4)(torch.randn(5, 3), (torch.zeros(5, 3), torch.zeros(5, 4)))
    with pytest.raises(ValueError, match=r"h: expected shape \(N, 4\).*axis 0 is 6, expected 5"):
        GRUCell(3, 4)(torch.randn(5, 3), torch.zeros(6, 4))
    with pytest.raises(TypeError, match=r"x: expected a floating-point tensor"):
        GRUCell(3, 4)(torch.ones(5, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"hidden_size: expected a positive integer"):
        LSTM(3, 0)
