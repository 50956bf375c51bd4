"""Training runs behind exercises 8 and 9 of book/convlstm/05-exercises.md.

Exercise 8: ConvLSTM(1, [4], kernel_size=1, state_kernel_size=k) on the moving-square task of
book/convlstm/03-kernel-size-and-speed.md (16 x 16 frames, speeds 1-3).
Exercise 9: speed 4 added (24 x 24 frames); one layer with kernel 7 or 9 against two layers of 5.

Usage (from the repository root):
    python results/exercises/convlstm_kernels.py ex8 --out results/exercises/convlstm_ex8.json
    python results/exercises/convlstm_kernels.py ex9 --out results/exercises/convlstm_ex9.json
"""

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from solutions.convlstm import ConvLSTM
from solutions.train.common import cpu_environment

# Data, model, training loop and F1 mirror book/convlstm/03-kernel-size-and-speed.md (same seeds,
# same order of random draws), with the frame side and the state kernel size as parameters.
T, SQUARE = 5, 2
STEPS, BATCH, LR, POS_WEIGHT = 500, 16, 0.02, 10.0
TEST_PER_SPEED = 300
DIRECTIONS = np.array([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)])
EX8_STATE_KERNELS = (1, 3, 5, 7, 9)


def moving_squares(rng, speeds, side):
    """Frames (n, T, 1, side, side): a SQUARE x SQUARE square moving speeds[i] px per frame."""
    n = len(speeds)
    step = DIRECTIONS[rng.integers(len(DIRECTIONS), size=n)] * np.asarray(speeds)[:, None]
    travel = np.abs(step) * (T - 1)
    low = np.where(step < 0, travel, 0)
    high = side - SQUARE - np.where(step > 0, travel, 0)
    start = low + (rng.random((n, 2)) * (high - low + 1)).astype(int)
    frames = np.zeros((n, T, 1, side, side), np.float32)
    for t in range(T):
        top, left = (start + t * step).T
        for dy in range(SQUARE):
            for dx in range(SQUARE):
                frames[np.arange(n), t, 0, top + dy, left + dx] = 1.0
    return torch.from_numpy(frames)


class NextFrame(nn.Module):
    """ConvLSTM layers and a 1 x 1 read-out of the top layer's state to next-frame logits."""

    def __init__(self, hidden, kernel_size, state_kernel_size=None):
        super().__init__()
        self.rnn = ConvLSTM(1, hidden, kernel_size, state_kernel_size=state_kernel_size)
        self.head = nn.Conv2d(hidden[-1], 1, kernel_size=1)

    def forward(self, frames):  # (N, T, 1, H, W) -> (N, T, 1, H, W)
        states, _ = self.rnn(frames)
        return self.head(states.flatten(0, 1)).unflatten(0, states.shape[:2])


def f1_score(predicted, target):
    hits = (predicted & target).sum().item()
    return 2 * hits / max(predicted.sum().item() + target.sum().item(), 1)


def train_and_score(name, make_model, speeds, side):
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(STEPS):
        x = moving_squares(rng, rng.choice(speeds, size=BATCH), side)
        logits = model(x[:, :-1])[:, 1:]  # predictions of frames 3..T
        loss = F.binary_cross_entropy_with_logits(
            logits, x[:, 2:], pos_weight=torch.tensor(POS_WEIGHT)
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    wall_seconds = time.perf_counter() - wall_start
    cpu_seconds = time.process_time() - cpu_start
    test_rng = np.random.default_rng(123)
    f1, copy_last = {}, {}
    with torch.no_grad():
        for v in speeds:
            x = moving_squares(test_rng, [v] * TEST_PER_SPEED, side)
            target = x[:, 2:] > 0.5
            f1[str(v)] = f1_score(torch.sigmoid(model(x[:, :-1])[:, 1:]) > 0.5, target)
            copy_last[str(v)] = f1_score(x[:, 1:-1] > 0.5, target)
    result = {
        "name": name,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_wall_seconds": round(wall_seconds, 1),
        "train_cpu_seconds": round(cpu_seconds, 1),
        "f1": f1,
        "copy_last_frame_f1": copy_last,
    }
    print(json.dumps(result), flush=True)
    return result


def experiments(which):
    """(name, extra fields, model factory) per run, the speeds and the frame side."""
    if which == "ex8":
        runs = [
            (
                f"kx=1 kh={k}",
                {"kernel_size": 1, "state_kernel_size": k},
                lambda k=k: NextFrame([4], 1, k),
            )
            for k in EX8_STATE_KERNELS
        ]
        return runs, (1, 2, 3), 16
    runs = [
        ("one layer k=7", {"hidden": [4], "kernel_size": 7}, lambda: NextFrame([4], 7)),
        ("one layer k=9", {"hidden": [4], "kernel_size": 9}, lambda: NextFrame([4], 9)),
        ("two layers k=5,5", {"hidden": [4, 4], "kernel_size": 5}, lambda: NextFrame([4, 4], 5)),
    ]
    return runs, (1, 2, 3, 4), 24


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=["ex8", "ex9"], help="which exercise's runs")
    parser.add_argument("--out", required=True, help="path of the JSON file to write")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    runs, speeds, side = experiments(args.which)
    results = []
    for name, fields, make_model in runs:
        results.append({**fields, **train_and_score(name, make_model, speeds, side)})
    report = {
        "exercise": args.which,
        "speeds": list(speeds),
        "frame_side": side,
        "steps": STEPS,
        "batch": BATCH,
        "learning_rate": LR,
        "test_sequences_per_speed": TEST_PER_SPEED,
        **cpu_environment(),
        "runs": results,
    }
    with open(args.out, "w") as out:
        json.dump(report, out, indent=1)
        out.write("\n")


if __name__ == "__main__":
    main()
