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
from .second_look import DEFAULT_BOUND, alternate_crops, fuse_recognitions
from .types import Box, Detection, ImageResult, PlateRead, Recognition

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
        second_look: float | None = DEFAULT_BOUND,
        plate_images: bool = True,
        **options: Any,
    ) -> None:
        spec = registry.engine_spec(engine)
        options = {**dict(spec.options), **options}
        self.engine = engine
        self.max_pixels = max_pixels
        # reads scored below this are re-read from other crops and fused (None: never)
        self.second_look = second_look
        # an input that is itself a plate (a crop an integration sends) is read whole
        self.plate_images = plate_images
        # keep detections the OCR could not read (text ""): for redaction, every box matters
        self.keep_unread = False
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
        self, image: ImageSource, *, name: str | None = None, debug: DebugSink | None = None,
        crop: bool = False,
    ) -> tuple[ImageResult, np.ndarray | None]:
        """``read_safe`` that also hands back the decoded image (None on failure), so callers that
        draw or store crops do not decode the file a second time. ``crop``: the image is one
        plate, read whole (as ``read_plate``)."""
        start = time.perf_counter()
        label = name if name is not None else _describe(image)
        try:
            return self._read(image, label, debug, crop)
        except ImageError as exc:
            error = str(exc)
        except MemoryError:
            error = "out of memory while reading this image"
        except Exception as exc:  # an engine bug must not end a batch; report it on this image
            error = f"{type(exc).__name__}: {exc}"
        return ImageResult(label, 0, 0, (time.perf_counter() - start) * 1000.0, (), error), None

    def _read(
        self, image: ImageSource, name: str | None, debug: DebugSink | None, crop: bool = False
    ) -> tuple[ImageResult, np.ndarray]:
        start = time.perf_counter()
        bgr = load_image(image, max_pixels=self.max_pixels)
        results = self._recognize(bgr, [_whole(bgr)]) if crop else self._read_array(bgr, debug)
        elapsed = (time.perf_counter() - start) * 1000.0
        result = ImageResult(
            image=name if name is not None else _describe(image),
            width=int(bgr.shape[1]),
            height=int(bgr.shape[0]),
            processing_time=elapsed,
            results=results,
        )
        return result, bgr

    def read_plate(self, crop: ImageSource, *, name: str | None = None) -> ImageResult:
        """Reads an image that is already one plate (a crop), with no detection: the result has
        at most one read, boxed as the whole image. Raises ImageError like ``read``."""
        return self._read(crop, name, None, crop=True)[0]

    def read_many(self, images: Iterable[ImageSource]) -> Iterator[ImageResult]:
        for image in images:
            yield self.read_safe(image)

    def _read_array(self, bgr: np.ndarray, debug: DebugSink | None) -> tuple[PlateRead, ...]:
        detections = self.detector.detect(bgr, debug=debug)
        reads = self._recognize(bgr, detections, debug) if detections else ()
        h, w = bgr.shape[:2]
        if self.plate_images and looks_like_plate(w, h):
            # a plate-shaped little image is most likely the plate itself (a detector trained on
            # scenes misses a plate that fills its input, or finds one line of a two-line one):
            # read whole, it wins when it reads more surely than anything detected in it (a tie
            # goes to the detection, which has a tighter box and the plate's corners)
            whole = self._recognize(bgr, [_whole(bgr)], debug)
            floor = PLATE_IMAGE_MIN_SCORE if max(w, h) <= PLATE_IMAGE_MAX_SIDE else PLATE_IMAGE_MIN_SCORE_LARGE
            if whole and whole[0].score >= floor and all(whole[0].score > r.score for r in reads):
                return whole
        return reads

    def _recognize(self, bgr: np.ndarray, detections: list[Detection],
                   debug: DebugSink | None = None) -> tuple[PlateRead, ...]:
        recognitions = self.recognizer.recognize([d.crop for d in detections], debug=debug)
        sure = getattr(self.detector, "threshold", None)
        reads = []
        for det, rec in zip(detections, recognitions):
            # a detection under the detector's threshold (kept down to its verify threshold) counts
            # only when the OCR reads it confidently; one that fails is not worth a second look
            unsure = sure is not None and det.score < sure
            if (self.second_look is not None and rec.score < self.second_look
                    and not (unsure and rec.score < VERIFY_MIN_READ)):
                rec = self._second_look(bgr, det, rec)
            if not self.keep_unread and (not rec.text or (unsure and rec.score < VERIFY_MIN_READ)):
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

    def _second_look(self, bgr: np.ndarray, det: Detection, rec: Recognition) -> Recognition:
        # three readings vote: the same crop by a second model (when the recognizer has one) and
        # the looser other cut, else both other cuts (measured alike on held-out crops; one
        # OCR pass fewer per unsure read)
        second = getattr(self.recognizer, "second_opinion", None)
        opinion = second([det.crop]) if second is not None else []
        crops = alternate_crops(bgr, det)[:1 if opinion else 2]
        recs = [rec, *opinion, *(self.recognizer.recognize(crops) if crops else [])]
        if len(recs) == 1:
            return rec
        return fuse_recognitions(recs, getattr(self.recognizer, "region_decoder", None))


