"""Moving digits: ConvLSTM encoder-forecasters against an FC-LSTM (Shi et al. 2015, Table 1).

From Python::

    from solutions.train import moving
    result = moving.train(moving.Config.preset("smoke"))   # seconds; "cpu": minutes; "gpu"
    result.final["conv2"]["bce"]        # cross-entropy per held-out sequence

From the shell: ``python -m solutions.train moving --preset cpu``.

Every model reads 10 frames of two bouncing digits and predicts the next 10 (64x64 frames cut
into 4x4 patches, 16x16x16 tensors, as in the paper). The models of Table 1, with the paper's
hidden channels scaled by ``channels / 128`` (``fc_hidden`` for the FC-LSTM):

=========== ====================================== ==========================================
name        paper                                  here
=========== ====================================== ==========================================
fc          FC-LSTM-2048-2048                      2 fully connected layers of ``fc_hidden``
conv1       ConvLSTM(5x5)-5x5-256                  1 layer of ``2 C``, 5x5 kernels
conv2       ConvLSTM(5x5)-5x5-128-5x5-128          2 layers of ``C``
conv3       ConvLSTM(5x5)-5x5-128-5x5-64-5x5-64    3 layers ``C, C/2, C/2``
conv1x1     ConvLSTM(9x9)-1x1-128-1x1-128          2 layers of ``C``, 9x9 input-to-state and
                                                   1x1 state-to-state kernels
=========== ====================================== ==========================================

The paper's ordering: ``fc`` worst, ``conv1x1`` worse than the 5x5 models, and the deeper 5x5
models better (``conv3 < conv2 < conv1`` in cross-entropy). Training minimises the binary
cross-entropy averaged over pixels; the reported ``bce`` is the paper's number, the sum over the
10 x 64 x 64 predicted pixels of a sequence, averaged over the held-out sequences (drawn with
``seed + 10000`` and the held-out fonts, or the last ``eval_size`` sequences of ``--data``).
Every model's output bias starts at the log-odds of the mean pixel (:func:`init_head_bias`;
``--head-bias zero`` for PyTorch's default, and the long plateau that comes with it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from solutions.convlstm import EncoderForecaster
from solutions.data.moving_digits import MovingMNISTFile, moving_digits_batch
from solutions.fc_lstm import FCLSTM
from solutions.language import tr
from solutions.train import common
from solutions.train.common import BaseConfig, knob

MODELS = ("fc", "conv1", "conv2", "conv3", "conv1x1")


@dataclass
class Config(BaseConfig):
    models: tuple[str, ...] = knob(MODELS, "models to train, one after the other",
                                   choices=MODELS)
    steps: int = knob(300, "optimiser steps for each model")
    batch_size: int = knob(16, "global batch size (sequences per step)")
    lr: float = knob(2e-3, "peak learning rate of the one-cycle schedule")
    grad_clip: float = knob(1.0, "clip the global gradient norm to this; 0 turns clipping off")
    eval_every: int = knob(0, "steps between evaluations; 0 evaluates only at the end")
    # data
    data: str = knob("", "path of mnist_test_seq.npy (20, N, 64, 64); empty: generate digits")
    input_frames: int = knob(10, "frames the models see", minimum=1)
    output_frames: int = knob(10, "frames the models predict", minimum=1)
    speed_min: float = knob(3.0, "slowest digit motion, pixels per frame", minimum=0.0)
    speed_max: float = knob(4.0, "fastest digit motion, pixels per frame", minimum=0.0)
    eval_size: int = knob(256, "held-out sequences", minimum=1)
    # models
    channels: int = knob(16, "C: hidden channels of the 2-layer ConvLSTM (the paper's 128)",
                         minimum=2)
    fc_hidden: int = knob(256, "hidden units of each FC-LSTM layer (the paper's 2048)", minimum=1)
    patch_size: int = knob(4, "side of the square patches stacked as channels (the paper's 4)",
                           minimum=1)
    lstm: str = knob("torch", "LSTM of the FC-LSTM: torch.nn.LSTM or solutions.modules.LSTM",
                     choices=("torch", "reference"))
    head_bias: str = knob("mean", "initial bias of the output layer: the log-odds of the mean "
                                  "pixel (see init_head_bias) or zero, PyTorch's default",
                          choices=("mean", "zero"))

    PRESETS = {
        "smoke": dict(about="a few steps of tiny models, seconds on a CPU (tests, book pages)",
                      steps=8, batch_size=4, channels=4, fc_hidden=32, eval_size=8,
                      log_every=2, checkpoint_every=4, threads=1),
        "cpu": dict(about="small models, under 5 minutes of one CPU core for all five; far from "
                          "converged, yet FC-LSTM worst and 1x1 worse than 5x5 (results/moving)",
                    steps=250, batch_size=16, channels=8, fc_hidden=128, eval_size=128,
                    log_every=10, checkpoint_every=50, lr=3e-3, threads=1),
        "gpu": dict(about="models half the paper's width; on an NVIDIA H200 about 10 minutes "
                          "for all five in one process, 4 minutes as five processes "
                          "(results/moving-gpu)",
                    steps=2000, batch_size=32, channels=64, fc_hidden=1024, eval_size=1000,
                    eval_every=1000, log_every=20, checkpoint_every=500, lr=1e-3),
    }

    def check(self) -> None:
        super().check()
        if self.speed_min > self.speed_max:
            raise ValueError(f"speed_min (--speed-min): {self.speed_min} exceeds speed_max "
                             f"(--speed-max) {self.speed_max}")
        if 64 % self.patch_size:
            raise ValueError(f"patch_size (--patch-size): must divide the frame size 64, "
                             f"got {self.patch_size}")
        if self.data and self.input_frames + self.output_frames > 20:
            raise ValueError("input_frames + output_frames: the sequences of --data have 20 "
                             f"frames, got {self.input_frames} + {self.output_frames}")


def build_model(name: str, cfg: Config) -> torch.nn.Module:
    """Model ``name`` of ``MODELS`` at the scale of ``cfg``: ``(N, T, 1, 64, 64) -> logits``."""
    c = cfg.channels
    if name == "fc":
        if cfg.lstm == "reference":
            from solutions.modules import LSTM
        else:
            from torch.nn import LSTM
        return FCLSTM((1, 64, 64), (cfg.fc_hidden, cfg.fc_hidden), cfg.output_frames, lstm=LSTM)
    layers, kernel, state_kernel = {
        "conv1": ([2 * c], 5, 5),
        "conv2": ([c, c], 5, 5),
        "conv3": ([c, c // 2, c // 2], 5, 5),
        "conv1x1": ([c, c], 9, 1),
    }[name]
    return EncoderForecaster(in_channels=1, hidden_channels=layers, kernel_size=kernel,
                             state_kernel_size=state_kernel, future_steps=cfg.output_frames,
                             patch_size=cfg.patch_size)


@torch.no_grad()
def init_head_bias(model: torch.nn.Module, future: torch.Tensor) -> None:
    """Start the output layer at the mean pixel intensity of ``future`` frames.

    The frames are mostly black (about 6% of the pixels are digit). From the default bias of 0 a
    model first spends hundreds of steps learning that, and the ConvLSTMs come out of that phase
    stuck at predicting the mean everywhere. Starting at ``logit(mean)`` skips it, for every model
    alike.
    """
    mean = future.float().mean().clamp(1e-4, 1 - 1e-4)
    model.head.bias.fill_(torch.logit(mean).item())


def sequence_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy summed over the frames and pixels of each sequence, averaged over ``N``."""
    per_pixel = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none")
    return per_pixel.flatten(1).sum(1).mean()


