"""FC-LSTM encoder-forecaster: the fully connected baseline of Shi et al. 2015 (Table 1).

Each frame is flattened into one vector, so the LSTM sees no spatial structure: every hidden unit
is connected to every pixel. The architecture mirrors the ConvLSTM encoding-forecasting network
(Srivastava et al. 2015; Shi et al. 2015, Sec. 3.3):

- the **encoder**, a stack of LSTM layers, reads the ``T`` input frames;
- the **forecaster**, a second stack, starts from the encoder's final states (layer by layer) and
  runs ``K`` more steps with no input (unconditioned);
- the hidden states of all forecaster layers, concatenated, are mapped by one linear layer to the
  logits of every pixel of each future frame.

With binary targets (pixel intensities in ``[0, 1]``) the logits go into
``binary_cross_entropy_with_logits``, the loss of Shi et al.'s Table 1.
"""

from __future__ import annotations

import torch
from torch import nn


class FCLSTM(nn.Module):
    """Encoder-forecaster with fully connected LSTM layers.

    Args:
        frame_shape: ``(C, H, W)`` of one frame.
        hidden_sizes: hidden size of each layer (the same for encoder and forecaster).
        future: ``K``, the number of frames to predict.
        lstm: the LSTM class, ``torch.nn.LSTM`` or ``solutions.modules.LSTM``.

    Shapes: input ``(N, T, C, H, W)``; output logits ``(N, K, C, H, W)``.
    """

    def __init__(
        self,
        frame_shape: tuple[int, int, int],
        hidden_sizes: tuple[int, ...] = (256, 256),
        future: int = 10,
        lstm: type[nn.Module] = nn.LSTM,
    ) -> None:
        super().__init__()
        if not hidden_sizes:
            raise ValueError("hidden_sizes: expected at least one layer, got ()")
        self.frame_shape = tuple(frame_shape)
        self.future = future
        pixels = frame_shape[0] * frame_shape[1] * frame_shape[2]
        inputs = [pixels, *hidden_sizes[:-1]]
        self.encoder = nn.ModuleList(
            lstm(d, h, batch_first=True) for d, h in zip(inputs, hidden_sizes, strict=True)
        )
        self.forecaster = nn.ModuleList(
            lstm(d, h, batch_first=True) for d, h in zip(inputs, hidden_sizes, strict=True)
        )
        self.head = nn.Linear(sum(hidden_sizes), pixels)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.dim() != 5 or tuple(frames.shape[2:]) != self.frame_shape:
            raise ValueError(
                f"frames: expected shape (N, T, {', '.join(map(str, self.frame_shape))}), "
                f"got {tuple(frames.shape)}"
            )
        n = frames.shape[0]
        x = frames.flatten(2)  # (N, T, C*H*W)
        states = []
        for layer in self.encoder:
            x, state = layer(x)  # (N, T, h)
            states.append(state)
        x = frames.new_zeros(n, self.future, self.encoder[0].input_size)  # no input
        outputs = []
        for layer, state in zip(self.forecaster, states, strict=True):
            x, _ = layer(x, state)  # (N, K, h)
            outputs.append(x)
        logits = self.head(torch.cat(outputs, dim=-1))  # (N, K, C*H*W)
        return logits.view(n, self.future, *self.frame_shape)  # (N, K, C, H, W)
