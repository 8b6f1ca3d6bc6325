"""A deterministic stand-in engine, so CLI and scoring tests do not depend on OCR quality.

The detector reports the brightest large rectangle; the recognizer reads text written into the
crop's first pixel row as ASCII codes (tests draw their 'plates' that way), falling back to 'FAKE1'.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from plateread import registry
from plateread.types import Box, Candidate, Detection, Recognition


class FakeDetector:
    name = "fake"

    def __init__(self, *, threshold: int = 200) -> None:
        self.threshold = threshold

    def detect(self, image: np.ndarray, debug=None) -> list[Detection]:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        mask = (gray >= self.threshold).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        out = []
        for c in sorted(contours, key=cv2.contourArea, reverse=True)[:3]:
            x, y, w, h = cv2.boundingRect(c)
            if w * h >= 100:
                out.append(Detection(Box(x, y, x + w, y + h), 0.9, image[y:y + h, x:x + w].copy()))
        if debug is not None:
            debug.add("mask", mask * 255)
        return out


def encode_text(plate: np.ndarray, text: str) -> None:
    """Writes ``text`` into the plate's first row so FakeRecognizer can read it back."""
    for i, ch in enumerate(text):
        plate[0, i] = 200 + (ord(ch) - 48) % 55  # stays bright for the detector


def decode_text(crop: np.ndarray) -> str:
    row = crop[0, :, 0].astype(int)
    chars = []
    for v in row:
        code = v - 200 + 48
        if not (48 <= code <= 90) or (58 <= code <= 64):
            break
        chars.append(chr(code))
    return "".join(chars)


class FakeRecognizer:
    name = "fake"

    def __init__(self, *, fallback: str = "FAKE1") -> None:
        self.fallback = fallback

    def recognize(self, crops: Sequence[np.ndarray], debug=None) -> list[Recognition]:
        out = []
        for crop in crops:
            text = decode_text(crop) or self.fallback
            out.append(Recognition(text, 0.8, (Candidate(text, 0.8), Candidate(text + "X", 0.1)), (0.8,) * len(text)))
        return out


registry.register_detector("fake", "fakes:FakeDetector")
registry.register_recognizer("fake", "fakes:FakeRecognizer")
registry.register_engine("fake", "fake", "fake", "test stand-in")
