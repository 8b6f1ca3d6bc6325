"""The morphology plate locator of the PyImageSearch "OpenCV ANPR with Tesseract" tutorial.

Kept deliberately faithful to the tutorial (kernel sizes, order of operations, first-match
aspect-ratio pruning) so that it serves as a known baseline; see docs/CLASSIC.md for its limits.
"""
from __future__ import annotations

import cv2
import numpy as np

from ...debug import DebugSink
from ...imaging import as_bgr
from ...types import Box, Detection

#: 13 wide × 5 tall: wider than a character stroke, so closing fills strokes and blackhat keeps them.
RECT_KERNEL = cv2.getStructuringElement(cv2.MORPH_RECT, (13, 5))
#: Small closing that removes specks before the light-region threshold.
SQUARE_KERNEL = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))


def _gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def _otsu(image: np.ndarray) -> np.ndarray:
    return cv2.threshold(image, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)[1]


def blackhat(gray: np.ndarray) -> np.ndarray:
    """Dark, thin structures (characters on a light plate) become bright; everything else dark."""
    return cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, RECT_KERNEL)


def light_mask(gray: np.ndarray) -> np.ndarray:
    """Otsu mask of the light regions, used to keep only dark text that sits on a light surface."""
    return _otsu(cv2.morphologyEx(gray, cv2.MORPH_CLOSE, SQUARE_KERNEL))


def gradient_x(black: np.ndarray) -> np.ndarray:
    """Scharr x-gradient magnitude rescaled to 0–255: rows of characters give dense vertical edges."""
    grad = np.absolute(cv2.Sobel(black, ddepth=cv2.CV_32F, dx=1, dy=0, ksize=-1))
    lo, hi = float(grad.min()), float(grad.max())
    if hi <= lo:  # flat image: the tutorial would divide by zero here
        return np.zeros(black.shape, np.uint8)
    return (255 * ((grad - lo) / (hi - lo))).astype(np.uint8)


class ClassicDetector:
    """Finds at most one dark-on-light plate whose text region has aspect ratio in [min_ar, max_ar].

    ``keep`` bounds how many of the largest blobs are examined; the first (largest) one whose
    bounding rectangle passes the aspect test wins, as in the tutorial.

    Detection score is the contour's fill of its bounding rectangle (contour area / rect area):
    near 1 for the solid rectangular blob a row of characters closes into, lower for ragged blobs.
    It is a shape measure, not a calibrated probability.
    """

    name = "classic"

    def __init__(self, *, keep: int = 5, min_ar: float = 4.0, max_ar: float = 5.0) -> None:
        if int(keep) != keep or keep < 1:
            raise ValueError(f"keep must be an integer >= 1, got {keep!r}")
        if not (0 < min_ar <= max_ar):
            raise ValueError(
                f"aspect ratios must satisfy 0 < min_ar <= max_ar, got min_ar={min_ar!r}, max_ar={max_ar!r}"
            )
        self.keep = int(keep)
        self.min_ar = float(min_ar)
        self.max_ar = float(max_ar)

    def __repr__(self) -> str:
        return f"ClassicDetector(keep={self.keep}, min_ar={self.min_ar}, max_ar={self.max_ar})"

    def candidates(self, gray: np.ndarray, debug: DebugSink | None = None) -> list[np.ndarray]:
        """The ``keep`` largest external contours of the final mask, largest first."""
        black = blackhat(gray)
        light = light_mask(gray)
        grad = gradient_x(black)
        closed = cv2.morphologyEx(cv2.GaussianBlur(grad, (5, 5), 0), cv2.MORPH_CLOSE, RECT_KERNEL)
        thresh = _otsu(closed)
        opened = cv2.dilate(cv2.erode(thresh, None, iterations=2), None, iterations=2)
        final = cv2.bitwise_and(opened, opened, mask=light)
        final = cv2.erode(cv2.dilate(final, None, iterations=2), None, iterations=1)
        if debug is not None:
            for name, stage in (
                ("blackhat", black), ("light_mask", light), ("gradient", grad), ("gradient_closed", closed),
                ("gradient_thresh", thresh), ("erode_dilate", opened), ("final_mask", final),
            ):
                debug.add(name, stage)
        contours, _ = cv2.findContours(final, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        return sorted(contours, key=cv2.contourArea, reverse=True)[: self.keep]

    def detect(self, image: np.ndarray, debug: DebugSink | None = None) -> list[Detection]:
        gray = _gray(image)
        contours = self.candidates(gray, debug)
        chosen: np.ndarray | None = None
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            if h > 0 and self.min_ar <= w / h <= self.max_ar:
                chosen = contour
                break
        bgr = as_bgr(image)
        if debug is not None:
            canvas = bgr.copy()
            cv2.drawContours(canvas, contours, -1, (0, 0, 255), 2)
            if chosen is not None:
                cv2.drawContours(canvas, [chosen], -1, (0, 255, 0), 3)
            debug.add("candidates", canvas)
        if chosen is None:
            return []
        x, y, w, h = cv2.boundingRect(chosen)
        crop = bgr[y:y + h, x:x + w].copy()
        if debug is not None:
            debug.add("roi", crop)
        fill = min(1.0, cv2.contourArea(chosen) / float(w * h))
        return [Detection(box=Box(x, y, x + w, y + h), score=fill, crop=crop)]
