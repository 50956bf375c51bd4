"""CRNN + CTC on synthetic digit strings, scored on held-out fonts with greedy and beam decoding.

From Python::

    from solutions.train import ocr
    result = ocr.train(ocr.Config(steps=300))
    result.final["seq_acc_greedy"], result.final["cer_beam"]

From the shell: ``python -m solutions.train ocr --steps 300``.

Training images come from :mod:`solutions.data.ocr` with the training fonts and the stream
``seed``; the held-out set is drawn once with ``seed + 10000`` **and** the held-out fonts, so its
score measures generalisation to glyph shapes never seen. Metrics: sequence accuracy (the whole
string right) and character error rate (edit distance over the number of target characters),
with best-path (greedy) decoding during training and also prefix beam search at the end.

``--ctc reference`` uses the course's differentiable CTC (``solutions.ctc_torch.ctc_loss``),
``--ctc torch`` PyTorch's ``F.ctc_loss``; ``--lstm`` chooses the LSTM the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from solutions.crnn import CRNN
from solutions.data.ocr import BLANK, NUM_CLASSES, OCRStyle, labels_to_string, ocr_batch
from solutions.language import tr
from solutions.train import common
from solutions.train.common import BaseConfig, knob


@dataclass
class Config(BaseConfig):
    steps: int = knob(1200, "optimiser steps")
    batch_size: int = knob(64, "global batch size (images per step)")
    lr: float = knob(3e-3, "peak learning rate of the one-cycle schedule")
    weight_decay: float = knob(1e-2, "AdamW weight decay")
    grad_clip: float = knob(5.0, "clip the global gradient norm to this; 0 turns clipping off")
    eval_every: int = knob(200, "steps between greedy evaluations on the held-out set")
    checkpoint_every: int = knob(200, "steps between checkpoints")
    # one thread for the model and one process making batches: the 2 cores of the goal
    threads: int = knob(1, "CPU threads per process (0: the cores divided among local ranks)")
    workers: int = knob(1, "data-loading processes that prepare batches ahead (0: in the loop)")
    # data
    height: int = knob(32, "image height, a multiple of 16", minimum=16)
    width: int = knob(128, "image width, a multiple of 4; the CRNN emits width/4 frames",
                      minimum=16)
    min_len: int = knob(1, "shortest digit string", minimum=1)
    max_len: int = knob(8, "longest digit string", minimum=1)
    eval_size: int = knob(1000, "held-out images (held-out fonts, seed + 10000)", minimum=1)
    # model
    channels: tuple[int, ...] = knob((16, 32, 48, 64), "output channels of the 4 conv stages")
    hidden_size: int = knob(96, "hidden units per direction of the bidirectional LSTM",
                            minimum=1)
    lstm: str = knob("torch", "torch.nn.LSTM or the course's solutions.modules.LSTM",
                     choices=("torch", "reference"))
    ctc: str = knob("torch", "F.ctc_loss or the course's solutions.ctc_torch.ctc_loss",
                    choices=("torch", "reference"))
    beam_width: int = knob(8, "beam width of the prefix beam search at the end", minimum=1)

    def check(self) -> None:
        super().check()
        if self.height % 16:
            raise ValueError(f"height (--height): expected a multiple of 16, got {self.height}")
        if self.width % 4:
            raise ValueError(f"width (--width): expected a multiple of 4, got {self.width}")
        if self.min_len > self.max_len:
            raise ValueError(f"min_len (--min-len): {self.min_len} exceeds max_len "
                             f"(--max-len) {self.max_len}")
        if 2 * self.max_len + 1 > self.width // 4:
            raise ValueError(f"max_len (--max-len): {self.max_len} digits may need "
                             f"{2 * self.max_len + 1} CTC frames, but width {self.width} gives "
                             f"{self.width // 4}; raise --width")
        if len(self.channels) != 4 or min(self.channels) < 1:
            raise ValueError(f"channels (--channels): expected 4 positive integers, "
                             f"got {self.channels!r}")

    def style(self) -> OCRStyle:
        return OCRStyle(height=self.height, width=self.width, min_len=self.min_len,
                        max_len=self.max_len, glyph_height=self.height * 3 // 4)


def build_model(cfg: Config) -> CRNN:
    """The CRNN of ``cfg``, with the LSTM implementation it names."""
    if cfg.lstm == "reference":
        from solutions.modules import LSTM
    else:
        from torch.nn import LSTM
    return CRNN(NUM_CLASSES, cfg.height, tuple(cfg.channels), cfg.hidden_size, lstm=LSTM)


def ctc_loss_function(name: str):
    """``F.ctc_loss`` or the course's implementation with the same signature."""
    if name == "torch":
        return F.ctc_loss
    from solutions.ctc_torch import ctc_loss

    return ctc_loss


