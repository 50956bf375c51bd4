"""Training throughput of each task's default model on the current device, in samples per second.

    python benchmarks/bench_train.py [--device auto|cpu|cuda] [--steps 10] [--amp] [--threads 1]
                                     [--out results/throughput-cpu.json]

For every task it builds the default model of ``solutions.train.<task>.Config`` (the moving
task: the ``cpu`` preset's ConvLSTM ``conv2`` and FC-LSTM, or the ``gpu`` preset's on CUDA), takes
one warm-up step, then times ``--steps`` optimiser steps on one fixed batch, so only the model is
measured, not data generation. The ratio column compares each implementation option with
PyTorch's built-in in the same run (reference LSTM / CTC against ``torch.nn.LSTM`` /
``F.ctc_loss``). Numbers on a shared machine are noisy; compare ratios, not absolute rates.
``--out`` also writes the table as JSON, with the device, the software and the command.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from solutions.data.adding import adding_batch
from solutions.data.moving_digits import moving_digits_batch
from solutions.data.ocr import ocr_batch
from solutions.train import adding, moving, ocr
from solutions.train.common import describe_device


def _time_steps(model, loss_of, steps: int, device, amp: bool) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)

    def step():
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            loss = loss_of(model)
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    step()  # warm-up: allocations, cuDNN/oneDNN kernel choice
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def cases(device):
    """(task, variant, baseline variant, batch size, model, loss function) for each case."""
    cfg = adding.Config()
    x, y = (torch.from_numpy(a).to(device) for a in adding_batch(0, 0, range(cfg.batch_size),
                                                                  cfg.seq_len))
    for impl in ("torch", "reference"):
        for cell in adding.CELLS:
            model = adding.AddingNet(cell, impl, cfg.hidden_size).to(device)
            yield ("adding", f"{cell}/{impl}", f"{cell}/torch", cfg.batch_size, model,
                   lambda m: F.mse_loss(m(x).float(), y))

    cfg = ocr.Config()
    images, labels = ocr_batch(0, 0, range(cfg.batch_size), "train", cfg.style())
    images = images.to(device)
    targets = torch.tensor([c for t in labels for c in t], device=device)
    lengths = torch.tensor([len(t) for t in labels], device=device)
    for lstm_impl, ctc_impl in (("torch", "torch"), ("reference", "torch"),
                                ("torch", "reference")):
        model = ocr.build_model(ocr.Config(lstm=lstm_impl)).to(device)
        ctc = ocr.ctc_loss_function(ctc_impl)

        def loss_of(m, ctc=ctc):
            lp = m(images).float().log_softmax(-1)
            frames = torch.full((lp.shape[1],), lp.shape[0], device=device)
            return ctc(lp, targets, frames, lengths, blank=0)

        yield ("ocr", f"lstm={lstm_impl},ctc={ctc_impl}", "lstm=torch,ctc=torch",
               cfg.batch_size, model, loss_of)

    cfg = moving.Config.preset("gpu" if device.type == "cuda" else "cpu")
    seqs = torch.from_numpy(moving_digits_batch(0, 0, range(cfg.batch_size))).to(device)
    for name in ("fc", "conv2"):
        model = moving.build_model(name, cfg).to(device)
        yield ("moving", name, "fc", cfg.batch_size, model,
               lambda m: F.binary_cross_entropy_with_logits(m(seqs[:, :10]).float(),
                                                            seqs[:, 10:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--steps", type=int, default=10, help="timed steps per case")
    parser.add_argument("--amp", action="store_true", help="float16 autocast (CUDA only)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads (1: steadiest on a shared machine)")
    parser.add_argument("--out", default="", help="also write the results to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if args.amp and not use_cuda:
        parser.error("--amp: mixed precision needs a CUDA device")
    device = torch.device("cuda" if use_cuda else "cpu")
    print(f"device: {describe_device(device)}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}")
    print(f"{'task':8} {'variant':28} {'samples/s':>10} {'vs baseline':>12}")
    rates, rows = {}, []
    for task, variant, baseline, batch, model, loss_of in cases(device):
        torch.manual_seed(0)
        seconds = _time_steps(model, loss_of, args.steps, device, args.amp)
        rates[(task, variant)] = batch / seconds
        ratio = rates[(task, variant)] / rates[(task, baseline)]
        print(f"{task:8} {variant:28} {rates[(task, variant)]:10.1f} {ratio:11.2f}x")
        rows.append({"task": task, "variant": variant, "batch_size": batch,
                     "samples_per_s": round(rates[(task, variant)], 2),
                     "vs": baseline, "ratio": round(ratio, 3)})
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({
            "device": describe_device(device), "device_type": device.type,
            "torch": torch.__version__, "python": platform.python_version(),
            "threads": torch.get_num_threads(), "amp": args.amp, "timed_steps": args.steps,
            "command": "python benchmarks/bench_train.py " + " ".join(sys.argv[1:]),
            "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
