"""Widening the CRNN keeps what it computes: a larger model starts where the trained one is."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")  # plateread.training needs the [train] extra

from plateread.training.model import CRNN  # noqa: E402
from plateread.training.widen import widen  # noqa: E402


def _trained_looking(model: CRNN) -> CRNN:
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def test_the_widened_model_computes_what_the_small_one_did():
    small = _trained_looking(CRNN(37, hidden=24, widths=(8, 16, 24, 32, 40)))
    big = CRNN(37, hidden=40, widths=(12, 24, 32, 48, 56)).eval()
    widen(small, big)
    x = torch.rand(3, 1, 64, 192)
    with torch.no_grad():
        assert torch.allclose(small(x), big(x), atol=1e-5)
    # the added units learn: first the zeroed weights that connect them, then, once those moved,
    # the units themselves (the first convolution's new channels)
    big.train()
    opt = torch.optim.SGD(big.parameters(), lr=0.1)
    (-big(x)[..., 1].sum()).backward()  # a loss: raise class 1
    assert big.fc.weight.grad[:, 24:40].abs().sum() > 0 and big.cnn[0].weight.grad[8:].abs().sum() == 0
    opt.step()
    opt.zero_grad()
    (-big(x)[..., 1].sum()).backward()  # a loss: raise class 1
    assert big.cnn[0].weight.grad[8:].abs().sum() > 0


def test_a_narrower_target_is_refused():
    with pytest.raises(ValueError):
        widen(CRNN(37, hidden=24, widths=(8, 16, 24, 32, 40)), CRNN(37, hidden=24, widths=(8, 16, 16, 32, 40)))
