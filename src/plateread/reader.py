"""The public entry point: a detector and a recognizer behind one ``read`` call."""
from __future__ import annotations

import os
import time
from typing import Any, Iterable, Iterator

import numpy as np

from . import registry
from .debug import DebugSink
from .imaging import DEFAULT_MAX_PIXELS, ImageError, ImageSource, load_image
from .protocols import Detector, Recognizer
from .types import ImageResult, PlateRead

DEFAULT_ENGINE = "learned"  # learned detector + CRNN OCR; "classic" stays available


class Reader:
    """Reads plates from images with a named engine.

    ``engine`` picks a detector + recognizer pair; ``detector`` / ``recognizer`` override either
    half by name (e.g. the classic locator with another OCR). Remaining keyword options go to
    whichever half declares them, so ``Reader("classic", min_ar=3.0, psm=8)`` works and a misspelt
    option fails loudly.
    """

    def __init__(
        self,
        engine: str = DEFAULT_ENGINE,
        *,
        detector: str | Detector | None = None,
        recognizer: str | Recognizer | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        **options: Any,
    ) -> None:
        spec = registry.engine_spec(engine)
        self.engine = engine
        self.max_pixels = max_pixels
        det_name = detector if isinstance(detector, str) else spec.detector
        rec_name = recognizer if isinstance(recognizer, str) else spec.recognizer
        det_factory, rec_factory = registry.factories(det_name, rec_name)
        if not isinstance(detector, (str, type(None))):
            det_factory = _no_options
        if not isinstance(recognizer, (str, type(None))):
            rec_factory = _no_options
        det_opts, rec_opts = registry.split_options(det_factory, rec_factory, options)
        self.detector: Detector = (
            detector if not isinstance(detector, (str, type(None))) else det_factory(**det_opts)
        )
        self.recognizer: Recognizer = (
            recognizer if not isinstance(recognizer, (str, type(None))) else rec_factory(**rec_opts)
        )

    def __repr__(self) -> str:
        return f"Reader(engine={self.engine!r}, detector={self.detector.name!r}, recognizer={self.recognizer.name!r})"

    def read(
        self,
        image: ImageSource,
        *,
        name: str | None = None,
        debug: DebugSink | None = None,
    ) -> ImageResult:
        """Reads every plate in one image. Raises ImageError when the input is not a usable image."""
        return self._read(image, name, debug)[0]

    def read_safe(
        self, image: ImageSource, *, name: str | None = None, debug: DebugSink | None = None
    ) -> ImageResult:
        """Like ``read`` but any failure becomes the result's ``error``: for batches and services."""
        return self.read_keep(image, name=name, debug=debug)[0]

    def read_keep(
        self, image: ImageSource, *, name: str | None = None, debug: DebugSink | None = None
    ) -> tuple[ImageResult, np.ndarray | None]:
        """``read_safe`` that also hands back the decoded image (None on failure), so callers that
        draw or store crops do not decode the file a second time."""
        start = time.perf_counter()
        label = name if name is not None else _describe(image)
        try:
            return self._read(image, label, debug)
        except ImageError as exc:
            error = str(exc)
        except MemoryError:
            error = "out of memory while reading this image"
        except Exception as exc:  # an engine bug must not end a batch; report it on this image
            error = f"{type(exc).__name__}: {exc}"
        return ImageResult(label, 0, 0, (time.perf_counter() - start) * 1000.0, (), error), None

    def _read(
        self, image: ImageSource, name: str | None, debug: DebugSink | None
    ) -> tuple[ImageResult, np.ndarray]:
        start = time.perf_counter()
        bgr = load_image(image, max_pixels=self.max_pixels)
        results = self._read_array(bgr, debug)
        elapsed = (time.perf_counter() - start) * 1000.0
        result = ImageResult(
            image=name if name is not None else _describe(image),
            width=int(bgr.shape[1]),
            height=int(bgr.shape[0]),
            processing_time=elapsed,
            results=results,
        )
        return result, bgr

    def read_many(self, images: Iterable[ImageSource]) -> Iterator[ImageResult]:
        for image in images:
            yield self.read_safe(image)

    def _read_array(self, bgr: np.ndarray, debug: DebugSink | None) -> tuple[PlateRead, ...]:
        detections = self.detector.detect(bgr, debug=debug)
        if not detections:
            return ()
        recognitions = self.recognizer.recognize([d.crop for d in detections], debug=debug)
        reads = []
        for det, rec in zip(detections, recognitions):
            if not rec.text:
                continue
            reads.append(
                PlateRead(
                    plate=rec.text,
                    score=float(rec.score),
                    box=det.box,
                    candidates=rec.candidates,
                    detection_score=float(det.score),
                    char_scores=rec.char_scores,
                    region=rec.region,
                    region_score=rec.region_score,
                    corners=det.corners,
                )
            )
        return tuple(reads)


def _no_options() -> None:  # stands in for the factory of a part passed as an instance
    return None


def _describe(image: ImageSource) -> str:
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    if isinstance(image, np.ndarray):
        return "<array>"
    return "<bytes>"
