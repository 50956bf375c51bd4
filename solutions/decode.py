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

Implementation: prefixes are nodes of a prefix tree (an integer per prefix, so looking one up
costs the same however long it is), and the search works on Python floats, which are much
faster than numpy for the few numbers a frame touches. Two shortcuts keep the work per frame
small without changing the result: a frame where only the blank has non-zero probability (most
frames of a trained network once ``label_min_logp`` prunes) just adds ``log y[blank]`` to every
prefix; otherwise each prefix tries its extensions from the most probable label down and stops
at the first one that cannot beat the ``beam_width``-th best candidate found so far.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

import numpy as np

from solutions.ctc import check_log_probs, ctc_collapse

LanguageModel = Callable[[tuple, int], float]


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
    """Every prefix seen so far, as a node id; node 0 is the empty prefix."""

    def __init__(self):
        self.parent = [-1]
        self.last = [-1]  # last label of each prefix; -1 for the empty one
        self._children: dict[tuple[int, int], int] = {}

    def child(self, node: int, label: int) -> int:
        child = self._children.get((node, label))
        if child is None:
            child = self._children[node, label] = len(self.parent)
            self.parent.append(node)
            self.last.append(label)
        return child

    def labels(self, node: int) -> list[int]:
        labels = []
        while node > 0:
            labels.append(self.last[node])
            node = self.parent[node]
        return labels[::-1]


def _logaddexp(a: float, b: float) -> float:
    """``log(exp(a) + exp(b))`` of two floats; ``-inf`` when both are."""
    if a < b:
        a, b = b, a
    if b == -math.inf:
        return a
    return a + math.log1p(math.exp(b - a))


def _extension(p_b: float, p: float, last: int, label: int, y: list[float]) -> float:
    """``log p_nb`` that a prefix gives to its extension by ``label`` at a frame ``y``.

    The prefix has ``log p_b``, ``log p = log(p_b + p_nb)`` and last label ``last``. A repeat of
    the last label needs a blank in between, so only the paths that end in a blank continue.
    """
    return (p_b if label == last else p) + y[label]


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
    - label_min_logp: if set, labels whose log-probability at a frame is below this get
      probability 0 there (the frame's most probable symbol is always kept; the blank is never
      pruned); ``None`` considers every label

    Returns up to ``beam_width`` pairs ``(labelling, score)``, best first. Without ``lm`` the
    score is ``log p(labelling | x)`` summed over the alignments that survived the beam (all of
    them when the beam is wide enough, so it then equals ``-ctc_loss``). With ``lm`` it is the
    ranking score ``log p_ctc + alpha * sum log p_lm(label | history) + beta * len(labelling)``.
    """
    log_probs = check_log_probs(log_probs, blank)
    if isinstance(beam_width, bool) or not isinstance(beam_width, (int, np.integer)):
        raise ValueError(f"beam_width: expected an integer >= 1, got {beam_width!r}")
    if beam_width < 1:
        raise ValueError(f"beam_width: expected an integer >= 1, got {beam_width!r}")
    T, C = log_probs.shape
    is_label = np.arange(C) != blank  # (C,)
    if label_min_logp is not None:
        best = log_probs.max(axis=1, keepdims=True)  # (T, 1)
        pruned = is_label & (log_probs < label_min_logp) & (log_probs < best)  # (T, C)
        log_probs = np.where(pruned, -np.inf, log_probs)
    # Each frame's labels of non-zero probability, most probable first: a prefix tries its
    # extensions in this order, so the first one that cannot enter the beam ends its loop.
    label_logp = np.where(is_label, log_probs, -np.inf)  # (T, C)
    order = np.argsort(-label_logp, axis=1, kind="stable")  # (T, C)
    count = np.isfinite(label_logp).sum(axis=1)  # (T,)
    frame_labels = [row[:k] for row, k in zip(order.tolist(), count.tolist(), strict=True)]
    rows = log_probs.tolist()  # Python floats: much faster than numpy scalars, one at a time

    tree = _PrefixTree()
    lm_terms: dict[tuple[int, int], float] = {}  # (node, label) -> alpha * log p_lm + beta

    def lm_term(node: int, label: int) -> float:
        if (node, label) not in lm_terms:
            prefix = tuple(tree.labels(node))
            lm_terms[node, label] = alpha * lm(prefix, label) + beta
        return lm_terms[node, label]

    # The beam, a min-heap of (score, node, log p_b, log p_nb, log p, bonus) with p = p_b + p_nb,
    # bonus the LM part of the score (0 without an lm) and score = log p + bonus.
    beam = [(0.0, 0, 0.0, -math.inf, 0.0, 0.0)]
    for t in range(T):
        y = rows[t]  # (C,)
        labels = frame_labels[t]
        if not labels:
            # Only the blank has non-zero probability: every path goes on with a blank, and all
            # scores shift by y[blank], which keeps the prefixes and their order.
            beam = [
                (score + y[blank], node, p + y[blank], -math.inf, p + y[blank], bonus)
                for score, node, _, _, p, bonus in beam
            ]
            continue

        # Keep the beam_width best of the stays and the extensions by one label, in a min-heap.
        totals = {node: (p_b, p) for _, node, p_b, _, p, _ in beam}  # at frame t - 1
        joined = set()  # (node, label) of the extensions that recreate a prefix in the beam
        heap = []
        for _, node, _, p_nb, p, bonus in beam:
            # Stay on the same prefix: through a blank, or by repeating the last label.
            last = tree.last[node]
            stay_b, stay_nb = p + y[blank], p_nb + y[last] if node else -math.inf
            # An extension can recreate a prefix that is already in the beam ("ab" from "a" when
            # "ab" is there too): its probability joins that prefix instead of being a duplicate.
            parent = tree.parent[node]
            if parent in totals:
                grown = _extension(*totals[parent], tree.last[parent], last, y)
                stay_nb = _logaddexp(stay_nb, grown)
                joined.add((parent, last))
            stay = _logaddexp(stay_b, stay_nb)
            if stay > -math.inf:
                heap.append((stay + bonus, node, stay_b, stay_nb, stay, bonus))
        heapq.heapify(heap)
        for _, node, p_b, _, p, bonus in beam:
            last = tree.last[node]
            for label in labels:
                full = len(heap) == beam_width
                # p + y[label] + bonus bounds this extension's score and all the later ones'
                # (with an lm the label's own bonus is not known in advance: try them all).
                if lm is None and full and p + y[label] + bonus < heap[0][0]:
                    break
                if joined and (node, label) in joined:
                    continue
                p_nb = _extension(p_b, p, last, label, y)
                child_bonus = bonus if lm is None else bonus + lm_term(node, label)
                score = p_nb + child_bonus
                if score == -math.inf or full and score <= heap[0][0]:
                    continue
                entry = (score, tree.child(node, label), -math.inf, p_nb, p_nb, child_bonus)
                (heapq.heapreplace if full else heapq.heappush)(heap, entry)
        beam = heap

    beam.sort(reverse=True)
    return [(tree.labels(node), score) for score, node, *_ in beam]
