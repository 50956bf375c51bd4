"""Independent implementations of every graded function, written differently from the reference,
each with switchable plausible student bugs.

``namespace(assignment, bug=None)`` returns a namespace as a student's notebook would define it.
Without a bug it must get full marks; with ``bug="<function>:<what>"`` exactly the function named
before the colon is wrong. Each function is self-contained (the sequence functions do not call the
step functions), so that a bug in one function can only affect the checks that call it.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torch import nn

# ------------------------------------------------------------------------------------------------
# rnn


def _rnn(bug):
    def step_forward(x, h_prev, Wx, Wh, b):
        if bug == "rnn_step_forward:sigmoid":
            h = 1 / (1 + np.exp(-(x @ Wx + h_prev @ Wh + b)))
        elif bug == "rnn_step_forward:transposed Wh":
            h = np.tanh(x @ Wx + h_prev @ Wh.T + b)
        else:
            h = np.tanh(np.einsum("nd,dh->nh", x, Wx) + np.einsum("nk,kh->nh", h_prev, Wh) + b)
        return h, {"x": x, "h_prev": h_prev, "Wx": Wx, "Wh": Wh, "h": h}

    def step_backward(dh_next, cache):
        h = cache["h"]
        if bug == "rnn_step_backward:no tanh derivative":
            da = dh_next
        elif bug == "rnn_step_backward:derivative 1 - h":
            da = dh_next * (1 - h)
        else:
            da = dh_next * (1 - h) * (1 + h)
        dWh = cache["h_prev"].T @ da
        if bug == "rnn_step_backward:dWh from h_next":
            dWh = h.T @ da
        return da @ cache["Wx"].T, da @ cache["Wh"].T, cache["x"].T @ da, dWh, da.sum(0)

    def forward(x, h0, Wx, Wh, b):
        hs, h = [], h0
        for t in range(x.shape[1]):
            previous = h0 if bug == "rnn_forward:h0 every step" else h
            h_new = np.tanh(x[:, t] @ Wx + previous @ Wh + b)
            hs.append(h if bug == "rnn_forward:off by one" else h_new)
            h = h_new
        h = np.stack(hs, axis=1)
        return h, (x, h0, Wx, Wh, h)

    def backward(dh, cache):
        x, h0, Wx, Wh, h = cache
        N, T, H = dh.shape
        dx = np.zeros_like(x)
        dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(H)
        carry = np.zeros((N, H))
        for t in range(T - 1, -1, -1):
            total = dh[:, t] if bug == "rnn_backward:no carry" else dh[:, t] + carry
            da = total * (1 - h[:, t] ** 2)
            h_prev = h0 if t == 0 else h[:, t - 1]
            dx[:, t] = da @ Wx.T
            if bug == "rnn_backward:overwrite dWx":
                dWx = x[:, t].T @ da
            else:
                dWx += x[:, t].T @ da
            dWh += h_prev.T @ da
            db += da.sum(0)
            carry = da @ Wh.T
        return dx, carry, dWx, dWh, db

    def clip(grads, max_norm):
        flat = np.concatenate([g.ravel() for g in grads]) if grads else np.zeros(0)
        norm = float(np.linalg.norm(flat))
        if bug == "clip_grad_norm:per array":
            return [g * min(1, max_norm / (np.linalg.norm(g) + 1e-6)) for g in grads], norm
        if bug == "clip_grad_norm:always rescale":
            return [g * max_norm / (norm + 1e-6) for g in grads], norm
        scale = max_norm / (norm + 1e-6)
        return [g * scale if scale < 1 else g.copy() for g in grads], norm

    def birnn(x, h0, Wx_f, Wh_f, b_f, Wx_b, Wh_b, b_b):
        N, T, _ = x.shape
        fwd, bwd = [], [None] * T
        h = h0[0]
        for t in range(T):
            h = np.tanh(x[:, t] @ Wx_f + h @ Wh_f + b_f)
            fwd.append(h)
        h = h0[1]
        for t in reversed(range(T)):
            h = np.tanh(x[:, t] @ Wx_b + h @ Wh_b + b_b)
            bwd[t] = h
        if bug == "birnn_forward:not re-reversed":
            bwd = bwd[::-1]
        halves = [np.stack(fwd, 1), np.stack(bwd, 1)]
        if bug == "birnn_forward:halves swapped":
            halves = halves[::-1]
        return np.concatenate(halves, axis=2), None

    return {"rnn_step_forward": step_forward, "rnn_step_backward": step_backward,
            "rnn_forward": forward, "rnn_backward": backward,
            "clip_grad_norm": clip, "birnn_forward": birnn}


RNN_BUGS = [
    "rnn_step_forward:sigmoid", "rnn_step_forward:transposed Wh",
    "rnn_step_backward:no tanh derivative", "rnn_step_backward:derivative 1 - h",
    "rnn_step_backward:dWh from h_next",
    "rnn_forward:h0 every step", "rnn_forward:off by one",
    "rnn_backward:no carry", "rnn_backward:overwrite dWx",
    "clip_grad_norm:per array", "clip_grad_norm:always rescale",
    "birnn_forward:not re-reversed", "birnn_forward:halves swapped",
]

# ------------------------------------------------------------------------------------------------
# lstm_gru


def _sig(a):
    return 0.5 * (1 + np.tanh(a / 2))  # the logistic function, without overflow


def _lstm_gates(a, H, order="ifgo"):
    blocks = dict(zip(order, np.split(a, 4, axis=1), strict=True))
    return _sig(blocks["i"]), _sig(blocks["f"]), np.tanh(blocks["g"]), _sig(blocks["o"])


def _lstm_gru(bug):
    def lstm_cell(x, h, c, Wx, Wh, b, who):
        a = x @ Wx + h @ Wh + b
        order = "ifog" if bug == f"{who}:gates i f o g" else "ifgo"
        i, f, g, o = _lstm_gates(a, h.shape[1], order)
        c_next = f * c + i * g
        h_next = o * c_next if bug == f"{who}:no tanh on c" else o * np.tanh(c_next)
        return h_next, c_next, (x, h, c, i, f, g, o, c_next)

    def lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b):
        h, c, parts = lstm_cell(x, h_prev, c_prev, Wx, Wh, b, "lstm_step_forward")
        return h, c, (parts, Wx, Wh)

    def lstm_cell_backward(dh, dc_next, parts, Wx, Wh, who):
        x, h, c, i, f, g, o, c_next = parts
        tc = np.tanh(c_next)
        dc = dc_next if bug == f"{who}:no dh into dc" else dc_next + dh * o * (1 - tc**2)
        da = np.hstack([dc * g * i * (1 - i), dc * c * f * (1 - f), dc * i * (1 - g * g),
                        dh * tc * o * (1 - o)])
        dc_prev = dc if bug == f"{who}:dc_prev without f" else dc * f
        return da @ Wx.T, da @ Wh.T, dc_prev, x.T @ da, h.T @ da, da.sum(0)

    def lstm_step_backward(dh_next, dc_next, cache):
        parts, Wx, Wh = cache
        return lstm_cell_backward(dh_next, dc_next, parts, Wx, Wh, "lstm_step_backward")

    def lstm_forward(x, h0, c0, Wx, Wh, b):
        hs, caches, h, c = [], [], h0, c0
        for t in range(x.shape[1]):
            c_in = c0 if bug == "lstm_forward:c reset" else c
            h, c, parts = lstm_cell(x[:, t], h, c_in, Wx, Wh, b, "lstm_forward")
            hs.append(c if bug == "lstm_forward:returns c" else h)
            caches.append(parts)
        return np.stack(hs, 1), (caches, Wx, Wh)

    def lstm_backward(dh, cache):
        caches, Wx, Wh = cache
        N, T, H = dh.shape
        dx = np.zeros((N, T, Wx.shape[0]))
        dWx, dWh, db = 0, 0, 0
        dh_carry, dc_carry = np.zeros((N, H)), np.zeros((N, H))
        for t in reversed(range(T)):
            up = dh[:, t] if bug == "lstm_backward:no dh carry" else dh[:, t] + dh_carry
            dc_in = np.zeros((N, H)) if bug == "lstm_backward:no dc carry" else dc_carry
            dx[:, t], dh_carry, dc_carry, a, b_, c_ = lstm_cell_backward(
                up, dc_in, caches[t], Wx, Wh, "lstm_backward")
            dWx, dWh, db = dWx + a, dWh + b_, db + c_
        return dx, dh_carry, dc_carry, dWx, dWh, db

    def gru_cell(x, h, Wx, Wh, bx, bh, who):
        H = h.shape[1]
        ax, ah = x @ Wx + bx, h @ Wh + bh
        r = _sig(ax[:, :H] + ah[:, :H])
        z = _sig(ax[:, H:2 * H] + ah[:, H:2 * H])
        if bug == f"{who}:b_hn outside reset":
            ah_n = h @ Wh[:, 2 * H:]
            n = np.tanh(ax[:, 2 * H:] + r * ah_n + bh[2 * H:])
        else:
            ah_n = ah[:, 2 * H:]
            n = np.tanh(ax[:, 2 * H:] + r * ah_n)
        if bug == f"{who}:z swapped":
            h_next = z * n + (1 - z) * h
        else:
            h_next = n + z * (h - n)
        return h_next, (x, h, r, z, n, ah_n)

    def gru_cell_backward(dh, parts, Wx, Wh, who):
        x, h, r, z, n, ah_n = parts
        dan = dh * (1 - z) * (1 - n * n)
        dar = dan * ah_n * r * (1 - r)
        daz = dh * (h - n) * z * (1 - z)
        dax = np.hstack([dar, daz, dan])
        dah = np.hstack([dar, daz, dan if bug == f"{who}:no r in dah" else dan * r])
        direct = 0 if bug == f"{who}:no direct path" else dh * z
        return dax @ Wx.T, direct + dah @ Wh.T, x.T @ dax, h.T @ dah, dax.sum(0), dah.sum(0)

    def gru_step_forward(x, h_prev, Wx, Wh, bx, bh):
        h, parts = gru_cell(x, h_prev, Wx, Wh, bx, bh, "gru_step_forward")
        return h, (parts, Wx, Wh)

    def gru_step_backward(dh_next, cache):
        parts, Wx, Wh = cache
        return gru_cell_backward(dh_next, parts, Wx, Wh, "gru_step_backward")

    def gru_forward(x, h0, Wx, Wh, bx, bh):
        hs, caches, h = [], [], h0
        for t in range(x.shape[1]):
            h_in = h0 if bug == "gru_forward:h0 every step" else h
            h_new, parts = gru_cell(x[:, t], h_in, Wx, Wh, bx, bh, "gru_forward")
            hs.append(h if bug == "gru_forward:off by one" else h_new)
            h = h_new
            caches.append(parts)
        return np.stack(hs, 1), (caches, Wx, Wh)

    def gru_backward(dh, cache):
        caches, Wx, Wh = cache
        N, T, H = dh.shape
        dx = np.zeros((N, T, Wx.shape[0]))
        totals = [0, 0, 0, 0]
        carry = np.zeros((N, H))
        for t in reversed(range(T)):
            up = dh[:, t] if bug == "gru_backward:no carry" else dh[:, t] + carry
            dx[:, t], carry, *grads = gru_cell_backward(up, caches[t], Wx, Wh, "gru_backward")
            if bug == "gru_backward:dbh overwritten":
                totals = [totals[0] + grads[0], totals[1] + grads[1], totals[2] + grads[2],
                          grads[3]]
            else:
                totals = [a + g for a, g in zip(totals, grads, strict=True)]
        return (dx, carry, *totals)

    class LSTMCell(nn.Module):
        def __init__(self, input_size, hidden_size, bias=True):
            super().__init__()
            self.hidden_size = hidden_size
            bound = hidden_size**-0.5

            def uniform(*shape):
                return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))

            self.weight_ih = uniform(4 * hidden_size, input_size)
            self.weight_hh = uniform(4 * hidden_size, hidden_size)
            self.bias_ih = uniform(4 * hidden_size) if bias else None
            self.bias_hh = uniform(4 * hidden_size) if bias else None

        def forward(self, x, state=None):
            if state is None:
                state = (x.new_zeros(len(x), self.hidden_size),) * 2
            h, c = state
            a = torch.nn.functional.linear(x, self.weight_ih, self.bias_ih)
            hidden_bias = None if bug == "LSTMCell:no bias_hh" else self.bias_hh
            a = a + torch.nn.functional.linear(h, self.weight_hh, hidden_bias)
            H = self.hidden_size
            i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
            if bug == "LSTMCell:gates i f o g":
                g, o = o, g
            c = f.sigmoid() * c + (g.tanh() if bug == "LSTMCell:no input gate"
                                   else i.sigmoid() * g.tanh())
            return o.sigmoid() * c.tanh(), c

    return {"lstm_step_forward": lstm_step_forward, "lstm_step_backward": lstm_step_backward,
            "lstm_forward": lstm_forward, "lstm_backward": lstm_backward,
            "gru_step_forward": gru_step_forward, "gru_step_backward": gru_step_backward,
            "gru_forward": gru_forward, "gru_backward": gru_backward, "LSTMCell": LSTMCell}


LSTM_GRU_BUGS = [
    "lstm_step_forward:gates i f o g", "lstm_step_forward:no tanh on c",
    "lstm_step_backward:no dh into dc", "lstm_step_backward:dc_prev without f",
    "lstm_forward:c reset", "lstm_forward:returns c",
    "lstm_backward:no dh carry", "lstm_backward:no dc carry",
    "gru_step_forward:b_hn outside reset", "gru_step_forward:z swapped",
    "gru_step_backward:no direct path", "gru_step_backward:no r in dah",
    "gru_forward:h0 every step", "gru_forward:off by one",
    "gru_backward:no carry", "gru_backward:dbh overwritten",
    "LSTMCell:gates i f o g", "LSTMCell:no bias_hh", "LSTMCell:no input gate",
]

# ------------------------------------------------------------------------------------------------
# convlstm


def _convlstm(bug):
    class ConvLSTMCell(nn.Module):
        def __init__(self, in_channels, hidden_channels, kernel_size, bias=True, peephole=True):
            super().__init__()
            self.hidden = hidden_channels
            self.conv = nn.Conv2d(in_channels + hidden_channels, 4 * hidden_channels,
                                  kernel_size, padding="same", bias=bias)
            if peephole:
                for name in ("weight_ci", "weight_cf", "weight_co"):
                    self.register_parameter(name, nn.Parameter(torch.zeros(hidden_channels, 1,
                                                                           1)))
            self.peephole = peephole

        def forward(self, x, state=None):
            if state is None:
                zeros = torch.zeros(x.shape[0], self.hidden, *x.shape[2:], dtype=x.dtype)
                state = (zeros, zeros)
            h, c = state
            stacked = torch.cat([h, x] if bug == "ConvLSTMCell:h before x" else [x, h], 1)
            if bug == "ConvLSTMCell:h before x":
                # The same weights, read in the wrong order of input channels.
                stacked = torch.cat([x, h], 1).flip(1)
            a_i, a_f, a_g, a_o = torch.split(self.conv(stacked), self.hidden, dim=1)
            if self.peephole:
                a_i = a_i + self.weight_ci * c
                if bug != "ConvLSTMCell:no forget peephole":
                    a_f = a_f + self.weight_cf * c
            c_next = torch.sigmoid(a_f) * c + torch.sigmoid(a_i) * torch.tanh(a_g)
            if self.peephole:
                peek = c if bug == "ConvLSTMCell:output peephole on c_prev" else c_next
                a_o = a_o + self.weight_co * peek
            return torch.sigmoid(a_o) * torch.tanh(c_next), c_next

    class ConvLSTM(nn.Module):
        def __init__(self, in_channels, hidden_channels, kernel_size, bias=True, peephole=True):
            super().__init__()
            sizes = [in_channels, *hidden_channels]
            self.cells = nn.ModuleList(ConvLSTMCell(a, b, kernel_size, bias, peephole)
                                       for a, b in itertools.pairwise(sizes))

        def forward(self, x, state=None):
            states, seq, first = [], x, None
            for layer, cell in enumerate(self.cells):
                s = None if state is None else state[layer]
                outs = []
                for t in range(x.shape[1]):
                    if bug == "ConvLSTM:state not carried":
                        s = cell(seq[:, t], None if state is None else state[layer])
                    else:
                        s = cell(seq[:, t], s)
                    outs.append(s[0])
                seq = torch.stack(outs, 1)
                first = seq if first is None else first
                states.append(s)
            if bug == "ConvLSTM:first layer out":
                return first, states
            if bug == "ConvLSTM:states reversed":
                states = states[::-1]
            return seq, states

    return {"ConvLSTMCell": ConvLSTMCell, "ConvLSTM": ConvLSTM}


CONVLSTM_BUGS = [
    "ConvLSTMCell:output peephole on c_prev", "ConvLSTMCell:no forget peephole",
    "ConvLSTMCell:h before x",
    "ConvLSTM:state not carried", "ConvLSTM:first layer out", "ConvLSTM:states reversed",
]

# ------------------------------------------------------------------------------------------------
# ctc: loops over positions with a scalar log-sum-exp, beam search in rescaled probabilities with
# per-prefix records; so every function differs from the reference's log-space code.


def _ctc(bug):
    def collapse(path, blank=0):
        path = [int(s) for s in path]
        if bug == "ctc_collapse:blanks first":
            return [k for k, _ in itertools.groupby(s for s in path if s != blank)]
        if bug == "ctc_collapse:no merge":
            return [s for s in path if s != blank]
        return [k for k, _ in itertools.groupby(path) if k != blank]

    def extend(labels, blank=0):
        out = []
        for label in labels:
            out += [0 if bug == "extend_with_blanks:blank 0" else blank, int(label)]
        if bug != "extend_with_blanks:no final blank":
            out.append(blank)
        return np.array(out, dtype=int)

    def ext_of(labels, blank):
        return [x for label in labels for x in (blank, int(label))] + [blank]

    def allowed_skip(ext, s, blank, who):
        if bug == f"{who}:skip between equal labels":
            return s >= 2 and ext[s] != blank
        return s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]

    def lse(*values):
        m = max(values)
        if m == -math.inf:
            return m
        return m + math.log(sum(math.exp(v - m) for v in values))

    def forward(log_probs, labels, blank=0, who="ctc_forward"):
        if bug == "ctc_forward:blank 0" and who == "ctc_forward":
            blank = 0
        if bug == "ctc_forward:probability space" and who == "ctc_forward":
            return _prob_space_forward(log_probs, ext_of(labels, blank))
        T, ext = len(log_probs), ext_of(labels, blank)
        S = len(ext)
        la = np.full((T, S), -math.inf)
        la[0, :2] = log_probs[0, ext[:2]]
        for t in range(1, T):
            for s in range(S):
                terms = [la[t - 1, s]] + ([la[t - 1, s - 1]] if s else [])
                if allowed_skip(ext, s, blank, who):
                    terms.append(la[t - 1, s - 2])
                la[t, s] = lse(*terms) + log_probs[t, ext[s]]
        return la

    def backward(log_probs, labels, blank=0, who="ctc_backward"):
        T, ext = len(log_probs), ext_of(labels, blank)
        S = len(ext)
        lb = np.full((T, S), -math.inf)
        lb[T - 1, -2:] = log_probs[T - 1, ext[-2:]]
        for t in range(T - 2, -1, -1):
            for s in range(S):
                terms = [lb[t + 1, s]] + ([lb[t + 1, s + 1]] if s + 1 < S else [])
                if s + 2 < S and allowed_skip(ext, s + 2, blank, who):
                    terms.append(lb[t + 1, s + 2])
                lb[t, s] = lse(*terms) + log_probs[t, ext[s]]
        if bug == "ctc_backward:no emission" and who == "ctc_backward":
            return lb - log_probs[:, ext]
        return lb

    def loss(log_probs, labels, blank=0):
        log_alpha = forward(log_probs, labels, blank, who="ctc_loss")
        if bug == "ctc_loss:last blank only":
            return float(-log_alpha[-1, -1])
        value = -np.logaddexp.reduce(log_alpha[-1, -2:])
        return float(-value if bug == "ctc_loss:sign" else value)

    def grad(log_probs, labels, blank=0):
        log_alpha = forward(log_probs, labels, blank, who="ctc_grad")
        log_beta = backward(log_probs, labels, blank, who="ctc_grad")
        log_p = np.logaddexp.reduce(log_alpha[-1, -2:])
        if not np.isfinite(log_p):
            return np.zeros_like(log_probs)
        ext = ext_of(labels, blank)
        y = np.exp(log_probs)
        posterior = np.zeros_like(y)
        for s, k in enumerate(ext):
            occupancy = np.exp(log_alpha[:, s] + log_beta[:, s] - log_probs[:, k] - log_p)
            if bug == "ctc_grad:overwrite":
                posterior[:, k] = occupancy
            else:
                posterior[:, k] += occupancy
        return -posterior if bug == "ctc_grad:no softmax term" else y - posterior

    def greedy(log_probs, blank=0):
        best = np.argmax(log_probs, axis=1)
        if bug == "greedy_decode:no merge":
            return [int(s) for s in best if s != blank]
        if bug == "greedy_decode:blank 0":
            blank = 0
        return [int(k) for k, _ in itertools.groupby(best) if k != blank]

    def beam(log_probs, beam_width=10, blank=0):
        beams = {(): (1.0, 0.0)}  # probabilities, rescaled below to stay in range
        log_offset = 0.0
        y = np.exp(log_probs)
        combine = max if bug == "prefix_beam_search:no merging" else (lambda a, b: a + b)
        for t in range(len(y)):
            nxt = {}

            def add(prefix, pb, pnb, nxt=nxt):
                old = nxt.get(prefix, (0.0, 0.0))
                nxt[prefix] = (combine(old[0], pb), combine(old[1], pnb))

            for prefix, (pb, pnb) in beams.items():
                add(prefix, (pb + pnb) * y[t, blank], 0.0)
                for c in range(y.shape[1]):
                    if c == blank:
                        continue
                    if prefix and prefix[-1] == c:
                        add(prefix, 0.0, pnb * y[t, c])
                        if bug == "prefix_beam_search:repeat without blank":
                            add(prefix + (c,), 0.0, (pb + pnb) * y[t, c])
                        else:
                            add(prefix + (c,), 0.0, pb * y[t, c])
                    else:
                        add(prefix + (c,), 0.0, (pb + pnb) * y[t, c])
            best = sorted(nxt.items(), key=lambda kv: -(kv[1][0] + kv[1][1]))[:beam_width]
            norm = sum(pb + pnb for _, (pb, pnb) in best) or 1.0
            log_offset += math.log(norm)
            beams = {prefix: (pb / norm, pnb / norm) for prefix, (pb, pnb) in best}
        out = [(list(p), math.log(pb + pnb) + log_offset) for p, (pb, pnb) in beams.items()
               if pb + pnb > 0]
        return sorted(out, key=lambda pair: -pair[1])

    return {"ctc_collapse": collapse, "extend_with_blanks": extend, "ctc_forward": forward,
            "ctc_backward": backward, "ctc_loss": loss, "ctc_grad": grad,
            "greedy_decode": greedy, "prefix_beam_search": beam}


CTC_BUGS = [
    "ctc_collapse:blanks first", "ctc_collapse:no merge",
    "extend_with_blanks:blank 0", "extend_with_blanks:no final blank",
    "ctc_forward:skip between equal labels", "ctc_forward:blank 0",
    "ctc_forward:probability space",
    "ctc_backward:skip between equal labels", "ctc_backward:no emission",
    "ctc_loss:last blank only", "ctc_loss:sign",
    "ctc_grad:overwrite", "ctc_grad:no softmax term",
    "greedy_decode:no merge", "greedy_decode:blank 0",
    "prefix_beam_search:no merging", "prefix_beam_search:repeat without blank",
]

def _prob_space_forward(log_probs, ext):
    """The forward recursion with plain probabilities: underflows on long sequences."""
    y = np.exp(log_probs)
    alpha = np.zeros((len(y), len(ext)))
    alpha[0, :2] = y[0, ext[:2]]
    for t in range(1, len(y)):
        for s in range(len(ext)):
            total = alpha[t - 1, s] + (alpha[t - 1, s - 1] if s else 0)
            if s >= 2 and ext[s] != ext[0] and ext[s] != ext[s - 2]:
                total += alpha[t - 1, s - 2]
            alpha[t, s] = total * y[t, ext[s]]
    with np.errstate(divide="ignore"):
        return np.log(alpha)


_BUILDERS = {"rnn": _rnn, "lstm_gru": _lstm_gru, "convlstm": _convlstm, "ctc": _ctc}
BUGS = {"rnn": RNN_BUGS, "lstm_gru": LSTM_GRU_BUGS, "convlstm": CONVLSTM_BUGS, "ctc": CTC_BUGS}


def namespace(assignment: str, bug: str | None = None) -> dict:
    """A student-like namespace for ``assignment``, correct or with one ``bug``."""
    if bug is not None and bug not in BUGS[assignment]:
        raise KeyError(f"unknown bug {bug!r}")
    return _BUILDERS[assignment](bug)
