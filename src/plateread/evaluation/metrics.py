"""Scoring reads against labels, by the convention of ``shared/data/README.md``.

A labelled plate is read correctly when some returned read has exactly its text (after
normalisation) and, where the label has a box, a box overlapping it with IoU >= 0.3.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..text import normalize_plate
from ..types import ImageResult, PlateRead
from .dataset import LabelledPlate, Sample

READ_IOU = 0.3
DETECT_IOU = 0.5


@dataclass(frozen=True)
class PlateOutcome:
    """How one labelled plate fared."""

    label: str | None
    read: str | None        # text of the best-overlapping returned read, if any
    correct: bool           # top-1 exact, box overlapping
    in_top_n: bool          # label among the candidates of an overlapping read
    detected: bool | None   # a returned box with IoU >= 0.5; None where the label has no box


@dataclass(frozen=True)
class ImageOutcome:
    sample: Sample
    result: ImageResult
    plates: tuple[PlateOutcome, ...]
    false_reads: int  # returned reads whose text matches no labelled plate of the image

    def to_dict(self) -> dict[str, Any]:
        d = self.result.to_dict()
        d["image"] = self.sample.name
        d["labels"] = [
            {"text": p.label, "read": p.read, "correct": p.correct, "in_top_n": p.in_top_n,
             "detected": p.detected}
            for p in self.plates
        ]
        d["false_reads"] = self.false_reads
        return d


@dataclass(frozen=True)
class EvalMetrics:
    images: int
    plates: int             # labelled plates with text
    correct: int
    top_n: int
    boxed: int              # labelled plates with a box
    detected: int
    false_reads: int
    failed_images: int      # inputs that could not be read at all
    median_ms: float
    p95_ms: float

    @property
    def accuracy(self) -> float:
        return self.correct / self.plates if self.plates else float("nan")

    @property
    def top_n_accuracy(self) -> float:
        return self.top_n / self.plates if self.plates else float("nan")

    @property
    def detection_recall(self) -> float:
        return self.detected / self.boxed if self.boxed else float("nan")

    @property
    def false_reads_per_image(self) -> float:
        return self.false_reads / self.images if self.images else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images, "plates": self.plates, "correct": self.correct,
            "accuracy": _r(self.accuracy), "top_n_accuracy": _r(self.top_n_accuracy),
            "detection_recall": _r(self.detection_recall), "detected": self.detected,
            "boxed": self.boxed, "false_reads": self.false_reads,
            "false_reads_per_image": _r(self.false_reads_per_image),
            "failed_images": self.failed_images,
            "median_ms": round(self.median_ms, 1), "p95_ms": round(self.p95_ms, 1),
        }


def _r(x: float) -> float | None:
    return None if x != x else round(x, 4)


def _overlaps(read: PlateRead, label: LabelledPlate, threshold: float) -> bool:
    return label.box is None or read.box.iou(label.box) >= threshold


def exact_match(read: str, label: str) -> bool:
    """The scoring rule of ``shared/data/README.md``: equal after normalising (label normalised)."""
    return normalize_plate(read) == label


def score_plate(label: LabelledPlate, reads: Sequence[PlateRead],
                match: Callable[[str, str], bool] = exact_match) -> PlateOutcome:
    """``match(read text, label text)``: the rule for a right read (validation passes one where
    a ``?`` in the label matches any character)."""
    near = [r for r in reads if _overlaps(r, label, READ_IOU)]
    text = label.text
    correct = bool(text) and any(match(r.plate, text) for r in near)
    in_top_n = bool(text) and any(
        match(c.plate, text) for r in near for c in (r.candidates or ())
    ) or correct
    if label.box is not None:
        detected: bool | None = any(r.box.iou(label.box) >= DETECT_IOU for r in reads)
        best = max(reads, key=lambda r: r.box.iou(label.box), default=None) if near else None
    else:
        detected = None
        best = near[0] if near else None
    if correct:
        read = text
    else:
        read = best.plate if best is not None else None
    return PlateOutcome(text, read, correct, in_top_n, detected)


def false_reads_of(sample: Sample, result: ImageResult) -> list[tuple[PlateRead, bool]]:
    """The returned reads that count as false, each with whether it lies on a labelled plate (a
    misread) rather than elsewhere (a plate the labels leave out, or a true false alarm). With
    text labels a read is false when its text matches none; with boxes only, when it overlaps no
    labelled plate."""
    labels = {p.text for p in sample.plates if p.text}
    by_text = bool(labels) or not sample.plates
    out = []
    for r in result.results:
        on_plate = any(p.box is not None and r.box.iou(p.box) >= READ_IOU for p in sample.plates)
        if (normalize_plate(r.plate) not in labels) if by_text else not on_plate:
            out.append((r, on_plate))
    return out


def score_image(sample: Sample, result: ImageResult) -> ImageOutcome:
    plates = tuple(score_plate(label, result.results) for label in sample.plates)
    return ImageOutcome(sample, result, plates, len(false_reads_of(sample, result)))


def summarize(outcomes: Iterable[ImageOutcome]) -> EvalMetrics:
    outcomes = list(outcomes)
    plates = [p for o in outcomes for p in o.plates if p.label]
    boxed = [p for o in outcomes for p in o.plates if p.detected is not None]
    times = np.array([o.result.processing_time for o in outcomes if o.result.ok] or [float("nan")])
    return EvalMetrics(
        images=len(outcomes),
        plates=len(plates),
        correct=sum(p.correct for p in plates),
        top_n=sum(p.in_top_n for p in plates),
        boxed=len(boxed),
        detected=sum(bool(p.detected) for p in boxed),
        false_reads=sum(o.false_reads for o in outcomes),
        failed_images=sum(not o.result.ok for o in outcomes),
        median_ms=float(np.median(times)),
        p95_ms=float(np.percentile(times, 95)),
    )


def auroc(scores: list[float], correct: list[bool]) -> float:
    """Probability that a right read scores above a wrong one (ties count half)."""
    pos = [s for s, c in zip(scores, correct) if c]
    neg = [s for s, c in zip(scores, correct) if not c]
    if not pos or not neg:
        return float("nan")
    p, n = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float(((p > n).sum() + 0.5 * (p == n).sum()) / (len(pos) * len(neg)))
