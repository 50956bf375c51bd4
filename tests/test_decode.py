"""Specification of solutions.decode: greedy decoding and CTC prefix beam search.

The reference for beam search is brute force: on tiny problems (T <= 7, C <= 4) every one of the
C^T paths is enumerated and its probability added to its labelling. All scores are float64 sums of
at most a few thousand terms, so they agree with the exact value to 1e-9.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np
import pytest

from solutions.ctc import ctc_collapse, ctc_loss
from solutions.decode import greedy_decode, prefix_beam_search

TOL = 1e-9
UNBOUNDED = 10**9  # wider than the number of prefixes of any problem here


def log_softmax(u: np.ndarray) -> np.ndarray:
    m = u.max(axis=-1, keepdims=True)
    return u - m - np.log(np.exp(u - m).sum(axis=-1, keepdims=True))


def labelling_probabilities(log_probs: np.ndarray, blank: int) -> dict[tuple, float]:
    """p(l | x) of every labelling l of non-zero probability, by summing over all C^T paths."""
    T, C = log_probs.shape
    probs: dict[tuple, float] = {}
    for path in itertools.product(range(C), repeat=T):
        p = math.exp(log_probs[np.arange(T), list(path)].sum())
        if p > 0.0:
            labelling = tuple(ctc_collapse(path, blank))
            probs[labelling] = probs.get(labelling, 0.0) + p
    return probs


def prune(log_probs: np.ndarray, min_logp: float) -> np.ndarray:
    """The definition of ``label_min_logp`` (pyctcdecode's ``token_min_logp``): in every frame,
    each symbol below ``min_logp``, the blank included, gets probability 0 (not renormalised),
    except the frame's most probable symbol."""
    pruned = log_probs.copy()
    for row in pruned:
        row[(row < min_logp) & (row != row.max())] = -np.inf
    return pruned


def tiny_problems(count: int):
    rng = np.random.default_rng(2024)
    for _ in range(count):
        T = int(rng.integers(1, 8))
        C = int(rng.integers(2, 5))
        blank = int(rng.choice([0, C - 1]))
        # Scale 2 makes frames fairly peaky, so the best labelling and best path often differ.
        yield log_softmax(rng.normal(scale=2.0, size=(T, C))), blank


def test_greedy_decode_collapses_the_argmax_path():
    rng = np.random.default_rng(0)
    for blank in (0, 4):
        log_probs = log_softmax(rng.normal(scale=3.0, size=(40, 5)))
        expected = ctc_collapse(np.argmax(log_probs, axis=1), blank)
        assert greedy_decode(log_probs, blank) == expected
    crafted = np.log(np.array([[0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.8, 0.1, 0.1], [0.2, 0.7, 0.1]]))
    assert greedy_decode(crafted) == [1, 1]


@pytest.mark.parametrize("case", range(12))
def test_unbounded_prefix_beam_search_is_exact(case):
    log_probs, blank = list(tiny_problems(12))[case]
    probs = labelling_probabilities(log_probs, blank)
    result = prefix_beam_search(log_probs, beam_width=UNBOUNDED, blank=blank)
    assert tuple(result[0][0]) == max(probs, key=probs.get)
    # Every labelling of non-zero probability is found, each with its exact total probability.
    assert {tuple(l) for l, _ in result} == set(probs)
    for labelling, score in result:
        assert abs(score - math.log(probs[tuple(labelling)])) < TOL
        assert abs(score + ctc_loss(log_probs, labelling, blank)) < TOL
    assert [s for _, s in result] == sorted((s for _, s in result), reverse=True)


@pytest.mark.parametrize("case", range(12))
def test_unbounded_search_with_label_min_logp_is_exact_on_the_pruned_frames(case):
    log_probs, blank = list(tiny_problems(12))[case]
    min_logp = (-0.5, -1.0, -2.0)[case % 3]
    probs = labelling_probabilities(prune(log_probs, min_logp), blank)
    result = prefix_beam_search(
        log_probs, beam_width=UNBOUNDED, blank=blank, label_min_logp=min_logp
    )
    assert {tuple(l) for l, _ in result} == set(probs)
    for labelling, score in result:
        assert abs(score - math.log(probs[tuple(labelling)])) < TOL


def test_label_min_logp_prunes_the_blank_like_any_symbol():
    # Label 1 has 0.9 in all three frames, the blank and label 2 0.05: at log(0.1) only the path
    # 1 1 1 survives. Without pruning the blank, [1, 1] (1 blank 1) would be found too.
    log_probs = np.log(np.tile([0.05, 0.9, 0.05], (3, 1)))
    result = prefix_beam_search(log_probs, beam_width=10, label_min_logp=math.log(0.1))
    assert [l for l, _ in result] == [[1]]
    assert abs(result[0][1] - 3 * math.log(0.9)) < TOL


def test_label_min_logp_always_keeps_the_most_probable_symbol():
    # Every symbol is below the threshold; the most probable one (label 2, then the blank) stays.
    log_probs = np.log(np.array([[0.3, 0.3, 0.4], [0.4, 0.3, 0.3]]))
    result = prefix_beam_search(log_probs, beam_width=10, label_min_logp=math.log(0.5))
    assert [l for l, _ in result] == [[2]]
    assert abs(result[0][1] - math.log(0.4 * 0.4)) < TOL


def plain_prefix_beam_search(
    log_probs, beam_width, blank=0, label_min_logp=None, lm=None, alpha=0.5, beta=0.0
):
    """The textbook prefix beam search (Hannun, 2017), written for clarity, not speed: a dict of
    prefix tuples, every stay and every extension by every label scored at every frame, then
    the beam_width best kept. The same definition as prefix_beam_search, none of its shortcuts
    (blank-only frames, labels tried best first, the bound that ends a prefix's extensions)."""
    T, C = log_probs.shape
    y = log_probs if label_min_logp is None else prune(log_probs, label_min_logp)
    beam = {(): (0.0, -np.inf)}  # prefix -> (log p_b, log p_nb)
    bonus = {(): 0.0}  # prefix -> alpha * log p_lm(prefix) + beta * len(prefix)
    for t in range(T):
        nxt = defaultdict(lambda: [-np.inf, -np.inf])
        for prefix, (p_b, p_nb) in beam.items():
            p = np.logaddexp(p_b, p_nb)
            nxt[prefix][0] = np.logaddexp(nxt[prefix][0], p + y[t, blank])
            if prefix:
                nxt[prefix][1] = np.logaddexp(nxt[prefix][1], p_nb + y[t, prefix[-1]])
            for c in (c for c in range(C) if c != blank):
                grown = prefix + (c,)
                if grown not in bonus:
                    bonus[grown] = bonus[prefix] + (alpha * lm(prefix, c) + beta if lm else 0.0)
                before = p_b if prefix and prefix[-1] == c else p
                nxt[grown][1] = np.logaddexp(nxt[grown][1], before + y[t, c])
        scored = sorted(((np.logaddexp(*v) + bonus[k], k) for k, v in nxt.items()), reverse=True)
        beam = {k: tuple(nxt[k]) for score, k in scored[:beam_width] if score > -np.inf}
    result = [(list(k), float(np.logaddexp(*v) + bonus[k])) for k, v in beam.items()]
    return sorted(result, key=lambda pair: -pair[1])


@pytest.mark.parametrize("case", range(10))
def test_narrow_beam_keeps_exactly_the_best_candidates_of_every_frame(case):
    # Small alphabets make repeats and merges ("ab" reached from "a" while "ab" is in the beam)
    # frequent; scale 4 makes frames peaky, and pruning at -3 then leaves blank-only frames.
    rng = np.random.default_rng(300 + case)
    T, C = int(rng.integers(10, 40)), int(rng.integers(2, 6))
    blank = int(rng.choice([0, C - 1]))
    options = dict(beam_width=int(rng.integers(1, 9)), blank=blank)
    if case % 2:
        options["label_min_logp"] = -3.0
    if case % 3 == 0:
        table = rng.normal(size=(C + 1, C))
        options.update(
            lm=lambda prefix, c: -abs(table[prefix[-1] if prefix else C, c]), alpha=0.7, beta=0.4
        )
    logits = rng.normal(scale=4.0 if case % 2 else 1.5, size=(T, C))
    logits[-2:, blank] += 12.0  # the search ends on blank-dominated frames (blank-only if pruned)
    log_probs = log_softmax(logits)
    result = prefix_beam_search(log_probs, **options)
    expected = plain_prefix_beam_search(log_probs, **options)
    assert [l for l, _ in result] == [l for l, _ in expected]
    np.testing.assert_allclose([s for _, s in result], [s for _, s in expected], rtol=0, atol=TOL)


def test_prefix_beam_search_beats_greedy_when_paths_split_the_mass():
    # Three frames of p(blank) = 0.6, p(1) = 0.4: the best path is all blanks (0.216), but the
    # six paths with one run of 1s all map to [1]: 3 * 0.4 * 0.36 + 2 * 0.16 * 0.6 + 0.064 = 0.688.
    log_probs = log_softmax(np.log(np.tile([0.6, 0.4, 1e-300], (3, 1))))
    assert greedy_decode(log_probs) == []
    best, score = prefix_beam_search(log_probs, beam_width=4)[0]
    assert best == [1]
    assert abs(score - math.log(0.688)) < 1e-9


def test_narrow_beam_scores_are_lower_bounds_of_the_true_probability():
    rng = np.random.default_rng(5)
    log_probs = log_softmax(rng.normal(size=(30, 6)))
    result = prefix_beam_search(log_probs, beam_width=3)
    assert 1 <= len(result) <= 3
    for labelling, score in result:
        assert score <= -ctc_loss(log_probs, labelling) + TOL


def test_label_pruning_keeps_results_on_peaky_posteriors():
    rng = np.random.default_rng(6)
    peaky = log_softmax(rng.normal(scale=6.0, size=(60, 8)))
    exact = prefix_beam_search(peaky, beam_width=10)
    pruned = prefix_beam_search(peaky, beam_width=10, label_min_logp=-20.0)
    assert pruned[0][0] == exact[0][0]
    assert abs(pruned[0][1] - exact[0][1]) < 1e-6


def bigram_lm(table: dict[tuple[int, int], float], default: float):
    """A toy bigram model: log p(next | previous label), ``previous`` = -1 at the start."""

    def lm(prefix: tuple, next_label: int) -> float:
        previous = prefix[-1] if prefix else -1
        return table.get((previous, next_label), default)

    return lm


def crafted_lm_example():
    # Frame 1 is ambiguous between labels 2 and 3, acoustics slightly favour 2: "12" beats "13".
    probs = np.array(
        [
            [0.05, 0.90, 0.025, 0.025],
            [0.05, 0.05, 0.47, 0.43],
            [0.90, 0.04, 0.03, 0.03],
        ]
    )
    return np.log(probs)


def test_language_model_changes_the_decision():
    log_probs = crafted_lm_example()
    acoustic = prefix_beam_search(log_probs, beam_width=8)
    assert acoustic[0][0] == [1, 2]
    lm = bigram_lm({(-1, 1): math.log(0.9), (1, 3): math.log(0.9), (1, 2): math.log(0.05)}, -3.0)
    rescored = prefix_beam_search(log_probs, beam_width=8, lm=lm, alpha=1.0, beta=0.5)
    assert rescored[0][0] == [1, 3]
    # The score is the ranking score: acoustic + alpha * LM + beta * length (exact beam here).
    expected = -ctc_loss(log_probs, [1, 3]) + math.log(0.9) + math.log(0.9) + 2 * 0.5
    assert abs(rescored[0][1] - expected) < TOL


def test_language_model_with_zero_weights_changes_nothing():
    log_probs = crafted_lm_example()
    lm = bigram_lm({(1, 3): 0.0}, -5.0)
    plain = prefix_beam_search(log_probs, beam_width=8)
    weighted = prefix_beam_search(log_probs, beam_width=8, lm=lm, alpha=0.0, beta=0.0)
    assert [l for l, _ in weighted] == [l for l, _ in plain]
    np.testing.assert_allclose([s for _, s in weighted], [s for _, s in plain], rtol=0, atol=TOL)


def test_language_model_is_called_with_prefix_tuples():
    calls = []

    def lm(prefix, next_label):
        calls.append((prefix, next_label))
        return -1.0

    prefix_beam_search(crafted_lm_example(), beam_width=4, lm=lm)
    assert calls and all(isinstance(p, tuple) and isinstance(c, int) for p, c in calls)
    assert len(calls) == len(set(calls))  # each extended prefix is scored once


@pytest.mark.parametrize("beam_width", [0, -3, 2.5, True])
def test_bad_beam_width_raises_value_error(beam_width):
    with pytest.raises(ValueError, match="beam_width"):
        prefix_beam_search(crafted_lm_example(), beam_width=beam_width)


@pytest.mark.parametrize("fn", [greedy_decode, prefix_beam_search])
def test_decoders_reject_rows_that_are_not_log_probabilities(fn):
    with pytest.raises(ValueError, match="logsumexp"):
        fn(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="blank"):
        fn(crafted_lm_example(), blank=4)