#: An image is taken for a plate crop when it is plate-shaped: one line (wider than 1.8:1) up
#: to the width of a plate cut from a 4K frame, or anything from square-ish (two lines) to one
#: line with a margin up to half of PLATE_IMAGE_MAX_SIDE (a larger squarish image is a photo).
PLATE_IMAGE_MAX_SIDE = 480
PLATE_IMAGE_MAX_SIDE_ONE_LINE = 2000
#: Score a plate image's whole-image read needs (below it, that reading is noise). Chosen on
#: held-out crops and plate-shaped cuts of held-out photos away from their plates (`python
#: benchmarks/validation.py --parts plates`): against the rule before it (0.2, and any detection
#: covering 30% of the image vetoed the whole read) plates read 84.3 -> 85.6%, reads returned for
#: the non-plate cuts 52 -> 37 of 425.
PLATE_IMAGE_MIN_SCORE = 0.25
#: The same for a one-line image larger than PLATE_IMAGE_MAX_SIDE, which is as often a strip of a
#: scene. Chosen ad hoc (script not kept) on 148 held-out crops scaled to 600 px wide, which the
#: detector misses (the plate fills its input), and 172 plate-free cuts 480-1280 px wide of held-out
#: photos: 0.25 read 131 plates and 18 cuts whole, 0.5 127 and 1, 0.6 126 and 0. Before, no image
#: over 480 px was read whole (0 plates). `python benchmarks/validation.py --parts plates` measures
#: the rule on all held-out crops at 600 px and its own 85 large cuts.
PLATE_IMAGE_MIN_SCORE_LARGE = 0.5
#: Read score an unsure detection (under the detector's threshold) needs to be kept; chosen with
#: the detector's verify threshold on held-out train + dev photos (docs/DETECTOR.md).
VERIFY_MIN_READ = 0.4


def _whole(bgr: np.ndarray) -> Detection:
    """The whole image as one plate: an input that is a crop already."""
    return Detection(Box(0, 0, bgr.shape[1], bgr.shape[0]), 1.0, bgr)


def looks_like_plate(width: int, height: int) -> bool:
    if min(width, height) < 8:
        return False
    aspect = width / height
    if 1.8 <= aspect <= 8.0:
        return width <= PLATE_IMAGE_MAX_SIDE_ONE_LINE
    return 0.8 <= aspect < 1.8 and max(width, height) <= PLATE_IMAGE_MAX_SIDE // 2


def _no_options() -> None:  # stands in for the factory of a part passed as an instance
    return None


def _describe(image: ImageSource) -> str:
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    if isinstance(image, np.ndarray):
        return "<array>"
    return "<bytes>"
