"""CTC prefix beam search: solutions.decode against pyctcdecode 0.5 (no language model).

Usage: ``python benchmarks/bench_decode.py [--repeats 5] [--utterances 8]``

Alphabet of C = 29 symbols: the blank and 28 one-character labels (a-z, ', -). There is no
space label on purpose: pyctcdecode treats " " as a word boundary and normalises repeated spaces,
which would make its output text differ from the labelling for reasons unrelated to the search.
Posteriors of T = 100 and 400 frames, beams of 10 and 25, two kinds of input:

- *peaky*: CTC-like outputs, mostly blank with short spikes of one label (logit 8 above noise);
- *flat*: log_softmax of standard normal logits, where many labellings are close.

Both decoders get the same pruning, so they search the same space: every symbol below
log-probability -5, the blank included, is skipped unless it is the frame's best
(``token_min_logp=-5`` in pyctcdecode, ``label_min_logp=-5`` here, with the same definition), and
no beam is dropped for its score alone (pyctcdecode's ``beam_prune_logp=-inf``; its default -10
has no counterpart here), ``prune_history=False``. One difference remains, giving pyctcdecode
less work: its beam holds (text, last symbol) states, so a prefix that ends both in a blank and
in a label takes two of its slots and one of ours.

The script prints median CPU times (``time.process_time``: both decoders are single-threaded),
the speed ratio (pyctcdecode time / ours; goal >= 5), how often the two top hypotheses agree, and
how often ours is at least as probable as pyctcdecode's (both scored exactly with ``ctc_loss``).
"""

import argparse
import logging
import statistics
import time

import numpy as np

from solutions.ctc import ctc_loss
from solutions.decode import prefix_beam_search

ALPHABET = [""] + list("abcdefghijklmnopqrstuvwxyz'-")  # index 0 is the blank
C = len(ALPHABET)
PRUNE = -5.0


def log_softmax(u):
    m = u.max(axis=-1, keepdims=True)
    return u - m - np.log(np.exp(u - m).sum(axis=-1, keepdims=True))


def peaky(rng, T):
    symbols = np.where(rng.random(T) < 0.6, 0, rng.integers(1, C, size=T))
    logits = rng.normal(size=(T, C))
    logits[np.arange(T), symbols] += 8.0
    return log_softmax(logits)


def flat(rng, T):
    return log_softmax(rng.normal(size=(T, C)))


def timed(fn, repeats):
    """Median CPU time of ``fn()`` (both decoders run on one thread, and CPU time is less
    disturbed than wall time by other jobs on a shared machine), and its last result."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        result = fn()
        times.append(time.process_time() - start)
    return statistics.median(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per utterance")
    parser.add_argument("--utterances", type=int, default=6, help="random inputs per setting")
    args = parser.parse_args()

    logging.disable(logging.WARNING)  # pyctcdecode warns that kenlm and a space are missing
    from pyctcdecode import build_ctcdecoder

    decoder = build_ctcdecoder(ALPHABET)
    options = dict(token_min_logp=PRUNE, beam_prune_logp=-np.inf, prune_history=False)
    print(f"pyctcdecode options: {options}; ours: label_min_logp={PRUNE}")
    print(
        f"{'input':<6} {'T':>4} {'beam':>4} {'ours ms':>9} {'pyctc ms':>9} {'ratio':>6} "
        f"{'same top':>9} {'ours >=':>8}"
    )
    rng = np.random.default_rng(0)
    for kind, make in (("peaky", peaky), ("flat", flat)):
        for T in (100, 400):
            for beam in (10, 25):
                ours_t, theirs_t, same, better = [], [], 0, 0
                for _ in range(args.utterances):
                    log_probs = make(rng, T)
                    t_ours, ours = timed(
                        lambda lp=log_probs, b=beam: prefix_beam_search(
                            lp, beam_width=b, label_min_logp=PRUNE
                        ),
                        args.repeats,
                    )
                    t_theirs, theirs = timed(
                        lambda lp=log_probs, b=beam: decoder.decode_beams(
                            lp, beam_width=b, **options
                        ),
                        args.repeats,
                    )
                    ours_t.append(t_ours)
                    theirs_t.append(t_theirs)
                    same += "".join(ALPHABET[k] for k in ours[0][0]) == theirs[0][0]
                    # Which top hypothesis is more probable, by its exact CTC probability?
                    their_labels = [ALPHABET.index(ch) for ch in theirs[0][0]]
                    better += -ctc_loss(log_probs, ours[0][0]) >= -ctc_loss(log_probs, their_labels)
                a, b = statistics.median(ours_t), statistics.median(theirs_t)
                n = args.utterances
                print(
                    f"{kind:<6} {T:>4} {beam:>4} {a * 1e3:9.2f} {b * 1e3:9.2f} {b / a:6.1f} "
                    f"{same:>4}/{n} {better:>6}/{n}"
                )


if __name__ == "__main__":
    main()
