"""Tesseract OCR of plate crops, binarised as in the PyImageSearch ANPR tutorial.

Tesseract runs in-process through tesserocr: one engine per recognizer, loaded once, because
starting the ``tesseract`` executable per plate (as pytesseract does) costs far more than the OCR.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from ...debug import DebugSink
from ...text import normalize_plate
from ...types import Candidate, Recognition

ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
LANG = "eng"
#: Where distribution packages put tessdata, newest Tesseract first.
TESSDATA_DIRS = (
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
)
_INSTALL_HINT = (
    "install the classic engine's dependencies with `pip install plateread[classic]` "
    "and Tesseract's English data with `apt-get install tesseract-ocr tesseract-ocr-eng`"
)


def find_tessdata(tessdata: str | os.PathLike[str] | None = None) -> Path:
    """The tessdata folder holding eng.traineddata: the argument, else TESSDATA_PREFIX, else the usual places.

    An explicit choice (argument or environment) is never silently replaced by a default place,
    so a wrong setting fails instead of reading with other data than asked for.
    """
    explicit = tessdata if tessdata is not None else os.environ.get("TESSDATA_PREFIX") or None
    places = [Path(explicit)] if explicit is not None else [Path(p) for p in TESSDATA_DIRS]
    for place in places:
        for folder in (place, place / "tessdata"):  # Tesseract 3 pointed at the parent folder
            if (folder / f"{LANG}.traineddata").is_file():
                return folder
    where = f"{explicit}" if explicit is not None else ", ".join(TESSDATA_DIRS)
    raise RuntimeError(f"Tesseract data {LANG}.traineddata not found in {where}; {_INSTALL_HINT}")


def threshold_roi(crop: np.ndarray) -> np.ndarray:
    """The tutorial's binarisation: Otsu, inverted, so dark characters become white on black."""
    gray = crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    return cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)[1]


def clear_border_blobs(binary: np.ndarray) -> np.ndarray:
    """Drops white blobs touching the crop edge: usually the plate frame or the car body, not text."""
    from skimage.segmentation import clear_border

    return clear_border(binary > 0).astype(np.uint8) * 255


class TesseractRecognizer:
    """Reads one line of plate text per crop with Tesseract (``--psm 7`` by default).

    Score is the mean per-symbol confidence / 100 when the symbols line up one-to-one with the
    cleaned text (then also given as ``char_scores``), else the mean word confidence / 100.
    """

    name = "tesseract"

    def __init__(
        self,
        *,
        psm: int = 7,
        clear_border: bool = False,
        whitelist: str = ALPHANUMERIC,
        tessdata: str | None = None,
    ) -> None:
        try:
            import tesserocr
        except ImportError as exc:
            raise RuntimeError(f"the tesseract recognizer needs tesserocr: {exc}; {_INSTALL_HINT}") from exc
        if not 0 <= int(psm) <= 13 or int(psm) != psm:
            raise ValueError(f"psm must be a Tesseract page segmentation mode 0..13, got {psm!r}")
        if not whitelist:
            raise ValueError("whitelist must name at least one character")
        if clear_border:
            try:  # fail at construction, not on the first plate
                import skimage.segmentation  # noqa: F401
            except ImportError as exc:
                raise RuntimeError(f"clear_border needs scikit-image: {exc}; {_INSTALL_HINT}") from exc
        self.psm = int(psm)
        self.clear_border = bool(clear_border)
        self.whitelist = whitelist
        self.tessdata = find_tessdata(tessdata)
        self._tesserocr = tesserocr
        self._lock = threading.Lock()
        # Tesseract 4+ wants the tessdata folder itself, with a trailing separator.
        self._api: Any = tesserocr.PyTessBaseAPI(
            path=str(self.tessdata) + os.sep, lang=LANG, psm=self.psm
        )
        self._api.SetVariable("tessedit_char_whitelist", whitelist)
        # The tutorial hands Tesseract white text on black; Tesseract reads it only because this
        # (default-on) setting retries low-confidence lines inverted. Pin it: reads depend on it.
        self._api.SetVariable("tessedit_do_invert", "1")

    def __repr__(self) -> str:
        return (
            f"TesseractRecognizer(psm={self.psm}, clear_border={self.clear_border}, "
            f"whitelist={self.whitelist!r}, tessdata={str(self.tessdata)!r})"
        )

    def close(self) -> None:
        """Frees Tesseract's models now rather than at garbage collection."""
        with self._lock:
            if self._api is not None:
                self._api.End()
                self._api = None

    def __enter__(self) -> "TesseractRecognizer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def recognize(self, crops: Sequence[np.ndarray], debug: DebugSink | None = None) -> list[Recognition]:
        return [self._read_one(crop, debug) for crop in crops]

    def _read_one(self, crop: np.ndarray, debug: DebugSink | None) -> Recognition:
        if crop.size == 0:
            return Recognition("", 0.0)
        roi = threshold_roi(crop)
        if debug is not None:
            debug.add("roi_thresh", roi)
        if self.clear_border:
            roi = clear_border_blobs(roi)
            if debug is not None:
                debug.add("roi_cleared", roi)
        roi = np.ascontiguousarray(roi)
        with self._lock:
            if self._api is None:
                raise RuntimeError("TesseractRecognizer was closed")
            api = self._api
            api.SetImageBytes(roi.tobytes(), roi.shape[1], roi.shape[0], 1, roi.shape[1])
            raw = api.GetUTF8Text()
            mean = api.MeanTextConf()
            symbols = self._symbol_confidences(api)
        text = normalize_plate(raw)
        chars = tuple(c for s, c in symbols if normalize_plate(s))
        char_scores = chars if len(chars) == len(text) else ()
        # Word confidence is often 0 on the inverted (white-on-black) input even for a clean read,
        # while the symbol confidences stay informative: prefer their mean when they line up.
        if not text:
            score = 0.0
        elif char_scores:
            score = float(np.mean(char_scores))
        else:
            score = float(np.clip(mean / 100.0, 0.0, 1.0))
        return Recognition(text, score, (Candidate(text, score),) if text else (), char_scores)

    def _symbol_confidences(self, api: Any) -> list[tuple[str, float]]:
        """Per-symbol (text, confidence/100) from the result iterator; cheap once text is recognised."""
        level = self._tesserocr.RIL.SYMBOL
        out: list[tuple[str, float]] = []
        iterator = api.GetIterator()
        if iterator is None:
            return out
        for item in self._tesserocr.iterate_level(iterator, level):
            try:
                symbol = item.GetUTF8Text(level)
            except RuntimeError:  # tesserocr raises on an empty element instead of returning ""
                continue
            out.append((symbol, float(np.clip(item.Confidence(level) / 100.0, 0.0, 1.0))))
        return out
