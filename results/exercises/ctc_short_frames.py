"""Training runs behind exercise 12 of book/ctc/06-exercises.md: does CTC emit spikes?

Trains the toy tagger of book/ctc/05-training.md with labels held for MIN to MAX frames and
measures, on 300 held-out sequences, how many frames of each label's true segment have that label
as the most probable symbol, and where those frames sit in the segment.

Usage (from the repository root):
    python results/exercises/ctc_short_frames.py --out results/exercises/ctc_ex12.json
"""

import argparse
import json
import time

import numpy as np
import torch
from torch import nn

from solutions.ctc_torch import ctc_loss
from solutions.decode import greedy_decode
from solutions.train.common import cpu_environment

# Data, network, seeds and training loop mirror book/ctc/05-training.md (same order of random
# draws), with the range of label durations as a parameter; durations 1 to 4 are the page's run.
D, LABELS, MAX_LABELS = 8, 5, 5
STEPS, BATCH, LR = 800, 32, 1e-2
TEST_SEQUENCES = 300
PROTOTYPES = np.random.default_rng(42).normal(size=(LABELS + 1, D))
PROTOTYPES[0] = 0.0  # silence


def frames_needed(max_duration):
    """Frames for five labels of max_duration with the gaps (T = 30 for the page's 1 to 4)."""
    return MAX_LABELS * max_duration + 10


def toy_batch(rng, n, min_duration, max_duration, noise=0.5):
    """Inputs (T, n, D), padded targets (n, 5), target lengths (n,), per sequence the true
    segments as (label, first frame, end frame)."""
    frames = frames_needed(max_duration)
    x = np.zeros((frames, n, D), np.float32)
    targets = np.zeros((n, MAX_LABELS), np.int64)
    lengths = rng.integers(2, MAX_LABELS + 1, size=n)
    frame_labels = np.zeros((n, frames), np.int64)
    segments = []
    for i in range(n):
        labels = rng.integers(1, LABELS + 1, size=lengths[i])
        targets[i, : lengths[i]] = labels
        t = int(rng.integers(0, 3))
        sequence_segments = []
        for u, label in enumerate(labels):
            duration = int(rng.integers(min_duration, max_duration + 1))
            frame_labels[i, t : t + duration] = label
            sequence_segments.append((int(label), t, t + duration))
            t += duration
            gap = int(rng.integers(0, 3))
            if u + 1 < len(labels) and labels[u + 1] == label:
                gap = max(gap, 1)
            t += gap
        segments.append(sequence_segments)
        x[:, i] = PROTOTYPES[frame_labels[i]]
    x += noise * rng.normal(size=x.shape).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(targets), torch.from_numpy(lengths), segments


class Tagger(nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.rnn = nn.LSTM(D, hidden, bidirectional=True)
        self.out = nn.Linear(2 * hidden, LABELS + 1)

    def forward(self, x):  # (T, N, D) -> log-probabilities (T, N, C)
        h, _ = self.rnn(x)
        return self.out(h).log_softmax(-1)


def train_and_measure(min_duration, max_duration):
    frames = frames_needed(max_duration)
    torch.manual_seed(0)
    model = Tagger()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    rng = np.random.default_rng(2)
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(STEPS):
        x, targets, lengths, _ = toy_batch(rng, BATCH, min_duration, max_duration)
        loss = ctc_loss(model(x), targets, torch.full((BATCH,), frames), lengths)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    wall_seconds = time.perf_counter() - wall_start
    cpu_seconds = time.process_time() - cpu_start

    x, targets, lengths, segments = toy_batch(
        np.random.default_rng(3), TEST_SEQUENCES, min_duration, max_duration
    )
    with torch.no_grad():
        log_probs = model(x).double().numpy()  # (T, N, C)
    greedy_accuracy = np.mean(
        [
            greedy_decode(log_probs[:, i]) == targets[i, : lengths[i]].tolist()
            for i in range(TEST_SEQUENCES)
        ]
    )
    most_probable = log_probs.argmax(-1)  # (T, N)
    label_frames, relative_positions, segment_lengths = [], [], []
    for i, sequence_segments in enumerate(segments):
        for label, first, end in sequence_segments:
            fired = [t for t in range(first, end) if most_probable[t, i] == label]
            label_frames.append(len(fired))
            segment_lengths.append(end - first)
            if fired:
                relative_positions.append((np.mean(fired) - first) / max(end - first - 1, 1))
    label_frames = np.array(label_frames)
    result = {
        "min_duration": min_duration,
        "max_duration": max_duration,
        "frames": frames,
        "greedy_sequence_accuracy": float(greedy_accuracy),
        "mean_segment_length": float(np.mean(segment_lengths)),
        "mean_label_frames_in_segment": float(label_frames.mean()),
        "share_segments_exactly_one_label_frame": float((label_frames == 1).mean()),
        "share_segments_no_label_frame": float((label_frames == 0).mean()),
        "mean_relative_position": float(np.mean(relative_positions)),
        "relative_position_quartiles": [
            float(q) for q in np.quantile(relative_positions, [0.25, 0.5, 0.75])
        ],
        "train_wall_seconds": round(wall_seconds, 1),
        "train_cpu_seconds": round(cpu_seconds, 1),
    }
    print(json.dumps(result), flush=True)
    return result


def duration_range(text):
    try:
        low, high = (int(part) for part in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"durations must look like 4-8, got {text!r}") from None
    if not 1 <= low <= high:
        raise argparse.ArgumentTypeError(f"durations need 1 <= MIN <= MAX, got {text!r}")
    return low, high


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="path of the JSON file to write")
    parser.add_argument(
        "--durations",
        type=duration_range,
        nargs="+",
        default=[(1, 4), (4, 8)],
        help="label duration ranges MIN-MAX in frames",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    runs = [train_and_measure(low, high) for low, high in args.durations]
    report = {
        "steps": STEPS,
        "batch": BATCH,
        "learning_rate": LR,
        "test_sequences": TEST_SEQUENCES,
        **cpu_environment(),
        "runs": runs,
    }
    with open(args.out, "w") as out:
        json.dump(report, out, indent=1)
        out.write("\n")


if __name__ == "__main__":
    main()
