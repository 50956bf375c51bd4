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
costs the same however long it is), and each frame scores all ``beam x labels`` extensions at
once with numpy, so the Python work per frame is proportional to the beam, not to the alphabet.
"""

from __future__ import annotations

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
        key = (node, label)
        if key not in self._children:
            self._children[key] = len(self.parent)
            self.parent.append(node)
            self.last.append(label)
        return self._children[key]

    def labels(self, node: int) -> list[int]:
        labels = []
        while node > 0:
            labels.append(self.last[node])
            node = self.parent[node]
        return labels[::-1]


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
      tuple of label ids; called once for each (prefix in the beam, non-blank label) pair
    - alpha: LM weight; beta: bonus added per label. Both are used only when ``lm`` is given.
    - label_min_logp: if set, a frame only extends prefixes with labels whose log-probability is
      at least this (the frame's best label always counts); ``None`` considers every label

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
    labels = np.array([c for c in range(C) if c != blank])  # (C-1,) candidate labels
    column = np.full(C + 1, -1)  # label -> its column in `labels`; column[-1] for "no label"
    column[labels] = np.arange(len(labels))
    label_logp = log_probs[:, labels]  # (T, C-1)
    if label_min_logp is not None:
        # Pruned labels get probability 0, except each frame's most probable symbol.
        best = log_probs.max(axis=1, keepdims=True)  # (T, 1)
        pruned = (label_logp < label_min_logp) & (label_logp < best)
        label_logp = np.where(pruned, -np.inf, label_logp)

    tree = _PrefixTree()
    lm_rows: dict[int, np.ndarray] = {}  # node -> alpha * log p_lm(label | prefix) + beta, (C-1,)

    def lm_row(node: int) -> np.ndarray:
        if node not in lm_rows:
            prefix = tuple(tree.labels(node))
            lm_rows[node] = np.array([alpha * lm(prefix, int(c)) + beta for c in labels])
        return lm_rows[node]

    # The beam: node ids, their last labels and, for each, log p_b, log p_nb and the LM bonus of
    # the whole prefix (always 0 without an lm).
    nodes = np.array([0])  # (K,)
    last = np.array([-1])  # (K,), -1 for the empty prefix
    p_b = np.array([0.0])  # (K,)
    p_nb = np.array([-np.inf])  # (K,)
    bonus = np.array([0.0])  # (K,)
    for t in range(T):
        p_total = np.logaddexp(p_b, p_nb)  # (K,)
        y = label_logp[t]  # (C-1,)

        # Stay on the same prefix: through a blank, or by repeating the last label.
        stay_b = p_total + log_probs[t, blank]  # (K,)
        stay_nb = p_nb + np.where(last >= 0, y[column[last]], -np.inf)  # (K,)

        # Extend by one label; a repeat of the last label may only come after a blank.
        repeat = labels[None, :] == last[:, None]  # (K, C-1)
        grow = np.where(repeat, p_b[:, None], p_total[:, None]) + y[None, :]  # (K, C-1)

        # An extension can recreate a prefix that is already in the beam ("ab" from "a" when
        # "ab" is there too): its probability joins that prefix instead of becoming a duplicate.
        node_list = nodes.tolist()
        position = dict(zip(node_list, range(len(node_list)), strict=True))
        for j, node in enumerate(node_list):
            k = position.get(tree.parent[node])
            if k is not None:
                m = column[tree.last[node]]
                stay_nb[j] = np.logaddexp(stay_nb[j], grow[k, m])
                grow[k, m] = -np.inf

        stay_score = np.logaddexp(stay_b, stay_nb)  # (K,)
        grow_score = grow  # (K, C-1)
        if lm is not None:
            grow_bonus = bonus[:, None] + np.stack([lm_row(n) for n in node_list])  # (K, C-1)
            stay_score = stay_score + bonus
            grow_score = grow + grow_bonus

        # Keep the beam_width best of the K stays and K * (C-1) extensions.
        scores = np.concatenate([stay_score, grow_score.ravel()])  # (K + K(C-1),)
        chosen = np.arange(len(scores))
        if len(scores) > beam_width:
            chosen = np.argpartition(-scores, beam_width - 1)[:beam_width]
        chosen = chosen[scores[chosen] > -np.inf]
        is_stay = chosen < len(nodes)
        stays = chosen[is_stay]
        k, m = np.divmod(chosen[~is_stay] - len(nodes), len(labels))  # extension of k by m
        pairs = zip(nodes[k].tolist(), labels[m].tolist(), strict=True)
        grown = [tree.child(node, label) for node, label in pairs]
        nodes = np.concatenate([nodes[stays], np.array(grown, dtype=int)])
        last = np.concatenate([last[stays], labels[m]])
        p_b = np.concatenate([stay_b[stays], np.full(len(grown), -np.inf)])
        p_nb = np.concatenate([stay_nb[stays], grow[k, m]])
        if lm is not None:
            bonus = np.concatenate([bonus[stays], grow_bonus[k, m]])

    final = np.logaddexp(p_b, p_nb) + (bonus if lm is not None else 0.0)  # (K,)
    order = np.argsort(-final, kind="stable")
    return [(tree.labels(int(nodes[i])), float(final[i])) for i in order if final[i] > -np.inf]
