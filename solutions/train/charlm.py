"""A character language model (RNN, LSTM, GRU) on the course's own book pages, with perplexity.

From Python::

    from solutions.train import charlm
    result = charlm.train(charlm.Config(steps=300))
    result.final["lstm"]["ppl"], result.run_dir / "perplexity.png", result.run_dir / "samples.json"

From the shell: ``python -m solutions.train charlm --steps 300``.

The text is the prose of the book's pages (:mod:`solutions.data.text`: code and display math
stripped, CC BY 4.0), or any UTF-8 file given with ``--text``; every tenth chunk of 2000
characters is held out. Each model embeds a character, runs one recurrent layer and predicts the
next character with a linear layer and a softmax; the loss is the cross-entropy per character,
and the **perplexity** is its exponential on the held-out text, ``exp(-mean log p(c_t | c_<t))``:
the number of equally likely characters the model is, on average, choosing between.

Training is **truncated BPTT**: batch row ``r`` of step ``s + 1`` continues the text of row ``r``
of step ``s``, and the final hidden state of a batch is the initial state of the next one
(detached: gradients flow back at most ``seq_len`` characters, the state flows on). The model
``lstm_reset`` is the same LSTM trained with the state reset to zeros at every batch, and every
model is evaluated both ways (``ppl``: state carried through the held-out text; ``ppl_reset``:
reset every ``seq_len`` characters), which measures what carrying the state is worth.

Baselines on the same split (``meta.json`` → ``baselines``): the add-one smoothed unigram and
bigram models of the training text. At the end each model writes text sampled at a few
temperatures to ``samples.json``.

``--impl reference`` uses the course's ``solutions.modules.LSTM`` and ``GRUCell`` (see
:mod:`solutions.train.adding`), ``--impl torch`` ``torch.nn``'s layers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from solutions.data import text as textdata
from solutions.language import tr
from solutions.train import common
from solutions.train.adding import recurrent_layer
from solutions.train.common import BaseConfig, knob

MODELS = ("rnn", "lstm", "gru", "lstm_reset")
CARRY = {"rnn": True, "lstm": True, "gru": True, "lstm_reset": False}


@dataclass
class Config(BaseConfig):
    models: tuple[str, ...] = knob(MODELS, "models to train, one after the other; lstm_reset "
                                   "is the LSTM trained with the state reset at every batch",
                                   choices=MODELS)
    impl: str = knob("torch", "reference: the course's modules; torch: torch.nn's",
                     choices=("reference", "torch"))
    text: str = knob("", "a UTF-8 text file to model; empty: the prose of the book's pages")
    steps: int = knob(1000, "optimiser steps for each model")
    batch_size: int = knob(32, "global batch size: the parallel streams of text")
    seq_len: int = knob(64, "characters per batch row: the truncation of BPTT", minimum=2)
    lr: float = knob(5e-3, "peak learning rate (one-cycle schedule)")
    eval_every: int = knob(250, "steps between held-out evaluations")
    embed_size: int = knob(32, "size of the character embedding", minimum=1)
    hidden_size: int = knob(256, "hidden units of the recurrent layer", minimum=1)
    eval_rows: int = knob(8, "parallel streams the held-out text is read in", minimum=1)
    temperatures: tuple[float, ...] = knob((0.5, 0.8, 1.0), "temperatures of the samples")
    sample_len: int = knob(300, "characters of each sample", minimum=1)
    prompt: str = knob("The ", "text each sample starts from")
    threads: int = knob(1, "CPU threads per process; one is fastest for these small recurrent "
                           "nets")

    def check(self) -> None:
        super().check()
        if not self.temperatures or min(self.temperatures) <= 0:
            raise ValueError(f"temperatures (--temperatures): expected positive numbers, "
                             f"got {self.temperatures!r}")
        if not self.prompt:
            raise ValueError("prompt (--prompt): expected at least one character")
        if self.text and not Path(self.text).is_file():
            raise ValueError(f"text (--text): no file {self.text}")


class CharLM(nn.Module):
    """Embedding, recurrent layer, linear read-out: ``(N, T)`` ids -> ``(N, T, V)`` logits."""

    def __init__(self, cell: str, impl: str, vocab_size: int, embed_size: int,
                 hidden_size: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_size)
        self.rnn = recurrent_layer(cell, impl, embed_size, hidden_size)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, x: torch.Tensor, state=None):
        h, state = self.rnn(self.embed(x), state)  # (N, T, H)
        return self.head(h), state  # (N, T, V)


def load_corpus(cfg: Config):
    """``(vocab, train_ids, heldout_ids, fingerprint)`` of the configured text."""
    if cfg.text:
        text = Path(cfg.text).read_text(encoding="utf-8")
    else:
        text = textdata.book_text()
    train_text, heldout_text = textdata.split_text(text)
    if len(heldout_text) < 2 * cfg.eval_rows:
        raise ValueError(f"text (--text): {len(text)} characters leave {len(heldout_text)} "
                         f"held out (every tenth chunk of 2000); give at least 20000")
    vocab = textdata.CharVocab.build(train_text)
    return (vocab, vocab.encode(train_text), vocab.encode(heldout_text),
            {**textdata.corpus_fingerprint(text), "source": cfg.text or "book/**/*.md"})


@torch.no_grad()
def perplexity(model: CharLM, ids: np.ndarray, rows: int, seq_len: int, device,
               carry: bool = True) -> float:
    """Held-out perplexity of ``ids`` read as ``rows`` parallel streams in windows of
    ``seq_len``, the state carried from window to window (or reset to zeros for each)."""
    stream_len = len(ids) // rows
    if stream_len < 2:
        raise ValueError(f"ids: {len(ids)} characters cannot fill {rows} streams")
    streams = torch.from_numpy(ids[: rows * stream_len].reshape(rows, stream_len)).to(device)
    state, total, count = None, 0.0, 0
    for start in range(0, stream_len - 1, seq_len):
        stop = min(start + seq_len, stream_len - 1)
        logits, new_state = model(streams[:, start:stop], state if carry else None)
        target = streams[:, start + 1 : stop + 1]
        total += F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                 target.reshape(-1), reduction="sum").item()
        count += target.numel()
        state = new_state
    return float(np.exp(total / count))


@torch.no_grad()
def sample(model: CharLM, vocab: textdata.CharVocab, prompt: str, length: int,
           temperature: float, seed: int, device) -> str:
    """``prompt`` and ``length`` characters drawn one at a time from ``softmax(logits / T)``."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.from_numpy(vocab.encode(prompt))[None].to(device)  # (1, P)
    logits, state = model(ids)
    out = []
    for _ in range(length):
        probs = torch.softmax(logits[0, -1].float().cpu() / temperature, dim=-1)
        next_id = torch.multinomial(probs, 1, generator=generator)
        out.append(int(next_id))
        logits, state = model(next_id[None].to(device), state)
    return prompt + vocab.decode(out)


