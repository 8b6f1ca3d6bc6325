"""The semi-supervised labelling rule: a text is kept only when every model reads every crop
the same, confidently, and (unless any format is allowed) it fits a plate format."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("torch")  # plateread.training needs the [train] extra

from plateread.formats import RegionDecoder  # noqa: E402
from plateread.training.pseudo_labels import agreed  # noqa: E402


def model(*reads: tuple[str, float]):
    return SimpleNamespace(recognize=lambda crops: [SimpleNamespace(text=t, score=s) for t, s in reads])


CROPS = [np.zeros((20, 60, 3), np.uint8)] * 2


@pytest.mark.parametrize("models, tagger, expect", [
    ([model(("AB123CD", 0.9), ("AB123CD", 0.85))], RegionDecoder(None), "AB123CD"),
    ([model(("AB123CD", 0.9), ("AB123CD", 0.6))], RegionDecoder(None), None),          # one read unsure
    ([model(("AB123CD", 0.9), ("AB123CO", 0.9))], RegionDecoder(None), None),          # the cuts disagree
    ([model(("AB123CD", 0.9), ("AB123CD", 0.9)), model(("AB123CO", 0.9), ("AB123CO", 0.9))], None, None),
    ([model(("XQXQXQXQXQXQ", 0.9), ("XQXQXQXQXQXQ", 0.9))], RegionDecoder(None), None),  # no format fits
    ([model(("XQXQXQXQXQXQ", 0.9), ("XQXQXQXQXQXQ", 0.9))], None, "XQXQXQXQXQXQ"),       # --any-format
    ([model(("", 0.9), ("", 0.9))], None, None),
])
def test_agreed(models, tagger, expect):
    assert agreed(models, tagger, CROPS, 0.8) == expect
