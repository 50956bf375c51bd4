"""CTC loss: the numpy batch loss and the PyTorch loss of the reference package against F.ctc_loss.

Usage: ``python benchmarks/bench_ctc.py [--repeats 7] [--warmup 2] [--device auto|cpu|cuda]``

Two problem sizes, ``T=400, N=32, C=29, S=80`` and ``T=50, N=32, C=29, S=20`` (every target of
length S, every input of length T), random log_softmax inputs, one thread for torch and numpy.
The script prints the median time of each candidate (CPU time of the process on the CPU, wall
time on a GPU) and its ratio to ``F.ctc_loss`` measured in the same run (ratio > 1: slower than
torch):

- ``ctc_loss_batch`` (numpy, float64 inside) against ``F.ctc_loss`` on CPU float32 and float64:
  the loss alone, and the loss with its gradient (``return_grad=True`` against ``backward()``).
  Goal: ratio <= 2.
- ``solutions.ctc_torch.ctc_loss`` (float32, forward + backward) against ``F.ctc_loss`` on the
  chosen device; ``auto`` picks CUDA when it is available and says which it used.
"""

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from solutions.ctc_batch import ctc_loss_batch  # noqa: E402
from solutions.ctc_torch import ctc_loss as torch_ctc_loss  # noqa: E402

SIZES = [(400, 32, 29, 80), (50, 32, 29, 20)]


def median_times(
    steps: dict, repeats: int, warmup: int, sync=lambda: None, clock=time.process_time
) -> dict:
    """Median time of each ``steps[name]()``; the candidates take turns so that a change in the
    (shared) machine's load affects all of them alike. On the CPU, with one thread, the clock is
    the process's CPU time, which other jobs on a shared machine disturb far less than wall
    time; a GPU run needs ``time.perf_counter`` (the CPU waits for the device)."""
    times = {name: [] for name in steps}
    for k in range(warmup + repeats):
        for name, step in steps.items():
            sync()
            start = clock()
            step()
            sync()
            if k >= warmup:
                times[name].append(clock() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def problem(T, N, C, S, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(T, N, C, generator=g)
    targets = torch.randint(1, C, (N, S), generator=g)
    return logits, targets, torch.full((N,), T), torch.full((N,), S)


def torch_forward(log_probs, targets, input_lengths, target_lengths):
    def step():
        with torch.no_grad():
            F.ctc_loss(log_probs, targets, input_lengths, target_lengths)

    return step


def torch_backward(fn, logits, targets, input_lengths, target_lengths):
    def step():
        x = logits.detach().requires_grad_()
        fn(x.log_softmax(-1), targets, input_lengths, target_lengths).backward()

    return step


def numpy_step(log_probs, args, return_grad):
    return lambda: ctc_loss_batch(log_probs, *args, return_grad=return_grad)


def report(title, times, baseline):
    print(f"\n{title}")
    for name, seconds in times.items():
        print(f"  {name:<46} {seconds * 1e3:9.2f} ms   ratio {seconds / times[baseline]:6.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per candidate")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per candidate first")
    parser.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], default="auto",
        help="device for the PyTorch-loss comparison (auto: cuda when available)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"torch {torch.__version__}, numpy {np.__version__}, one thread; "
          f"PyTorch loss on {device}" + (f" ({torch.cuda.get_device_name()})"
                                         if device == "cuda" else ""))

    for T, N, C, S in SIZES:
        logits, targets, input_lengths, target_lengths = problem(T, N, C, S)
        lp32 = logits.log_softmax(-1)
        lp64 = logits.double().log_softmax(-1)
        lp_np = lp64.numpy()
        args_np = (targets.numpy(), input_lengths.numpy(), target_lengths.numpy())
        lengths = (targets, input_lengths, target_lengths)

        forward = median_times(
            {
                "F.ctc_loss float32": torch_forward(lp32, *lengths),
                "F.ctc_loss float64": torch_forward(lp64, *lengths),
                "ctc_loss_batch (numpy)": numpy_step(lp_np, args_np, return_grad=False),
            },
            args.repeats, args.warmup,
        )
        report(f"T={T} N={N} C={C} S={S}: loss only (CPU)", forward, "F.ctc_loss float32")

        backward = median_times(
            {
                "F.ctc_loss float32 + backward": torch_backward(F.ctc_loss, logits, *lengths),
                "F.ctc_loss float64 + backward": torch_backward(
                    F.ctc_loss, logits.double(), *lengths
                ),
                "ctc_loss_batch(return_grad=True) (numpy)": numpy_step(
                    lp_np, args_np, return_grad=True
                ),
            },
            args.repeats, args.warmup,
        )
        report(f"T={T} N={N} C={C} S={S}: loss and gradient (CPU)", backward,
               "F.ctc_loss float32 + backward")

        on_device = [t.to(device) for t in (logits, targets, input_lengths, target_lengths)]
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        clock = time.perf_counter if device == "cuda" else time.process_time
        mine = median_times(
            {
                "F.ctc_loss float32 + backward": torch_backward(F.ctc_loss, *on_device),
                "solutions.ctc_torch float32 + backward": torch_backward(
                    torch_ctc_loss, *on_device
                ),
            },
            args.repeats, args.warmup, sync, clock,
        )
        report(f"T={T} N={N} C={C} S={S}: PyTorch loss and gradient ({device})", mine,
               "F.ctc_loss float32 + backward")


if __name__ == "__main__":
    main()