def check_same_corpus(run_dir: Path, corpus: dict) -> None:
    """Refuse to resume on another text: the book's pages change, and with them the vocabulary."""
    meta_path = run_dir / "meta.json"
    started = json.loads(meta_path.read_text()).get("corpus") if meta_path.exists() else None
    if started is not None and started["sha256"] != corpus["sha256"]:
        raise ValueError(
            f"--resume: the text of the run in {run_dir} has changed since it started "
            f"({started['chars']} characters then, {corpus['chars']} now; {corpus['source']}); "
            f"a continuation needs the same text: start a new run, or pass the old text as --text")


def train(cfg: Config) -> common.Result:
    """Train each model of ``cfg.models`` in turn; plots ``perplexity.png``, writes
    ``samples.json``; ``meta.json`` holds the baselines and the corpus fingerprint."""
    started = common.start_clock()
    rt = common.setup_runtime(cfg)
    run_dir = common.make_run_dir(cfg, "charlm", rt)
    vocab, train_ids, heldout_ids, corpus = load_corpus(cfg)
    if cfg.resume:
        check_same_corpus(run_dir, corpus)
    baselines = textdata.unigram_bigram_perplexity(train_ids, heldout_ids, len(vocab))

    def make_batch(step: int):
        x, y = textdata.bptt_batch(train_ids, step, rt.rows(cfg.batch_size), cfg.batch_size,
                                   cfg.seq_len)
        return torch.from_numpy(x), torch.from_numpy(y)

    def eval_fn(model, step):
        return {"ppl": perplexity(model, heldout_ids, cfg.eval_rows, cfg.seq_len, rt.device),
                "ppl_reset": perplexity(model, heldout_ids, cfg.eval_rows, cfg.seq_len,
                                        rt.device, carry=False)}

    metrics, final, samples = [], {}, {}
    for name in cfg.models:
        carried = common.CarriedState(rt.device)

        def loss_fn(model, batch, carry_state=CARRY[name], carried=carried):
            x, y = (t.to(rt.device, non_blocking=True) for t in batch)
            logits, state = model(x, carried.value if carry_state else None)
            carried.keep(state)
            return F.cross_entropy(logits.float().reshape(-1, len(vocab)), y.reshape(-1)), {}

        common.seed_everything(cfg.seed)
        model = CharLM(name.removesuffix("_reset"), cfg.impl, len(vocab), cfg.embed_size,
                       cfg.hidden_size).to(rt.device)
        optimizer, scheduler = common.make_optimizer(model, cfg)
        records = common.fit(
            cfg=cfg, rt=rt, run_dir=run_dir / name, model=model, optimizer=optimizer,
            scheduler=scheduler, make_batch=make_batch, loss_fn=loss_fn, eval_fn=eval_fn,
            desc=f"charlm {name}", carry=carried,
        )
        metrics += [{"model": name, **r} for r in records]
        evals = [r for r in records if r.get("eval")]
        if evals:
            final[name] = {k: evals[-1][k] for k in ("ppl", "ppl_reset", "step")}
        if rt.is_main and evals and evals[-1]["step"] == cfg.steps:
            model.eval()
            samples[name] = {str(t): sample(model, vocab, cfg.prompt, cfg.sample_len, t,
                                            cfg.seed, rt.device) for t in cfg.temperatures}
    if rt.is_main:
        plot_perplexity(metrics, baselines).savefig(run_dir / "perplexity.png", dpi=120)
        (run_dir / "samples.json").write_text(json.dumps(samples, indent=2, ensure_ascii=False)
                                              + "\n")
    common.finish(run_dir, rt, started, final=final, baselines=baselines, corpus=corpus,
                  vocab_size=len(vocab))
    return common.Result(run_dir, metrics, {**final, "baselines": baselines})


def plot_perplexity(metrics: list[dict], baselines: dict):
    """Held-out perplexity of every model against the step, with the two baselines."""
    fig = common.new_figure()
    ax = fig.add_subplot()
    for i, name in enumerate(dict.fromkeys(r["model"] for r in metrics)):
        rows = [r for r in metrics if r["model"] == name and r.get("eval")]
        ax.plot([r["step"] for r in rows], [r["ppl"] for r in rows], "o-", color=f"C{i}",
                ms=4, label=name.upper().replace("_RESET", tr(" (state reset in training)")))
    labels = {"unigram": tr("unigram baseline ({value:.1f})"),
              "bigram": tr("bigram baseline ({value:.1f})")}
    for (name, value), style in zip(baselines.items(), (":", "--"), strict=True):
        ax.axhline(value, color="gray", ls=style, lw=1, label=labels[name].format(value=value))
    ax.set_yscale("log")
    ax.set_xlabel(tr("step"))
    ax.set_ylabel(tr("held-out perplexity (per character)"))
    ax.set_title(tr("Character language model on the book's prose"))
    ax.legend(fontsize=8)
    return fig
