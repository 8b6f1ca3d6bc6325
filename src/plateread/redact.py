"""Blurring (or pixelating) every plate in photos and videos, for publishing footage.

Recall comes first: a plate left readable is a leak, a blurred bumper costs nothing. So the boxes
are the *detector's* (every detection, whether or not the OCR could read it), found with a low
threshold (``REDACTION_THRESHOLD`` for the learned detector), grown by a margin that covers the
plate's surround (frame, dealer sticker), and in videos held for a few frames so that a frame the
detector misses stays blurred.
"""
from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from .imaging import load_image
from .reader import Reader
from .types import Box

#: Detection threshold the learned detector redacts with (its tuned one is 0.5): errs toward blurring.
REDACTION_THRESHOLD = 0.15
#: Each box grows by this much of its width and height on every side.
DEFAULT_MARGIN = 0.25
#: Video: a box stays redacted for this many frames after its last detection.
DEFAULT_HOLD = 5


@dataclass(frozen=True)
class RedactStats:
    frames: int = 0
    boxes: int = 0


def plate_boxes(reader: Reader, image: np.ndarray) -> list[Box]:
    """Every box the reader's detector finds, OCR or not (``Reader.read`` drops unread ones)."""
    return [d.box for d in reader.detector.detect(image)]


def grow(box: Box, margin: float, width: int, height: int) -> tuple[int, int, int, int]:
    """``box`` grown by ``margin`` of its size on each side, clipped: (x0, y0, x1, y1)."""
    dx, dy = int(round(box.width * margin)) + 1, int(round(box.height * margin)) + 1
    return (max(0, box.xmin - dx), max(0, box.ymin - dy), min(width, box.xmax + dx), min(height, box.ymax + dy))


def redact_image(image: np.ndarray, boxes: Iterable[Box], *, margin: float = DEFAULT_MARGIN,
                 pixelate: bool = False) -> np.ndarray:
    """A copy of ``image`` with each (grown) box blurred beyond reading, or pixelated."""
    out = image.copy()
    h, w = out.shape[:2]
    for box in boxes:
        x0, y0, x1, y1 = grow(box, margin, w, h)
        if x1 <= x0 or y1 <= y0:
            continue
        region = out[y0:y1, x0:x1]
        rh, rw = region.shape[:2]
        # a fixed number of cells across the region leaves no character stroke: ~6 across, 2 down
        small = cv2.resize(region, (max(1, rw // max(1, rw // 6)), max(1, rh // max(1, rh // 2))),
                           interpolation=cv2.INTER_AREA)
        if pixelate:
            region[:] = cv2.resize(small, (rw, rh), interpolation=cv2.INTER_NEAREST)
        else:
            smooth = cv2.resize(small, (rw, rh), interpolation=cv2.INTER_LINEAR)
            region[:] = cv2.GaussianBlur(smooth, (0, 0), sigmaX=max(1.0, min(rw, rh) / 4))
    return out


def redact_photo(reader: Reader, src: str | os.PathLike, dst: str | os.PathLike, *,
                 margin: float = DEFAULT_MARGIN, pixelate: bool = False) -> int:
    """Writes a redacted copy of the photo ``src`` to ``dst``; returns the boxes redacted."""
    image = load_image(src, max_pixels=reader.max_pixels)
    boxes = plate_boxes(reader, image)
    _write_image(dst, redact_image(image, boxes, margin=margin, pixelate=pixelate))
    return len(boxes)


def redact_video(reader: Reader, src: str | os.PathLike, dst: str | os.PathLike, *,
                 margin: float = DEFAULT_MARGIN, pixelate: bool = False, hold: int = DEFAULT_HOLD,
                 fps: float | None = None) -> RedactStats:
    """Writes a redacted copy of the video (or frame folder) ``src`` to ``dst`` (mp4v), every frame.

    Frames come from ``VideoSource``, the one video decoder of the package."""
    from .video.sources import VideoSource

    source = VideoSource(src, fps=fps, live=False)
    recent: deque[Sequence[Box]] = deque(maxlen=max(1, hold + 1))
    writer: cv2.VideoWriter | None = None
    frames = boxes = 0
    try:
        for frame in source.frames():
            if frame is None:
                continue
            found = plate_boxes(reader, frame.image)
            recent.append(found)
            boxes += len(found)
            out = redact_image(frame.image, [b for bs in recent for b in bs], margin=margin, pixelate=pixelate)
            if writer is None:
                h, w = out.shape[:2]
                writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), source.fps or 10.0, (w, h))
                if not writer.isOpened():
                    raise RuntimeError(f"cannot write the video {dst}")
            writer.write(out)
            frames += 1
    finally:
        source.stop()
        if writer is not None:
            writer.release()
    if source.error and not frames:
        raise RuntimeError(f"cannot read the video {src}: {source.error}")
    return RedactStats(frames, boxes)


def _write_image(dst: str | os.PathLike, image: np.ndarray) -> None:
    ext = Path(dst).suffix.lower() or ".png"
    ok, buf = cv2.imencode(ext, image)
    if not ok:
        raise RuntimeError(f"cannot encode {dst} as {ext}")
    Path(dst).write_bytes(buf.tobytes())
