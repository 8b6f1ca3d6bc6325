"""Result types. All frozen: a read, once made, is a record and never changes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in image pixels, corners inclusive-exclusive like slicing."""

    xmin: int
    ymin: int
    xmax: int
    ymax: int

    @property
    def width(self) -> int:
        return self.xmax - self.xmin

    @property
    def height(self) -> int:
        return self.ymax - self.ymin

    @property
    def area(self) -> int:
        return max(0, self.width) * max(0, self.height)

    @classmethod
    def from_xywh(cls, x: float, y: float, w: float, h: float) -> "Box":
        return cls(round(x), round(y), round(x + w), round(y + h))

    def iou(self, other: "Box") -> float:
        ix = max(0, min(self.xmax, other.xmax) - max(self.xmin, other.xmin))
        iy = max(0, min(self.ymax, other.ymax) - max(self.ymin, other.ymin))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def to_dict(self) -> dict[str, int]:
        return {"xmin": self.xmin, "ymin": self.ymin, "xmax": self.xmax, "ymax": self.ymax}


@dataclass(frozen=True)
class Candidate:
    """One alternative reading of a plate."""

    plate: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"plate": self.plate, "score": round(float(self.score), 4)}


@dataclass(frozen=True, eq=False)
class Detection:
    """A located plate: its box, the detector's confidence and the crop handed to OCR.

    ``crop`` is BGR; a detector that knows the plate corners hands over the rectified plate.
    """

    box: Box
    score: float
    crop: np.ndarray = field(repr=False)
    corners: tuple[tuple[float, float], ...] | None = None


@dataclass(frozen=True)
class Recognition:
    """What a recognizer made of one crop."""

    text: str
    score: float
    candidates: tuple[Candidate, ...] = ()
    char_scores: tuple[float, ...] = ()
    region: str | None = None       # plate-format region the text fits, when formats were used
    region_score: float | None = None


@dataclass(frozen=True)
class PlateRead:
    """One plate found in an image and read."""

    plate: str
    score: float
    box: Box
    candidates: tuple[Candidate, ...] = ()
    detection_score: float = 1.0
    char_scores: tuple[float, ...] = ()
    region: str | None = None
    region_score: float | None = None
    corners: tuple[tuple[float, float], ...] | None = None  # TL, TR, BR, BL when the detector gives them

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "plate": self.plate,
            "score": round(float(self.score), 4),
            "box": self.box.to_dict(),
            "candidates": [c.to_dict() for c in self.candidates],
            "detection_score": round(float(self.detection_score), 4),
        }
        if self.char_scores:
            d["char_scores"] = [round(float(s), 4) for s in self.char_scores]
        if self.region is not None:
            d["region"] = self.region
        if self.region_score is not None:
            d["region_score"] = round(float(self.region_score), 4)
        if self.corners:
            d["corners"] = [[round(float(x), 1), round(float(y), 1)] for x, y in self.corners]
        return d


@dataclass(frozen=True)
class ImageResult:
    """Everything read from one image, or why nothing could be."""

    image: str
    width: int
    height: int
    processing_time: float  # milliseconds
    results: tuple[PlateRead, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "width": self.width,
            "height": self.height,
            "processing_time": round(self.processing_time, 2),
            "error": self.error,
            "results": [r.to_dict() for r in self.results],
        }
