"""The read-score calibration: a logistic map fitted on held-out reads."""
import numpy as np

from plateread.engines.crnn.calibration import Calibration, features, fit


def test_fit_recovers_frequencies_and_keeps_order():
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.05, 0.999, 4000)
    weakest = np.clip(raw + rng.normal(0, 0.02, raw.size), 0.01, 0.999)
    truth = raw ** 3  # raw scores are overconfident: a read at 0.9 is right 73% of the time
    ok = rng.uniform(size=raw.size) < truth
    cal = fit(np.stack([features(s, [w]) for s, w in zip(raw, weakest)]), ok)
    cooked = np.array([cal(s, [w]) for s, w in zip(raw, weakest)])
    for lo, hi in ((0.85, 0.95), (0.45, 0.55)):
        sel = (raw > lo) & (raw < hi)
        assert abs(cooked[sel].mean() - ok[sel].mean()) < 0.06
    order = np.argsort(raw)
    assert np.mean(np.diff(cooked[order]) >= -0.05) > 0.95  # monotone up to the weakest-char noise


def test_card_round_trip():
    assert Calibration.from_card({}) is None
    c = Calibration.from_card({"calibration": {"weights": [1.0, 0.0], "bias": 0.0}})
    assert abs(c(0.8, [0.9]) - 0.8) < 1e-6  # the identity map on the score
