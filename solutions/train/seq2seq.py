"""An encoder-decoder between Chinese number words and Arabic numerals (一千零二十四 <-> 1024).

From Python::

    from solutions.train import seq2seq
    result = seq2seq.train(seq2seq.Config(steps=300))
    result.final["zh2ar"]["in_range"]["exact_greedy"], result.run_dir / "accuracy_by_length.png"

From the shell: ``python -m solutions.train seq2seq --steps 300``.

The notes' many-to-many case with unequal lengths: the input and the output are sequences of
different lengths (一万零一十 has five characters, 10010 five digits; 两万 two and 20000 five).
Numbers and their words come from :mod:`solutions.data.numerals`. ``--direction`` picks
``zh2ar`` (words to digits), ``ar2zh`` or ``both``; with ``both`` the source starts with a token
naming the target language, and one network learns both.

The model (Sutskever et al. 2014; Cho et al. 2014), with no attention:

- the **encoder**, a recurrent layer, reads the source; its final state is the *context*, a fixed
  vector of ``hidden_size`` numbers that must hold the whole input. Sources are padded on the
  left (the padding's embedding is zero), so every source's last character is the encoder's last
  step;
- the **decoder**, another recurrent layer, starts from the context and reads at each step the
  previous output character and the context again (Cho et al.'s conditioning); a linear layer
  gives the next character's logits;
- training uses **teacher forcing**: the decoder's input is the true previous character, not its
  own guess, and the loss is the cross-entropy of every target character and the end token.

At test time the decoder feeds back its own output, greedily or with beam search
(:func:`beam_search`). Held-out sets (``meta.json`` → ``final``): ``in_range``, numbers of the
trained lengths (``--min-digits`` to ``--max-digits``) that training never draws (5% of numbers,
chosen by a hash: :func:`solutions.data.numerals.is_held_out`), and ``longer``, numbers with
``max_digits + 1`` to ``--test-max-digits`` digits. Metrics: exact match (the whole output right)
and character error rate (edit distance over target characters), and exact match against the
number of digits in ``accuracy_by_length.png``: the fixed-size context and a decoder that never
produced that many characters limit it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from solutions.data import numerals
from solutions.language import tr
from solutions.train import common
from solutions.train.adding import recurrent_layer
from solutions.train.common import BaseConfig, knob
from solutions.train.ocr import score

PAD, BOS, EOS, TO_AR, TO_ZH = range(5)
SPECIALS = ("<pad>", "<bos>", "<eos>", "<to-ar>", "<to-zh>")
VOCAB = SPECIALS + tuple(numerals.ARABIC_CHARS) + tuple(numerals.CHINESE_CHARS)
INDEX = {token: i for i, token in enumerate(VOCAB)}
DIRECTIONS = {"zh2ar": TO_AR, "ar2zh": TO_ZH}


@dataclass
class Config(BaseConfig):
    direction: str = knob("both", "zh2ar: words to digits; ar2zh: digits to words; both: one "
                                  "network for both, told by a first token", choices=("zh2ar",
                                                                                      "ar2zh",
                                                                                      "both"))
    cell: str = knob("gru", "recurrent layer of the encoder and the decoder",
                     choices=("rnn", "lstm", "gru"))
    impl: str = knob("torch", "reference: the course's modules; torch: torch.nn's",
                     choices=("reference", "torch"))
    steps: int = knob(2000, "optimiser steps")
    batch_size: int = knob(128, "global batch size (number pairs per step)")
    lr: float = knob(3e-3, "peak learning rate (one-cycle schedule)")
    eval_every: int = knob(500, "steps between greedy evaluations on the held-out sets")
    min_digits: int = knob(1, "fewest digits of a training number", minimum=1)
    max_digits: int = knob(5, "most digits of a training number", minimum=1)
    test_max_digits: int = knob(7, "most digits of the longer held-out numbers (at most 8)",
                                minimum=1)
    eval_size: int = knob(500, "numbers in each held-out set, per direction", minimum=1)
    embed_size: int = knob(64, "size of the character embedding", minimum=1)
    hidden_size: int = knob(256, "hidden units of the encoder and of the decoder", minimum=1)
    beam_width: int = knob(4, "beam width of the final evaluation", minimum=1)
    threads: int = knob(1, "CPU threads per process; one is fastest for these small recurrent "
                           "nets")

    def check(self) -> None:
        super().check()
        if self.min_digits > self.max_digits:
            raise ValueError(f"min_digits (--min-digits): {self.min_digits} exceeds max_digits "
                             f"(--max-digits) {self.max_digits}")
        if not self.max_digits < self.test_max_digits <= 8:
            raise ValueError(f"test_max_digits (--test-max-digits): expected more than "
                             f"--max-digits ({self.max_digits}) and at most 8, got "
                             f"{self.test_max_digits}")

    def directions(self) -> tuple[str, ...]:
        return tuple(DIRECTIONS) if self.direction == "both" else (self.direction,)


def source_and_target(n: int, direction: str) -> tuple[str, str]:
    """The strings the network reads and writes for number ``n``."""
    words, digits = numerals.to_chinese(n), str(n)
    return (words, digits) if direction == "zh2ar" else (digits, words)


def encode_pairs(numbers, directions) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids of the pairs ``(numbers[k], directions[k])``.

    Returns ``source (N, S)``, padded on the left and starting with the target-language token,
    and ``target (N, U)``: ``<bos>``, the characters, ``<eos>``, padded on the right.
    """
    pairs = [source_and_target(n, d) for n, d in zip(numbers, directions, strict=True)]
    sources = [[DIRECTIONS[d]] + [INDEX[c] for c in s]
               for (s, _), d in zip(pairs, directions, strict=True)]
    targets = [[BOS] + [INDEX[c] for c in t] + [EOS] for _, t in pairs]
    source = torch.full((len(pairs), max(map(len, sources))), PAD, dtype=torch.long)
    target = torch.full((len(pairs), max(map(len, targets))), PAD, dtype=torch.long)
    for row, (s, t) in enumerate(zip(sources, targets, strict=True)):
        source[row, source.shape[1] - len(s):] = torch.tensor(s)
        target[row, : len(t)] = torch.tensor(t)
    return source, target


