"""The torch CRNN. Two-line plates are read without a splitter: the CNN keeps two feature rows
(top half, bottom half, each seeing the full height) and the BiLSTM reads row 0 then row 1, so
CTC emits the top line before the bottom line."""
from __future__ import annotations

import torch
from torch import nn

DEFAULT_CHARSET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: CNN channels of the five stages of the shipped model.
DEFAULT_WIDTHS = (16, 32, 48, 96, 160)


def _block(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


class CRNN(nn.Module):
    """[N,1,64,192] in [0,1] -> [N,T=96,C] log-probabilities (blank = 0)."""

    def __init__(self, num_classes: int, height: int = 64, width: int = 192, hidden: int = 96,
                 widths: tuple[int, ...] = DEFAULT_WIDTHS) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = widths
        self.cnn = nn.Sequential(
            *_block(1, c1, stride=2),  # 32 x 96; a strided stem: 2x cheaper on CPU than conv+pool
            *_block(c1, c2), nn.MaxPool2d(2),                      # 16 x 48
            *_block(c2, c3), *_block(c3, c3), nn.MaxPool2d((2, 1)),  # 8 x 48
            *_block(c3, c4), *_block(c4, c4), nn.MaxPool2d((2, 1)),  # 4 x 48
            *_block(c4, c5), nn.MaxPool2d((2, 1)),                 # 2 x 48
        )
        self.rnn = nn.LSTM(c5, hidden, num_layers=2, bidirectional=True, batch_first=True,
                           dropout=0.1)
        self.fc = nn.Linear(2 * hidden, num_classes)
        self.height, self.width, self.widths = height, width, tuple(widths)

    @classmethod
    def from_config(cls, num_classes: int, config: dict) -> "CRNN":
        """The model a checkpoint's ``config`` describes (older checkpoints name no widths, or no
        input size: the defaults they were trained with)."""
        return cls(num_classes, height=config.get("height", 64), width=config.get("width", 192),
                   hidden=config.get("hidden", 96), widths=tuple(config.get("widths", DEFAULT_WIDTHS)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.cnn(x)                                  # N, C, 2, W'
        n, c, h, w = f.shape
        f = f.permute(0, 2, 3, 1).reshape(n, h * w, c)   # row 0 frames, then row 1 frames
        y, _ = self.rnn(f)
        return self.fc(y).log_softmax(-1)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
