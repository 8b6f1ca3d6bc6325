"""Read scores that mean what they say: a logistic map fitted on held-out real plates.

The raw read score (beam share × weakest character) ranks reads well but is overconfident on
real crops: many wrong reads sit above 0.9. The model card may carry a calibration fitted on
held-out (never test) crops by ``python -m plateread.training.calibrate_ocr``; the score then
becomes P(read right) = sigmoid(w · [logit score, logit weakest character] + b), so a read
scored 0.9 is right about nine times in ten. Numpy only: it runs at inference.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

_EPS = 1e-6


def features(score: float, char_scores: Sequence[float]) -> np.ndarray:
    weakest = min(char_scores) if len(char_scores) else score
    s = np.clip(np.array([score, weakest], np.float64), _EPS, 1 - _EPS)
    return np.log(s / (1 - s))


@dataclass(frozen=True)
class Calibration:
    weights: tuple[float, float]
    bias: float

    @classmethod
    def from_card(cls, card: dict[str, Any]) -> "Calibration | None":
        c = card.get("calibration")
        if not c:
            return None
        return cls((float(c["weights"][0]), float(c["weights"][1])), float(c["bias"]))

    def __call__(self, score: float, char_scores: Sequence[float]) -> float:
        z = float(np.dot(self.weights, features(score, char_scores)) + self.bias)
        return float(1.0 / (1.0 + np.exp(-z)))


def fit(feats: np.ndarray, correct: np.ndarray, l2: float = 1e-3, iters: int = 50) -> Calibration:
    """Logistic regression by Newton's method (IRLS) with a small ridge: 2 features, no sklearn."""
    x = np.hstack([feats, np.ones((len(feats), 1))])
    y = correct.astype(np.float64)
    w = np.zeros(x.shape[1])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-x @ w))
        grad = x.T @ (p - y) + l2 * np.r_[w[:-1], 0]
        hess = (x * (p * (1 - p))[:, None]).T @ x + l2 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return Calibration((float(w[0]), float(w[1])), float(w[2]))