def train(cfg: Config) -> common.Result:
    """Train every model of ``cfg.models``; plots curves, the BCE table and predictions."""
    started = common.start_clock()
    rt = common.setup_runtime(cfg)
    run_dir = common.make_run_dir(cfg, "moving", rt)
    frames = cfg.input_frames + cfg.output_frames
    speed = (cfg.speed_min, cfg.speed_max)
    source = MovingMNISTFile(cfg.data, cfg.eval_size) if cfg.data else None
    if source is not None:
        eval_seqs = source.heldout(cfg.eval_size)[:, :frames]
    else:
        eval_seqs = moving_digits_batch(cfg.seed + 10_000, 0, range(cfg.eval_size), frames,
                                        speed=speed, split="heldout")
    eval_seqs = torch.from_numpy(np.ascontiguousarray(eval_seqs))

    def sequences(step: int, rows: range):
        if source is not None:
            seqs = source.batch(cfg.seed, step, rows)[:, :frames]
        else:
            seqs = moving_digits_batch(cfg.seed, step, rows, frames, speed=speed)
        return torch.from_numpy(np.ascontiguousarray(seqs))

    def make_batch(step: int):
        return sequences(step, rt.rows(cfg.batch_size))

    # the whole first global batch, so that every process count starts from the same bias
    first_future = sequences(0, range(cfg.batch_size))[:, cfg.input_frames :]

    def split(seqs):
        seqs = seqs.to(rt.device, non_blocking=True)
        return seqs[:, : cfg.input_frames], seqs[:, cfg.input_frames :]

    def loss_fn(model, seqs):
        past, future = split(seqs)
        logits = model(past)
        loss = F.binary_cross_entropy_with_logits(logits.float(), future)
        return loss, {"bce_seq": loss.item() * future[0].numel()}

    def eval_fn(model, step):
        total = 0.0
        for start in range(0, len(eval_seqs), 64):
            past, future = split(eval_seqs[start : start + 64])
            total += sequence_bce(model(past), future).item() * len(past)
        return {"bce": total / len(eval_seqs)}

    metrics, final, models = [], {}, {}
    for name in cfg.models:
        common.seed_everything(cfg.seed)
        model = build_model(name, cfg)
        if cfg.head_bias == "mean":
            init_head_bias(model, first_future)
        model = model.to(rt.device)
        optimizer, scheduler = common.make_optimizer(model, cfg)
        records = common.fit(cfg=cfg, rt=rt, run_dir=run_dir / name, model=model,
                             optimizer=optimizer, scheduler=scheduler, make_batch=make_batch,
                             loss_fn=loss_fn, eval_fn=eval_fn, desc=f"moving {name}")
        metrics += [{"model": name, **r} for r in records]
        evals = [r for r in records if r.get("eval")]
        if evals:
            final[name] = {"bce": evals[-1]["bce"], "step": evals[-1]["step"],
                           "parameters": sum(p.numel() for p in model.parameters())}
        models[name] = model
    if rt.is_main:
        plot_learning_curves(metrics).savefig(run_dir / "learning_curves.png", dpi=120)
        plot_predictions(models, eval_seqs[:1], cfg.input_frames, rt.device).savefig(
            run_dir / "predictions.png", dpi=120)
    common.finish(run_dir, rt, started, final=final)
    return common.Result(run_dir, metrics, final)


