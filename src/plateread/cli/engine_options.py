"""Engine selection flags shared by every command that reads plates."""
from __future__ import annotations

import argparse
from typing import Any

from .. import registry
from ..reader import DEFAULT_ENGINE, Reader

# flag -> Reader option; only flags the user actually gave are passed, so an engine that does
# not take an option is never handed one by default.
_OPTION_FLAGS: dict[str, str] = {
    "clear_border": "clear_border",
    "psm": "psm",
    "min_ar": "min_ar",
    "max_ar": "max_ar",
    "keep": "keep",
    "region": "region",
    "threshold": "threshold",
    "rectify": "rectify",
    "threads": "threads",
    "detector_model": "detector_model",
    "ocr_model": "ocr_model",
    "second_ocr_model": "second_model",
    "zoom": "zoom",
}


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("engine")
    names = sorted(registry.engines())
    g.add_argument("--engine", default=DEFAULT_ENGINE, choices=names,
                   help=f"detector + recognizer pair (default: {DEFAULT_ENGINE})")
    g.add_argument("--detector", choices=registry.detectors(), help="override the engine's detector")
    g.add_argument("--recognizer", choices=registry.recognizers(), help="override the engine's recognizer")
    g.add_argument("--clear-border", action="store_true", default=None,
                   help="classic OCR: remove blobs touching the plate crop's edge before OCR")
    g.add_argument("--psm", type=int, help="classic OCR: Tesseract page segmentation mode (default 7)")
    g.add_argument("--min-ar", type=float, help="classic locator: minimum plate aspect ratio (default 4)")
    g.add_argument("--max-ar", type=float, help="classic locator: maximum plate aspect ratio (default 5)")
    g.add_argument("--keep", type=int, help="classic locator: largest contours considered (default 5)")
    g.add_argument("--threshold", type=float,
                   help="learned detector: minimum detection score (default: the model's tuned "
                        "threshold, stored in its .json)")
    g.add_argument("--no-rectify", dest="rectify", action="store_false", default=None,
                   help="learned detector: hand OCR the padded box instead of the plate warped upright")
    g.add_argument("--threads", type=int, metavar="N",
                   help="learned engines: inference threads per model (default 1; one image at a time)")
    g.add_argument("--detector-model", metavar="ONNX", help="learned detector: another exported model")
    g.add_argument("--ocr-model", metavar="ONNX", help="learned OCR: another exported model (its .json beside it)")
    g.add_argument("--second-ocr-model", metavar="ONNX",
                   help="learned OCR: the model asked for a second opinion on unsure reads ('none': no "
                        "second model; default: the shipped one, unless --ocr-model replaces the first)")
    g.add_argument("--no-zoom", dest="zoom", action="store_false", default=None,
                   help="learned detector: no second, zoomed pass for small unsure plates in large photos")
    g.add_argument("--second-look", type=float, default=None, metavar="SCORE",
                   help="re-read plates scored below SCORE from other crops and fuse the readings "
                        "(default 0.6; 0 turns it off)")
    g.add_argument("--no-plate-images", dest="plate_images", action="store_false", default=True,
                   help="never read a small plate-shaped image whole when no plate is detected in it")
    g.add_argument("--region", metavar="REGIONS",
                   help="learned OCR: plate formats to fit, e.g. auto, us, br, de, eu or a comma list "
                        "(br,us) to prefer; 'none' for no format correction (default: none)")


def engine_options(args: argparse.Namespace) -> dict[str, Any]:
    return {opt: getattr(args, flag) for flag, opt in _OPTION_FLAGS.items() if getattr(args, flag) is not None}


def reader_from_args(args: argparse.Namespace) -> Reader:
    extra: dict[str, Any] = {"plate_images": args.plate_images}
    if args.second_look is not None:
        extra["second_look"] = args.second_look if args.second_look > 0 else None
    return Reader(args.engine, detector=args.detector, recognizer=args.recognizer, **extra,
                  **engine_options(args))
