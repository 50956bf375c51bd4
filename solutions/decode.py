"""Decoding a CTC output: from per-frame log-probabilities ``(T, C)`` to a labelling.

The best labelling ``argmax_l p(l | x)`` sums over all the paths of each labelling, and no exact
algorithm finds it in polynomial time. Two approximations:

- **greedy** (best path) decoding takes the most probable symbol at every frame and collapses the
  path with ``B``. It finds the most probable *path*, which is not always the best labelling.
- **prefix beam search** keeps the ``beam_width`` most probable *prefixes* (partial labellings)
  frame by frame. Every prefix carries the total probability of the path prefixes that collapse
  to it, split in two: ``p_b``, those ending in a blank, and ``p_nb``, those ending in its last
  label. The split is what handles repeats: after ``"a"``, one more ``a`` either extends the same
  run (prefix ``"a"``, from ``p_nb``) or, after a blank, starts a new label (prefix ``"aa"``, from
  ``p_b``). Paths that collapse to the same prefix are merged, their probabilities summed. With a
  beam wide enough to keep every prefix the search is exact.

At frame ``t``, with ``y`` the frame's probabilities and ``p = p_b + p_nb``, a prefix ``l`` gives:

    l          p_b  += p * y[blank]          (a blank: the prefix is unchanged)
    l          p_nb += p_nb * y[last(l)]     (its last label again: the run goes on)
    l + (c,)   p_nb += p * y[c]              (a new label c != last(l))
    l + (c,)   p_nb += p_b * y[c]            (c == last(l): a new copy needs the blank between)

An optional language model rescores prefixes as they grow (Hannun et al., 2014; Hannun, 2017,
"Sequence Modeling with CTC", Distill): a prefix is ranked by

    log p_ctc(prefix | x) + alpha * log p_lm(prefix) + beta * len(prefix)

where ``beta`` is an insertion bonus that offsets the LM's bias towards short outputs.

``label_min_logp`` prunes the search the way pyctcdecode's ``token_min_logp`` does: in every
frame, each symbol whose log-probability is below it, **the blank included**, gets probability 0,
except the frame's most probable symbol, which is always kept. The search is then exact over
the pruned frames (not renormalised); on a peaky network output most frames keep one symbol.

Implementation: prefixes are nodes of a prefix tree (an integer per prefix, so looking one up
costs the same however long it is), and the search works on Python floats, which are much
faster than numpy for the few numbers a frame touches; each frame is a dict of its surviving
labels. Two shortcuts keep the work per frame small without changing the result: a frame where
only the blank survives just adds ``log y[blank]`` to every prefix; otherwise each prefix tries
its extensions from the most probable label down and stops at the first one that cannot beat
the ``beam_width``-th best candidate found so far.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

import numpy as np

from solutions.ctc import check_log_probs, ctc_collapse

LanguageModel = Callable[[tuple, int], float]
NEG_INF = -math.inf  # log 0


def greedy_decode(log_probs: np.ndarray, blank: int = 0) -> list[int]:
    """Best-path decoding: the most probable symbol at every frame, collapsed with ``B``.

    Inputs:
    - log_probs: (T, C) natural-log probabilities
    - blank: index of the blank symbol

    Returns the labelling as a list of label ids.
    """
    log_probs = check_log_probs(log_probs, blank)
    return ctc_collapse(np.argmax(log_probs, axis=1), blank)


class _PrefixTree:
    """Every prefix seen so far, as a node id; node 0 is the empty prefix.

    The child of ``node`` by ``label`` is ``children[node * num_symbols + label]`` (an integer key
    hashes faster than a tuple). The search adds nodes itself (to ``children``, ``parent`` and
    ``last`` together), in its inner loop, where a method call would be a noticeable share of
    the work.
    """

    def __init__(self, num_symbols: int):
        self.num_symbols = num_symbols
        self.parent = [-1]
        self.last = [-1]  # last label of each prefix; -1 for the empty one
        self.children: dict[int, int] = {}

    def labels(self, node: int) -> list[int]:
        parent, last = self.parent, self.last
        labels = []
        while node > 0:
            labels.append(last[node])
            node = parent[node]
        return labels[::-1]


def _logaddexp(a: float, b: float) -> float:
    """``log(exp(a) + exp(b))`` of two floats; ``-inf`` when both are."""
    if a < b:
        a, b = b, a
    if b == -math.inf:
        return a
    return a + math.log1p(math.exp(b - a))


def _frames(
    log_probs: np.ndarray, blank: int, label_min_logp: float | None
) -> tuple[list[float], list[dict[int, float]]]:
    """Each frame of ``log_probs`` (T, C) as ``log y[blank]`` and a dict ``{label: log y[label]}``
    of its labels of non-zero probability, most probable first (dicts keep insertion order).

    With ``label_min_logp`` every symbol below it, the blank included, gets probability 0,
    except the frame's most probable symbol.
    """
    if label_min_logp is not None:
        best = log_probs.max(axis=1, keepdims=True)  # (T, 1)
        log_probs = np.where((log_probs < label_min_logp) & (log_probs < best), -np.inf, log_probs)
    kept = np.isfinite(log_probs)  # (T, C)
    kept[:, blank] = False
    frame, label = np.nonzero(kept)  # (K,) each
    logp = log_probs[frame, label]  # (K,)
    order = np.lexsort((-logp, frame))  # by frame, then most probable first
    labels: list[dict[int, float]] = [{} for _ in range(len(log_probs))]
    for t, c, logp_c in zip(
        frame[order].tolist(), label[order].tolist(), logp[order].tolist(), strict=True
    ):
        labels[t][c] = logp_c
    return log_probs[:, blank].tolist(), labels


def prefix_beam_search(
    log_probs: np.ndarray,
    beam_width: int = 10,
    blank: int = 0,
    lm: LanguageModel | None = None,
    alpha: float = 0.5,
    beta: float = 0.0,
    label_min_logp: float | None = None,
) -> list[tuple[list[int], float]]:
    """CTC prefix beam search, optionally with a language model.

    Inputs:
    - log_probs: (T, C) natural-log probabilities
    - beam_width: how many prefixes survive each frame (>= 1); a beam of at least the number of
      distinct prefixes makes the search exact
    - blank: index of the blank symbol
    - lm: optional scorer ``lm(prefix, next_label) -> log p(next_label | prefix)``, ``prefix`` a
      tuple of label ids; called at most once for each (prefix, label) pair, when a prefix in the
      beam is extended by that label
    - alpha: LM weight; beta: bonus added per label. Both are used only when ``lm`` is given.
    - label_min_logp: if set, every symbol whose log-probability at a frame is below this, the
      blank included, gets probability 0 there, except the frame's most probable symbol (the
      meaning of pyctcdecode's ``token_min_logp``); ``None`` (default) considers every symbol

    Returns up to ``beam_width`` pairs ``(labelling, score)``, best first. Without ``lm`` the
    score is ``log p(labelling | x)`` summed over the alignments that survived the beam (all of
    them when the beam is wide enough, so it then equals ``-ctc_loss``; with ``label_min_logp``,
    only alignments through symbols that survived the pruning count). With ``lm`` it is the
    ranking score ``log p_ctc + alpha * sum log p_lm(label | history) + beta * len(labelling)``.
    """
    log_probs = check_log_probs(log_probs, blank)
    if isinstance(beam_width, bool) or not isinstance(beam_width, (int, np.integer)):
        raise ValueError(f"beam_width: expected an integer >= 1, got {beam_width!r}")
    if beam_width < 1:
        raise ValueError(f"beam_width: expected an integer >= 1, got {beam_width!r}")
    blank_logp, label_logp = _frames(log_probs, blank, label_min_logp)

    tree = _PrefixTree(log_probs.shape[1])
    lm_terms: dict[tuple[int, int], float] = {}  # (node, label) -> alpha * log p_lm + beta

    def lm_term(node: int, label: int) -> float:
        if (node, label) not in lm_terms:
            prefix = tuple(tree.labels(node))
            lm_terms[node, label] = alpha * lm(prefix, label) + beta
        return lm_terms[node, label]

    # The beam, a min-heap of (score, node, log p_b, log p_nb, log p, bonus) with p = p_b + p_nb,
    # bonus the LM part of the score (0 without an lm) and score = log p + bonus.
    beam = [(0.0, 0, 0.0, NEG_INF, 0.0, 0.0)]
    # The tree's parts as local names: they are read in the inner loops.
    parents, lasts, children, num_symbols = tree.parent, tree.last, tree.children, tree.num_symbols
    for y_blank, y in zip(blank_logp, label_logp, strict=True):
        if not y:
            # Only the blank has non-zero probability: every path goes on with a blank, and all
            # scores shift by y_blank, which keeps the prefixes and their order.
            beam = [
                (score + y_blank, node, p + y_blank, NEG_INF, p + y_blank, bonus)
                for score, node, _, _, p, bonus in beam
            ]
            continue

        # Keep the beam_width best of the stays and the extensions by one label, in a min-heap.
        in_beam = {entry[1]: entry for entry in beam}  # node -> entry, at frame t - 1
        heap = []
        for _, node, _, p_nb, p, bonus in beam:
            # Stay on the same prefix: through a blank, or by repeating the last label.
            stay_b = stay = p + y_blank
            last = lasts[node]
            if last in y:
                stay_nb = p_nb + y[last]
                # An extension can recreate a prefix that is already in the beam ("ab" from "a"
                # when "ab" is there too): its probability joins that prefix here, and the
                # extension loop below skips it.
                parent = parents[node]
                if parent in in_beam:
                    _, _, parent_b, _, parent_p, _ = in_beam[parent]
                    # A repeat of the last label needs a blank in between: only p_b continues.
                    grown = (parent_b if last == lasts[parent] else parent_p) + y[last]
                    stay_nb = _logaddexp(stay_nb, grown)
                stay = _logaddexp(stay_b, stay_nb)
            else:  # the last label has probability 0 here (or there is none): only the blank
                stay_nb = NEG_INF
            if stay > NEG_INF:
                heap.append((stay + bonus, node, stay_b, stay_nb, stay, bonus))
        heapq.heapify(heap)
        floor = heap[0][0] if len(heap) == beam_width else NEG_INF  # a candidate must beat it
        labels = list(y.items())  # (label, log y[label]), most probable first
        for _, node, p_b, _, p, bonus in beam:
            last = lasts[node]
            for label, y_label in labels:
                # p + y_label + bonus bounds this extension's score and all the later ones'
                # (with an lm the label's own bonus is not known in advance: try them all).
                if lm is None and p + y_label + bonus < floor:
                    break
                p_nb = (p_b if label == last else p) + y_label
                child_bonus = bonus if lm is None else bonus + lm_term(node, label)
                score = p_nb + child_bonus
                if score <= floor:
                    continue
                key = node * num_symbols + label
                child = children.get(key)
                if child is None:  # a new prefix: a new node of the tree
                    child = children[key] = len(parents)
                    parents.append(node)
                    lasts.append(label)
                elif child in in_beam:
                    continue
                entry = (score, child, NEG_INF, p_nb, p_nb, child_bonus)
                if len(heap) < beam_width:
                    heapq.heappush(heap, entry)
                    if len(heap) == beam_width:
                        floor = heap[0][0]
                else:
                    heapq.heapreplace(heap, entry)
                    floor = heap[0][0]
        beam = heap

    beam.sort(reverse=True)
    return [(tree.labels(node), score) for score, node, *_ in beam]
