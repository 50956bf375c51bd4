"""CRNN: a convolutional recurrent network for text recognition with CTC (Shi, Bai & Yao 2017).

The network reads an image of a line of text from left to right:

1. a small CNN (a strided convolution, then convolutions and max-pooling) turns the
   ``(N, 1, H, W)`` image into a feature map whose height is pooled away and whose width is
   reduced 4 times, so each of the ``T = W / 4`` columns describes a vertical
   slice of the image;
2. a bidirectional LSTM reads the ``T`` column features, so each frame sees the whole line;
3. a linear layer gives the scores of the ``C`` classes (blank included) at each frame.

The output is laid out ``(T, N, C)``, as ``torch.nn.functional.ctc_loss`` wants it. Sizes are
chosen for 32-pixel-high images of short digit strings, small enough to train on a CPU in minutes.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_block(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class CRNN(nn.Module):
    """CNN features, bidirectional LSTM, linear classifier.

    Args:
        num_classes: ``C``, the number of classes including the CTC blank.
        height: image height ``H``, a multiple of 16.
        channels: output channels of the four convolution stages.
        hidden_size: hidden size of each direction of the LSTM.
        lstm: the LSTM class, ``torch.nn.LSTM`` or ``solutions.modules.LSTM`` (same interface).

    Shapes: input ``(N, 1, H, W)`` with ``W`` a multiple of 4; output logits ``(T, N, C)``,
    ``T = W // 4``.
    """

    def __init__(
        self,
        num_classes: int,
        height: int = 32,
        channels: tuple[int, int, int, int] = (16, 32, 48, 64),
        hidden_size: int = 96,
        lstm: type[nn.Module] = nn.LSTM,
    ) -> None:
        super().__init__()
        if height % 16:
            raise ValueError(f"height: expected a multiple of 16, got {height}")
        c1, c2, c3, c4 = channels
        self.cnn = nn.Sequential(
            # strided: full-resolution feature maps were the costliest part on a CPU
            _conv_block(1, c1, stride=2),  # (H/2, W/2)
            _conv_block(c1, c2),
            nn.MaxPool2d(2),  # (H/4, W/4)
            _conv_block(c2, c3),
            _conv_block(c3, c3),
            nn.MaxPool2d((2, 1)),  # (H/8, W/4): pool height only, keep the frame rate
            _conv_block(c3, c4),
            nn.MaxPool2d((2, 1)),  # (H/16, W/4)
        )
        self.proj = nn.Linear(c4 * (height // 16), hidden_size)
        self.rnn = lstm(hidden_size, hidden_size, bidirectional=True)
        self.head = nn.Linear(2 * hidden_size, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != 1 or images.shape[-1] % 4:
            raise ValueError(
                f"images: expected shape (N, 1, H, W) with W a multiple of 4, "
                f"got {tuple(images.shape)}"
            )
        f = self.cnn(images)  # (N, c4, H/16, T)
        f = f.flatten(1, 2).permute(2, 0, 1)  # (T, N, c4 * H/16)
        f = torch.relu(self.proj(f))  # (T, N, hidden)
        f, _ = self.rnn(f)  # (T, N, 2 * hidden)
        return self.head(f)  # (T, N, C)
