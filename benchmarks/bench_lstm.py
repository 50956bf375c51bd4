"""LSTM forward+backward: the reference module and the numpy layer against torch.nn.LSTM.

Usage: ``python benchmarks/bench_lstm.py [--repeats 7] [--warmup 2] [--compile-cell]``

One layer, T=100, N=64, D=128, H=256, float32, one thread for every library. Each measurement is
a forward pass and a backward pass of the gradient of ``output`` (a fixed random upstream
gradient); the script prints the median time of each candidate and its ratio to
``torch.nn.LSTM`` measured in the same run. The goal for ``solutions.modules.LSTM`` is a ratio of
at most 1.5.

``--compile-cell`` also times the per-step gate arithmetic eagerly and under ``torch.compile``,
the measurement behind the decision not to compile the module (compiling takes tens of seconds).
"""

import os

# One thread everywhere, set before numpy loads its BLAS: the comparison is per core.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from solutions.modules import LSTM  # noqa: E402

T, N, D, H = 100, 64, 128, 256


def median_times(steps: dict, repeats: int, warmup: int) -> dict:
    """Median wall time in seconds of each ``steps[name]()`` over ``repeats`` runs after
    ``warmup`` runs. The candidates take turns, so a change in the machine's load (it is shared)
    affects all of them alike instead of skewing the ratios."""
    times = {name: [] for name in steps}
    for k in range(warmup + repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            if k >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def torch_step(module, x, dout):
    def step():
        module.zero_grad(set_to_none=True)
        x.grad = None
        output, _ = module(x)
        output.backward(dout)

    return step


def autograd_loop_step(reference, x, dout):
    """The same fused math as solutions.modules.LSTM, but the time loop is left to autograd."""
    w_ih, w_hh = reference.weight_ih_l0, reference.weight_hh_l0
    bias = [reference.bias_ih_l0, reference.bias_hh_l0]

    def step():
        reference.zero_grad(set_to_none=True)
        x_proj = torch.nn.functional.linear(x, w_ih, bias[0] + bias[1])  # (T, N, 4H)
        h = c = x.new_zeros(N, H)
        hidden = []
        for t in range(T):
            i, f, g, o = torch.addmm(x_proj[t], h, w_hh.t()).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            hidden.append(h)
        torch.stack(hidden).backward(dout)

    return step


def numpy_step(reference, x, dout):
    """The course's numpy layer with the weights of ``reference`` (batch first, ``Wx = W_ih^T``)."""
    from solutions.lstm import lstm_backward, lstm_forward

    Wx = reference.weight_ih_l0.detach().numpy().T.copy()  # (D, 4H)
    Wh = reference.weight_hh_l0.detach().numpy().T.copy()  # (H, 4H)
    b = (reference.bias_ih_l0 + reference.bias_hh_l0).detach().numpy()  # (4H,)
    x_np = x.detach().numpy().transpose(1, 0, 2).copy()  # (N, T, D)
    dout_np = dout.numpy().transpose(1, 0, 2).copy()  # (N, T, H)
    h0 = np.zeros((N, H), dtype=np.float32)
    c0 = np.zeros((N, H), dtype=np.float32)

    def step():
        _, cache = lstm_forward(x_np, h0, c0, Wx, Wh, b)
        lstm_backward(dout_np, cache)

    return step


def compile_cell_comparison(repeats: int) -> None:
    """Per-step gate arithmetic (N, 4H) -> (h, c), eager against torch.compile."""

    def cell(gates, c_prev):
        i, f, g, o = gates.chunk(4, dim=1)
        c_next = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c_next), c_next

    gates, c_prev = torch.randn(N, 4 * H), torch.randn(N, H)
    start = time.perf_counter()
    try:
        compiled = torch.compile(cell, dynamic=False)
        compiled(gates, c_prev)
    except Exception as error:  # any backend failure means "not available here"
        print(f"torch.compile unavailable: {type(error).__name__}: {error}")
        return
    print(f"torch.compile of the gate arithmetic took {time.perf_counter() - start:.1f} s")
    steps = {
        name: lambda fn=fn: [fn(gates, c_prev) for _ in range(200)]
        for name, fn in [("eager", cell), ("torch.compile", compiled)]
    }
    for name, seconds in median_times(steps, repeats, 1).items():
        print(f"  gate arithmetic, {name:>13}: {seconds / 200 * 1e6:7.1f} us per step")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per candidate (7)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first (2)")
    parser.add_argument(
        "--compile-cell", action="store_true", help="also time torch.compile of the gate math"
    )
    args = parser.parse_args()
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")

    torch.set_num_threads(1)
    torch.manual_seed(0)
    reference = torch.nn.LSTM(D, H)
    ours = LSTM(D, H)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(T, N, D, requires_grad=True)  # (T, N, D)
    dout = torch.randn(T, N, H)  # (T, N, H)

    print(
        f"LSTM forward+backward, T={T} N={N} D={D} H={H}, float32, 1 thread, "
        f"median of {args.repeats} after {args.warmup} warm-up runs"
    )
    steps = {
        "torch.nn.LSTM": torch_step(reference, x, dout),
        "solutions.modules.LSTM": torch_step(ours, x, dout),
        "same math, autograd loop": autograd_loop_step(reference, x, dout),
    }
    try:
        steps["numpy lstm_forward/backward"] = numpy_step(reference, x, dout)
    except ImportError as error:
        print(f"  (numpy lstm_forward/backward skipped: solutions.lstm not importable: {error})")
    medians = median_times(steps, args.repeats, args.warmup)
    base = medians["torch.nn.LSTM"]
    for name, seconds in medians.items():
        goal = "  (goal <= 1.5x)" if name == "solutions.modules.LSTM" else ""
        print(f"  {name:<28} {seconds * 1e3:8.1f} ms {seconds / base:6.2f}x{goal}")

    if args.compile_cell:
        compile_cell_comparison(args.repeats)


if __name__ == "__main__":
    main()
