"""A larger CRNN that starts out computing exactly what a trained smaller one computes.

Training a larger OCR from scratch on a 2-core CPU would take sessions to catch up with the
shipped one; widened from it (more CNN channels, a larger LSTM), it starts where the small model
is and spends its training on what the added units can learn. Every weight of the small model is
copied to its place; the added units get the large model's fresh initialisation, and every weight
through which an added unit would reach an old one (its column in the next layer, the LSTM's
recurrent and inter-layer inputs, the output layer) starts at zero, so the outputs are unchanged
until training moves them.
"""
from __future__ import annotations

import torch
from torch import nn

from .model import CRNN


def _copy_conv(src: nn.Conv2d, dst: nn.Conv2d) -> None:
    co, ci = src.weight.shape[:2]
    dst.weight[:co, :ci] = src.weight
    dst.weight[:co, ci:] = 0.0  # old channels never read the new ones


def _copy_bn(src: nn.BatchNorm2d, dst: nn.BatchNorm2d) -> None:
    n = src.num_features
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(dst, name)[:n] = getattr(src, name)
    dst.num_batches_tracked.copy_(src.num_batches_tracked)


def _gate_rows(hs: int, hb: int) -> torch.Tensor:
    """Rows of the large LSTM's stacked gates (i, f, g, o) that hold the small one's."""
    return torch.cat([torch.arange(hs) + k * hb for k in range(4)])


def _bi_cols(hs: int, hb: int) -> torch.Tensor:
    """Columns of a [forward | backward] concatenation that hold the small one's units."""
    return torch.cat([torch.arange(hs), torch.arange(hs) + hb])


def widen(small: CRNN, big: CRNN) -> None:
    """Copies ``small`` into ``big`` (same layers, each at least as wide) in place."""
    s_mods, b_mods = list(small.cnn), list(big.cnn)
    if len(s_mods) != len(b_mods):
        raise ValueError("the two CRNNs have different layer stacks")
    hs, hb = small.rnn.hidden_size, big.rnn.hidden_size
    if hb < hs or big.fc.out_features != small.fc.out_features:
        raise ValueError("the large CRNN must be at least as wide and have the same charset")
    rows = _gate_rows(hs, hb)
    with torch.no_grad():
        for s, b in zip(s_mods, b_mods):
            if isinstance(s, nn.Conv2d):
                if b.weight.shape[0] < s.weight.shape[0] or b.weight.shape[1] < s.weight.shape[1]:
                    raise ValueError("the large CRNN must be at least as wide in every layer")
                _copy_conv(s, b)
            elif isinstance(s, nn.BatchNorm2d):
                _copy_bn(s, b)
        for layer in range(small.rnn.num_layers):
            for sfx in ("", "_reverse"):
                w_ih_s = getattr(small.rnn, f"weight_ih_l{layer}{sfx}")
                w_ih_b = getattr(big.rnn, f"weight_ih_l{layer}{sfx}")
                # inputs: CNN channels (layer 0) or the lower layer's [forward | backward] units
                cols = torch.arange(w_ih_s.shape[1]) if layer == 0 else _bi_cols(hs, hb)
                w_ih_b[rows] = 0.0
                w_ih_b[rows[:, None], cols[None, :]] = w_ih_s
                w_hh_s = getattr(small.rnn, f"weight_hh_l{layer}{sfx}")
                w_hh_b = getattr(big.rnn, f"weight_hh_l{layer}{sfx}")
                w_hh_b[rows] = 0.0
                w_hh_b[rows[:, None], torch.arange(hs)[None, :]] = w_hh_s
                for kind in ("bias_ih", "bias_hh"):
                    getattr(big.rnn, f"{kind}_l{layer}{sfx}")[rows] = getattr(small.rnn, f"{kind}_l{layer}{sfx}")
        big.fc.weight.zero_()
        big.fc.weight[:, _bi_cols(hs, hb)] = small.fc.weight
        big.fc.bias.copy_(small.fc.bias)