def tokens_to_text(ids) -> str:
    """The characters of ``ids`` up to the first ``<eos>`` (special tokens dropped)."""
    out = []
    for i in ids:
        if int(i) == EOS:
            break
        if int(i) >= len(SPECIALS):
            out.append(VOCAB[int(i)])
    return "".join(out)


class Seq2Seq(nn.Module):
    """Encoder and decoder recurrent layers sharing one embedding; the encoder's final state is
    the decoder's initial state and, concatenated to every decoder input, its context."""

    def __init__(self, cell: str, impl: str, embed_size: int, hidden_size: int) -> None:
        super().__init__()
        self.cell = cell
        self.embed = nn.Embedding(len(VOCAB), embed_size, padding_idx=PAD)
        self.encoder = recurrent_layer(cell, impl, embed_size, hidden_size)
        self.decoder = recurrent_layer(cell, impl, embed_size + hidden_size, hidden_size)
        self.head = nn.Linear(hidden_size, len(VOCAB))

    def encode(self, source: torch.Tensor):
        """``(state, context)``: the encoder's final state and its ``h``, ``(N, H)``."""
        _, state = self.encoder(self.embed(source))
        h = state[0] if self.cell == "lstm" else state  # (1, N, H)
        return state, h[-1]

    def decode(self, inputs: torch.Tensor, state, context: torch.Tensor):
        """Logits ``(N, U, V)`` for decoder inputs ``(N, U)``, and the decoder's new state."""
        x = self.embed(inputs)  # (N, U, E)
        x = torch.cat([x, context[:, None].expand(-1, x.shape[1], -1).to(x.dtype)], dim=-1)
        h, state = self.decoder(x, state)  # (N, U, H)
        return self.head(h), state

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: logits ``(N, U - 1, V)`` of ``target[:, 1:]`` given
        ``target[:, :-1]``."""
        state, context = self.encode(source)
        logits, _ = self.decode(target[:, :-1], state, context)
        return logits


def _select(state, index: torch.Tensor):
    """Rows ``index`` of a recurrent state (batch is dim 1), for a tensor or an LSTM pair."""
    if isinstance(state, tuple):
        return tuple(s[:, index] for s in state)
    return state[:, index]


@torch.no_grad()
def beam_search(model: Seq2Seq, source: torch.Tensor, beam_width: int,
                max_len: int) -> list[list[int]]:
    """The most probable output of each source, by beam search (``beam_width = 1``: greedy).

    Each source keeps the ``beam_width`` best output prefixes by total log-probability; at every
    step each prefix is extended by every character, and the best ``beam_width`` of the
    ``beam_width * V`` candidates survive, each with its own decoder state. A prefix that has
    emitted ``<eos>`` is finished: it stays in the beam with its score unchanged. No length
    normalisation: the outputs here are short and their length is set by the input.

    This search does not reuse :func:`solutions.decode.prefix_beam_search`: CTC's search runs
    over a fixed matrix of per-frame probabilities that does not depend on the choices made, and
    its work is merging the many alignments (blanks, repeats) that collapse to one prefix. A
    decoder's next distribution depends on the prefix through its recurrent state, so every
    hypothesis carries a state, and each prefix has one path, so there is nothing to merge. What
    the two share is the idea (keep the ``beam_width`` best prefixes, scores in log space).

    Returns the token ids of each source's best output, without ``<bos>`` and ``<eos>``.
    """
    n, k = source.shape[0], beam_width
    state, context = model.encode(source)
    rows = torch.arange(n, device=source.device).repeat_interleave(k)  # (N K,)
    state, context = _select(state, rows), context[rows]
    scores = torch.full((n, k), -torch.inf, device=source.device)  # (N, K)
    scores[:, 0] = 0.0  # one live hypothesis to start, so the beam does not hold k copies
    tokens = torch.full((n * k,), BOS, dtype=torch.long, device=source.device)
    history = torch.empty((n, k, 0), dtype=torch.long, device=source.device)
    finished = torch.zeros((n, k), dtype=torch.bool, device=source.device)
    for _ in range(max_len):
        logits, state = model.decode(tokens[:, None], state, context)
        log_probs = logits[:, -1].float().log_softmax(-1).view(n, k, -1)  # (N, K, V)
        # a finished hypothesis only continues with <eos>, at no cost
        log_probs[finished] = -torch.inf
        log_probs[..., EOS][finished] = 0.0
        candidates = (scores[..., None] + log_probs).view(n, -1)  # (N, K V)
        scores, best = candidates.topk(k, dim=1)  # (N, K)
        beam, token = best // len(VOCAB), best % len(VOCAB)
        history = torch.cat([history.gather(1, beam[..., None].expand(-1, -1, history.shape[2])),
                             token[..., None]], dim=2)
        finished = finished.gather(1, beam) | (token == EOS)
        parent = (torch.arange(n, device=source.device)[:, None] * k + beam).view(-1)
        state, tokens = _select(state, parent), token.view(-1)
        if finished.all():
            break
    best = history[torch.arange(n), scores.argmax(dim=1)].tolist()
    return [row[: row.index(EOS)] if EOS in row else row for row in best]


def evaluation_sets(cfg: Config) -> dict:
    """``{(direction, name): numbers}``: the held-out sets, drawn once with ``seed + 10000``."""
    sets = {}
    for d, direction in enumerate(cfg.directions()):
        sets[direction, "in_range"] = numerals.numbers_batch(
            cfg.seed + 10_000, d, range(cfg.eval_size), cfg.min_digits, cfg.max_digits,
            split="heldout")
        sets[direction, "longer"] = numerals.numbers_batch(
            cfg.seed + 10_000, 100 + d, range(cfg.eval_size), cfg.max_digits + 1,
            cfg.test_max_digits, split="any")
    return sets


def translate(model: Seq2Seq, numbers, direction: str, device, beam_width: int = 1,
              batch_size: int = 500) -> list[str]:
    """The model's output strings for ``numbers`` in ``direction``."""
    out = []
    for start in range(0, len(numbers), batch_size):
        chunk = numbers[start : start + batch_size]
        source, _ = encode_pairs(chunk, [direction] * len(chunk))
        # the longest output: 8 digits, or 17 characters of words for 8 digits
        ids = beam_search(model, source.to(device), beam_width, max_len=18)
        out += [tokens_to_text(row) for row in ids]
    return out