def edit_distance(a, b) -> int:
    """Levenshtein distance between two sequences (insertions, deletions, substitutions)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def score(predictions: list[list[int]], labels: list[list[int]]) -> dict:
    """Sequence accuracy and character error rate of ``predictions`` against ``labels``."""
    exact = np.mean([p == t for p, t in zip(predictions, labels, strict=True)])
    errors = sum(edit_distance(p, t) for p, t in zip(predictions, labels, strict=True))
    return {"seq_acc": float(exact), "cer": errors / sum(len(t) for t in labels)}


def decode(log_probs: np.ndarray, beam_width: int = 0) -> list[list[int]]:
    """Labels of each sequence of ``log_probs (T, N, C)``: best path, or beam search if > 0."""
    from solutions.decode import greedy_decode, prefix_beam_search

    lp = log_probs.astype(np.float64)
    if beam_width == 0:
        return [list(greedy_decode(lp[:, n], blank=BLANK)) for n in range(lp.shape[1])]
    return [list(prefix_beam_search(lp[:, n], beam_width, blank=BLANK)[0][0])
            for n in range(lp.shape[1])]


@torch.no_grad()
def predict_log_probs(model, images: torch.Tensor, device, batch_size: int = 250) -> np.ndarray:
    """``(T, N, C)`` log-probabilities of ``images (N, 1, H, W)``, in chunks."""
    parts = []
    for start in range(0, images.shape[0], batch_size):
        logits = model(images[start : start + batch_size].to(device))
        parts.append(logits.float().log_softmax(-1).cpu().numpy())
    return np.concatenate(parts, axis=1)


def train(cfg: Config) -> common.Result:
    """Train the CRNN; writes ``learning_curves.png`` and ``heldout_samples.png``."""
    started = common.start_clock()
    rt = common.setup_runtime(cfg)
    run_dir = common.make_run_dir(cfg, "ocr", rt)
    style = cfg.style()
    eval_images, eval_labels = ocr_batch(cfg.seed + 10_000, 0, range(cfg.eval_size), "heldout",
                                         style)
    ctc = ctc_loss_function(cfg.ctc)

    def make_batch(step: int):
        images, labels = ocr_batch(cfg.seed, step, rt.rows(cfg.batch_size), "train", style)
        lengths = torch.tensor([len(t) for t in labels])
        targets = torch.zeros(len(labels), cfg.max_len, dtype=torch.long)  # padded (N, S)
        for row, t in enumerate(labels):
            targets[row, : len(t)] = torch.tensor(t)
        return images, targets, lengths

    def loss_fn(model, batch):
        images, targets, target_lengths = (t.to(rt.device, non_blocking=True) for t in batch)
        log_probs = model(images).float().log_softmax(-1)  # (T, N, C); CTC wants float32
        input_lengths = torch.full((images.shape[0],), log_probs.shape[0], dtype=torch.long,
                                   device=rt.device)
        loss = ctc(log_probs, targets, input_lengths, target_lengths, blank=BLANK,
                   reduction="mean")
        return loss, {}

    def eval_fn(model, step):
        lp = predict_log_probs(model, eval_images, rt.device)
        greedy = score(decode(lp), eval_labels)
        result = {f"{k}_greedy": v for k, v in greedy.items()}
        if step == cfg.steps:
            result.update({f"{k}_beam": v for k, v in
                           score(decode(lp, cfg.beam_width), eval_labels).items()})
        return result

    common.seed_everything(cfg.seed)
    model = build_model(cfg).to(rt.device)
    optimizer, scheduler = common.make_optimizer(model, cfg)
    metrics = common.fit(cfg=cfg, rt=rt, run_dir=run_dir, model=model, optimizer=optimizer,
                         scheduler=scheduler, make_batch=make_batch, loss_fn=loss_fn,
                         eval_fn=eval_fn, desc="ocr")
    evals = [r for r in metrics if r.get("eval")]
    final = {k: v for k, v in evals[-1].items() if k != "eval"} if evals else {}
    if rt.is_main:
        plot_learning_curves(metrics).savefig(run_dir / "learning_curves.png", dpi=120)
        model.eval()
        lp = predict_log_probs(model, eval_images[:24], rt.device)
        plot_samples(eval_images[:24], eval_labels[:24], decode(lp)).savefig(
            run_dir / "heldout_samples.png", dpi=120)
    common.finish(run_dir, rt, started, final=final)
    return common.Result(run_dir, metrics, final)


def plot_learning_curves(metrics: list[dict]):
    """CTC loss (left) and held-out sequence accuracy and CER (right) against the step."""
    fig = common.new_figure(9, 3.5)
    ax_loss, ax_acc = fig.subplots(1, 2)
    common.plot_training_loss(ax_loss, metrics, tr("CTC loss (per target label)"))
    evals = [r for r in metrics if r.get("eval")]
    steps = [r["step"] for r in evals]
    ax_acc.plot(steps, [r["seq_acc_greedy"] for r in evals], "o-", label=tr("sequence accuracy"))
    ax_acc.plot(steps, [r["cer_greedy"] for r in evals], "s-", label=tr("character error rate"))
    ax_acc.set_ylim(0, 1)
    ax_acc.set_xlabel(tr("step"))
    ax_acc.set_title(tr("held-out fonts, greedy decoding"))
    ax_acc.legend(fontsize=8)
    return fig


def plot_samples(images: torch.Tensor, labels, predictions, columns: int = 3):
    """Images with their target and prediction; wrong predictions titled in red."""
    rows = -(-len(labels) // columns)
    fig = common.new_figure(3 * columns, 0.9 * rows)
    for k, ax in enumerate(fig.subplots(rows, columns).ravel()):
        ax.axis("off")
        if k >= len(labels):
            continue
        ax.imshow(images[k, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        right = predictions[k] == labels[k]
        ax.set_title(f"{labels_to_string(labels[k])} -> {labels_to_string(predictions[k])}",
                     fontsize=8, color="black" if right else "red")
    return fig