def plot_learning_curves(metrics: list[dict]):
    """Training cross-entropy per sequence (lines) and held-out (dots) of every model."""
    fig = common.new_figure()
    ax = fig.add_subplot()
    for i, name in enumerate(dict.fromkeys(r["model"] for r in metrics)):
        rows = [r for r in metrics if r["model"] == name and not r.get("eval")]
        evals = [r for r in metrics if r["model"] == name and r.get("eval")]
        ax.plot([r["step"] for r in rows], [r["bce_seq"] for r in rows], color=f"C{i}", lw=1,
                label=name)
        ax.plot([r["step"] for r in evals], [r["bce"] for r in evals], "o", color=f"C{i}")
    ax.set_yscale("log")
    ax.set_xlabel(tr("step"))
    ax.set_ylabel(tr("cross-entropy per sequence"))
    ax.set_title(tr("moving digits: training (lines), held-out (dots)"))
    ax.legend(fontsize=8)
    return fig


@torch.no_grad()
def plot_predictions(models: dict, seqs: torch.Tensor, input_frames: int, device):
    """One held-out sequence: input, ground truth, and each model's predicted frames."""
    past, future = seqs[:, :input_frames], seqs[:, input_frames:]
    rows = [(tr("input"), past[0]), (tr("truth"), future[0])]
    for name, model in models.items():
        model.eval()
        rows.append((name, torch.sigmoid(model(past.to(device)).float()).cpu()[0]))
    columns = max(len(r[1]) for r in rows)
    fig = common.new_figure(columns * 0.9, len(rows) * 0.95)
    axes = fig.subplots(len(rows), columns, squeeze=False)
    for (label, frames), ax_row in zip(rows, axes, strict=True):
        for t, ax in enumerate(ax_row):
            ax.set_xticks([])
            ax.set_yticks([])
            if t < len(frames):
                ax.imshow(frames[t, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        ax_row[0].set_ylabel(label, fontsize=8)
    return fig
