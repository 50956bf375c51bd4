"""Reference implementations of the course on sequence models.

One module per concept, in the order the book introduces them:

- ``rnn``, ``lstm``, ``gru``: the numpy layers (forward and backward, batch first);
- ``modules``: PyTorch ``LSTMCell``, ``GRUCell`` and ``LSTM`` with ``torch.nn``'s parameter names;
- ``convlstm``: ``ConvLSTMCell``, ``ConvLSTM`` and Shi et al.'s ``EncoderForecaster``;
- ``ctc``: CTC for one sequence (collapse, alpha-beta, loss, gradient);
- ``decode``: greedy decoding and prefix beam search;
- ``ctc_batch`` and ``ctc_torch``: the batched loss in numpy and a differentiable PyTorch loss,
  both with ``torch.nn.functional.ctc_loss``'s semantics;
- ``gradcheck``: finite-difference gradients and the relative error;
- ``data`` and ``train``: data generators and ``python -m solutions.train``.

The names of COURSE.md's API are re-exported here, so ``from solutions import lstm_forward`` works.
The PyTorch CTC loss is exported as ``ctc_loss_torch`` because ``ctc_loss`` is the numpy one.
"""

from solutions.convlstm import ConvLSTM, ConvLSTMCell, EncoderForecaster
from solutions.ctc import (
    ctc_backward,
    ctc_collapse,
    ctc_forward,
    ctc_grad,
    ctc_loss,
    extend_with_blanks,
)
from solutions.ctc_batch import ctc_loss_batch
from solutions.ctc_torch import CTCLoss
from solutions.ctc_torch import ctc_loss as ctc_loss_torch
from solutions.decode import greedy_decode, prefix_beam_search
from solutions.gradcheck import eval_numerical_gradient, eval_numerical_gradient_array, rel_error
from solutions.gru import gru_backward, gru_forward, gru_step_backward, gru_step_forward
from solutions.lstm import lstm_backward, lstm_forward, lstm_step_backward, lstm_step_forward
from solutions.modules import LSTM, GRUCell, LSTMCell
from solutions.rnn import (
    birnn_backward,
    birnn_forward,
    clip_grad_norm,
    rnn_backward,
    rnn_forward,
    rnn_step_backward,
    rnn_step_forward,
)

__all__ = [
    "CTCLoss",
    "ConvLSTM",
    "ConvLSTMCell",
    "EncoderForecaster",
    "GRUCell",
    "LSTM",
    "LSTMCell",
    "birnn_backward",
    "birnn_forward",
    "clip_grad_norm",
    "ctc_backward",
    "ctc_collapse",
    "ctc_forward",
    "ctc_grad",
    "ctc_loss",
    "ctc_loss_batch",
    "ctc_loss_torch",
    "eval_numerical_gradient",
    "eval_numerical_gradient_array",
    "extend_with_blanks",
    "greedy_decode",
    "gru_backward",
    "gru_forward",
    "gru_step_backward",
    "gru_step_forward",
    "lstm_backward",
    "lstm_forward",
    "lstm_step_backward",
    "lstm_step_forward",
    "prefix_beam_search",
    "rel_error",
    "rnn_backward",
    "rnn_forward",
    "rnn_step_backward",
    "rnn_step_forward",
]
