"""Training the course's models on CPU or GPU: ``python -m solutions.train TASK`` or from Python.

Five tasks, each a module with a ``Config`` dataclass (every knob, its default and a comment) and
``train(cfg) -> Result`` (``result.run_dir``, ``result.metrics``: the records of
``metrics.jsonl``, ``result.final``: the final evaluation)::

    from solutions.train import adding, charlm, moving, ocr, seq2seq

    # RNN, LSTM and GRU on the adding problem; the plot is result.run_dir / "learning_curves.png"
    result = adding.train(adding.Config(steps=300, seq_len=50, out="runs/adding-demo"))
    result.final["lstm"]["mse"]

    # CRNN + CTC on synthetic digit strings; held-out fonts, greedy and beam decoding
    result = ocr.train(ocr.Config(steps=300, out="runs/ocr-demo"))
    result.final["seq_acc_greedy"], result.final["cer_beam"]

    # ConvLSTM encoder-forecaster vs FC-LSTM on two bouncing digits (Shi et al. 2015, Table 1)
    result = moving.train(moving.Config.preset("smoke", out="runs/moving-demo"))
    result.final["conv2"]["bce"]

    # character language model (RNN, LSTM, GRU) on the book's prose: perplexity, samples
    result = charlm.train(charlm.Config(steps=300, out="runs/charlm-demo"))
    result.final["lstm"]["ppl"], result.final["baselines"]["bigram"]

    # encoder-decoder between Chinese number words and digits, greedy and beam decoding
    result = seq2seq.train(seq2seq.Config(steps=500, out="runs/seq2seq-demo"))
    result.final["zh2ar"]["in_range"]["exact_beam"]

Every task shares the options of :class:`solutions.train.common.BaseConfig`: ``device``
(auto/cpu/cuda), ``amp`` (mixed precision on CUDA), ``seed``, ``steps``, ``batch_size`` (global),
``checkpoint_every``, ``resume``, ``out`` (the run folder), ... On the command line the same
fields are options (``--batch-size``); ``python -m solutions.train TASK --help`` lists them.
``python -m solutions.train TASK --out RUN --resume`` continues a run with the options saved in
``RUN/config.json``.
Several processes or GPUs: ``torchrun --nproc_per_node=2 -m solutions.train TASK ...``.
"""

import importlib

TASKS = {
    "adding": "the adding problem for RNN, LSTM and GRU",
    "ocr": "CRNN + CTC on synthetic digit strings",
    "moving": "ConvLSTM encoder-forecaster vs FC-LSTM on moving digits",
    "charlm": "character language model (RNN, LSTM, GRU) on the book's prose",
    "seq2seq": "encoder-decoder between Chinese number words and Arabic numerals",
}


def load_task(name: str):
    """The module of task ``name`` (``solutions.train.adding``, ...)."""
    if name not in TASKS:
        raise ValueError(f"task: expected one of {tuple(TASKS)}, got {name!r}")
    return importlib.import_module(f"solutions.train.{name}")