def evaluate(model: Seq2Seq, sets: dict, device, beam_width: int = 1) -> dict:
    """Exact match and CER of every held-out set; exact match by number of digits."""
    result: dict = {}
    for (direction, name), numbers in sets.items():
        outputs = translate(model, numbers, direction, device, beam_width)
        targets = [source_and_target(n, direction)[1] for n in numbers]
        scores = score([list(o) for o in outputs], [list(t) for t in targets])
        result.setdefault(direction, {})[name] = {"exact": scores["seq_acc"],
                                                  "cer": scores["cer"]}
        by_length = result[direction].setdefault("exact_by_digits", {})
        for n, o, t in zip(numbers, outputs, targets, strict=True):
            by_length.setdefault(str(numerals.digits_of(n)), []).append(o == t)
    for direction in result:
        result[direction]["exact_by_digits"] = {
            k: float(np.mean(v)) for k, v in sorted(result[direction]["exact_by_digits"].items(),
                                                    key=lambda kv: int(kv[0]))}
    return result


def train(cfg: Config) -> common.Result:
    """Train the encoder-decoder; plots ``learning_curves.png`` and ``accuracy_by_length.png``."""
    started = common.start_clock()
    rt = common.setup_runtime(cfg)
    run_dir = common.make_run_dir(cfg, "seq2seq", rt)
    directions = cfg.directions()
    sets = evaluation_sets(cfg)

    def make_batch(step: int):
        rows = rt.rows(cfg.batch_size)
        numbers = numerals.numbers_batch(cfg.seed, step, rows, cfg.min_digits, cfg.max_digits)
        return encode_pairs(numbers, [directions[i % len(directions)] for i in rows])

    def loss_fn(model, batch):
        source, target = (t.to(rt.device, non_blocking=True) for t in batch)
        logits = model(source, target)
        return F.cross_entropy(logits.float().reshape(-1, len(VOCAB)),
                               target[:, 1:].reshape(-1), ignore_index=PAD), {}

    def eval_fn(model, step):
        greedy = evaluate(model, sets, rt.device)
        record = {f"{d}/{name}/{k}_greedy": v for d in greedy for name in ("in_range", "longer")
                  for k, v in greedy[d][name].items()}
        if step == cfg.steps:
            beam = evaluate(model, sets, rt.device, cfg.beam_width)
            record.update({f"{d}/{name}/{k}_beam": v for d in beam
                           for name in ("in_range", "longer") for k, v in beam[d][name].items()})
            record.update({f"{d}/exact_by_digits_greedy": greedy[d]["exact_by_digits"]
                           for d in greedy})
        return record

    common.seed_everything(cfg.seed)
    model = Seq2Seq(cfg.cell, cfg.impl, cfg.embed_size, cfg.hidden_size).to(rt.device)
    optimizer, scheduler = common.make_optimizer(model, cfg)
    metrics = common.fit(cfg=cfg, rt=rt, run_dir=run_dir, model=model, optimizer=optimizer,
                         scheduler=scheduler, make_batch=make_batch, loss_fn=loss_fn,
                         eval_fn=eval_fn, desc="seq2seq")
    evals = [r for r in metrics if r.get("eval")]
    final = final_summary(evals[-1], directions) if evals else {}
    if rt.is_main and evals:
        plot_learning_curves(metrics, directions).savefig(run_dir / "learning_curves.png",
                                                          dpi=120)
        if evals[-1]["step"] == cfg.steps:
            plot_accuracy_by_length(final, cfg.max_digits).savefig(
                run_dir / "accuracy_by_length.png", dpi=120)
    common.finish(run_dir, rt, started, final=final)
    return common.Result(run_dir, metrics, final)


