"""The adding problem for a plain RNN, an LSTM and a GRU, learning curves in one plot.

From Python::

    from solutions.train import adding
    result = adding.train(adding.Config(steps=300, seq_len=50))
    result.final["lstm"]["mse"], result.run_dir / "learning_curves.png"

From the shell: ``python -m solutions.train adding --steps 300 --seq-len 50``.

Each network reads the ``T`` pairs (value, marker) and a linear layer maps its last hidden state to
the prediction; the loss is the mean squared error. Answering the mean gives ``1/6``
(``BASELINE_MSE``); with long sequences only gated networks get far below it.

``--impl reference`` uses the course's modules: ``solutions.modules.LSTM`` and a loop over
``solutions.modules.GRUCell``. The package has no plain-RNN module, so the reference RNN is the same
loop over ``torch.nn.RNNCell`` (``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)``, the equation of
``solutions.rnn.rnn_step_forward``). ``--impl torch`` uses ``torch.nn.RNN``, ``LSTM`` and ``GRU``.
In both, the LSTM's forget-gate bias starts at 1 (Jozefowicz et al. 2015), the usual remedy for
its slow start on long-memory tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from solutions.data.adding import BASELINE_MSE, adding_batch
from solutions.language import tr
from solutions.train import common
from solutions.train.common import BaseConfig, knob

CELLS = ("rnn", "lstm", "gru")


@dataclass
class Config(BaseConfig):
    cells: tuple[str, ...] = knob(CELLS, "which networks to train, one after the other",
                                  choices=CELLS)
    impl: str = knob("torch", "reference: the course's modules; torch: torch.nn's",
                     choices=("reference", "torch"))
    seq_len: int = knob(50, "T, the length of each sequence", minimum=2)
    hidden_size: int = knob(64, "hidden units of the recurrent layer", minimum=1)
    eval_size: int = knob(1000, "sequences in the held-out set (drawn with seed + 10000)",
                          minimum=1)
    steps: int = knob(1000, "optimiser steps for each network")
    lr: float = knob(3e-3, "peak learning rate (one-cycle schedule)")
    eval_every: int = knob(100, "steps between evaluations on the held-out set")
    threads: int = knob(1, "CPU threads per process; one is fastest for these small recurrent "
                           "nets, whose many small matrix products gain little from threads")


class CellLoop(nn.Module):
    """Run a cell ``h = cell(x_t, h)`` over the time steps of ``x (N, T, D)``.

    Called like ``torch.nn.GRU(batch_first=True)``: ``(x, h0=None) -> (outputs (N, T, H),
    h_n (1, N, H))``, so it can start from a given state and hand its last one on.
    """

    def __init__(self, cell: nn.Module) -> None:
        super().__init__()
        self.cell = cell

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None):
        h = x.new_zeros(x.shape[0], self.cell.hidden_size) if h0 is None else h0[0]  # (N, H)
        outputs = []
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h)
            outputs.append(h)
        return torch.stack(outputs, dim=1), h[None]  # (N, T, H), (1, N, H)


def recurrent_layer(cell: str, impl: str, input_size: int, hidden_size: int) -> nn.Module:
    """A batch-first recurrent layer called as ``(x, state=None) -> (outputs (N, T, H), state)``
    with ``torch.nn``'s state shapes (``(1, N, H)``, a pair of them for the LSTM).

    Shared by the tasks that train all three cells (``adding``, ``charlm``, ``seq2seq``)."""
    if impl == "torch":
        cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
        return cls(input_size, hidden_size, batch_first=True)
    from solutions import modules

    if cell == "lstm":
        return modules.LSTM(input_size, hidden_size, batch_first=True)
    if cell == "gru":
        return CellLoop(modules.GRUCell(input_size, hidden_size))
    return CellLoop(nn.RNNCell(input_size, hidden_size, nonlinearity="tanh"))


class AddingNet(nn.Module):
    """Recurrent layer, then a linear read-out of the last hidden state: ``(N, T, 2) -> (N,)``."""

    def __init__(self, cell: str, impl: str, hidden_size: int) -> None:
        super().__init__()
        self.rnn = recurrent_layer(cell, impl, 2, hidden_size)
        self.readout = nn.Linear(hidden_size, 1)
        if cell == "lstm":
            # forget-gate bias 1 (Jozefowicz et al. 2015): the cell starts out remembering
            with torch.no_grad():
                for name, p in self.rnn.named_parameters():
                    if name.startswith("bias_ih"):
                        p[hidden_size : 2 * hidden_size] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(x)  # (N, T, H)
        return self.readout(h[:, -1]).squeeze(-1)  # (N,)


def train(cfg: Config) -> common.Result:
    """Train each network of ``cfg.cells`` in turn; plots ``learning_curves.png``."""
    started = common.start_clock()
    rt = common.setup_runtime(cfg)
    run_dir = common.make_run_dir(cfg, "adding", rt)
    x_eval, y_eval = adding_batch(cfg.seed + 10_000, 0, range(cfg.eval_size), cfg.seq_len)
    x_eval, y_eval = torch.from_numpy(x_eval), torch.from_numpy(y_eval)

    def make_batch(step: int):
        x, y = adding_batch(cfg.seed, step, rt.rows(cfg.batch_size), cfg.seq_len)
        return torch.from_numpy(x), torch.from_numpy(y)

    def loss_fn(model, batch):
        x, y = (t.to(rt.device, non_blocking=True) for t in batch)
        return F.mse_loss(model(x).float(), y), {}

    def eval_fn(model, step):
        pred = model(x_eval.to(rt.device)).float().cpu()
        return {"mse": F.mse_loss(pred, y_eval).item(),
                "solved": solved_fraction(pred.numpy(), y_eval.numpy())}

    metrics, final = [], {}
    for cell in cfg.cells:
        common.seed_everything(cfg.seed)
        model = AddingNet(cell, cfg.impl, cfg.hidden_size).to(rt.device)
        optimizer, scheduler = common.make_optimizer(model, cfg)
        records = common.fit(
            cfg=cfg, rt=rt, run_dir=run_dir / cell, model=model, optimizer=optimizer,
            scheduler=scheduler, make_batch=make_batch, loss_fn=loss_fn, eval_fn=eval_fn,
            desc=f"adding {cell}",
        )
        metrics += [{"model": cell, **r} for r in records]
        evals = [r for r in records if r.get("eval")]
        if evals:
            final[cell] = {"mse": evals[-1]["mse"], "step": evals[-1]["step"]}
    if rt.is_main:
        plot_learning_curves(metrics, cfg.seq_len).savefig(run_dir / "learning_curves.png", dpi=120)
    common.finish(run_dir, rt, started, final=final)
    return common.Result(run_dir, metrics, final)


def plot_learning_curves(metrics: list[dict], seq_len: int):
    """Training MSE (lines) and held-out MSE (dots) of every network, log scale."""
    fig = common.new_figure()
    ax = fig.add_subplot()
    for i, cell in enumerate(dict.fromkeys(r["model"] for r in metrics)):
        train_rows = [r for r in metrics if r["model"] == cell and not r.get("eval")]
        eval_rows = [r for r in metrics if r["model"] == cell and r.get("eval")]
        color = f"C{i}"
        ax.plot([r["step"] for r in train_rows], [r["loss"] for r in train_rows], color=color,
                lw=1, alpha=0.8, label=tr("{model} (training)").format(model=cell.upper()))
        ax.plot([r["step"] for r in eval_rows], [r["mse"] for r in eval_rows], "o", color=color,
                ms=4, label=tr("{model} (held-out)").format(model=cell.upper()))
    ax.axhline(BASELINE_MSE, color="gray", ls="--", lw=1, label=tr("predict the mean (1/6)"))
    ax.set_yscale("log")
    ax.set_xlabel(tr("step"))
    ax.set_ylabel(tr("mean squared error"))
    ax.set_title(tr("Adding problem, T = {T}").format(T=seq_len))
    ax.legend(fontsize=8)
    return fig


def solved_fraction(pred: np.ndarray, target: np.ndarray, tol: float = 0.04) -> float:
    """Share of predictions within ``tol`` of the target (the criterion of Le et al. 2015)."""
    return float(np.mean(np.abs(pred - target) < tol))