def final_summary(record: dict, directions) -> dict:
    """``{direction: {set: {metric_decoder: value}, "exact_by_digits": ..., "step"}}`` of the
    last evaluation record."""
    final: dict = {}
    for key, value in record.items():
        parts = key.split("/")
        if len(parts) == 3:
            final.setdefault(parts[0], {}).setdefault(parts[1], {})[parts[2]] = value
        elif len(parts) == 2:
            final.setdefault(parts[0], {})["exact_by_digits"] = value
    for direction in directions:
        final.setdefault(direction, {})["step"] = record["step"]
    return final


def plot_learning_curves(metrics: list[dict], directions):
    """Training loss (left) and greedy exact match of the held-out sets (right)."""
    fig = common.new_figure(9, 3.5)
    ax_loss, ax_acc = fig.subplots(1, 2)
    common.plot_training_loss(ax_loss, metrics, tr("cross-entropy per target character"))
    evals = [r for r in metrics if r.get("eval")]
    for i, d in enumerate(directions):
        for name, label, style in (("in_range", tr("in range"), "o-"),
                                   ("longer", tr("longer"), "s--")):
            ax_acc.plot([r["step"] for r in evals], [r[f"{d}/{name}/exact_greedy"] for r in evals],
                        style, color=f"C{i}", label=f"{d}, {label}")
    ax_acc.set_ylim(0, 1)
    ax_acc.set_xlabel(tr("step"))
    ax_acc.set_title(tr("held-out exact match, greedy decoding"))
    ax_acc.legend(fontsize=8)
    return fig


def plot_accuracy_by_length(final: dict, max_digits: int):
    """Exact match (greedy) against the number of digits; the trained lengths shaded."""
    fig = common.new_figure()
    ax = fig.add_subplot()
    for i, direction in enumerate(d for d in final if "exact_by_digits" in final[d]):
        by_length = final[direction]["exact_by_digits"]
        ax.plot([int(k) for k in by_length], list(by_length.values()), "o-", color=f"C{i}",
                label=direction)
    ax.axvspan(0.5, max_digits + 0.5, color="gray", alpha=0.15, label=tr("trained lengths"))
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(tr("digits of the number"))
    ax.set_ylabel(tr("exact match (held-out)"))
    ax.set_title(tr("What the encoder's fixed-size state carries"))
    ax.legend(fontsize=8)
    return fig
