"""Named, swappable detectors and recognizers, and engines that pair them.

Factories are registered by import path so that heavy or optional dependencies (Tesseract,
model files) load only when the engine that needs them is chosen.
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .protocols import Detector, Recognizer


def is_off(value: object) -> bool:
    """Whether an option's value switches its part off: ``None`` or "", "none", "off" (any case),
    as the CLI, the API and the service config all spell it."""
    return value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "off"))


class EngineError(ValueError):
    """An engine, detector or recognizer name or option that does not exist or cannot load."""


@dataclass(frozen=True)
class EngineSpec:
    detector: str
    recognizer: str
    description: str
    options: tuple[tuple[str, Any], ...] = ()  # defaults the engine sets (a caller's options win)


_DETECTORS: dict[str, str] = {}
_RECOGNIZERS: dict[str, str] = {}
_ENGINES: dict[str, EngineSpec] = {}


def register_detector(name: str, target: str) -> None:
    """Registers ``module:callable`` as the factory of detector ``name``."""
    _DETECTORS[name] = target


def register_recognizer(name: str, target: str) -> None:
    _RECOGNIZERS[name] = target


def register_engine(name: str, detector: str, recognizer: str, description: str = "",
                    **options: Any) -> None:
    _ENGINES[name] = EngineSpec(detector, recognizer, description, tuple(options.items()))


def detectors() -> list[str]:
    return sorted(_DETECTORS)


def recognizers() -> list[str]:
    return sorted(_RECOGNIZERS)


def engines() -> dict[str, EngineSpec]:
    return dict(_ENGINES)


def engine_spec(name: str) -> EngineSpec:
    try:
        return _ENGINES[name]
    except KeyError:
        raise EngineError(f"unknown engine {name!r}; choose from {', '.join(sorted(_ENGINES))}") from None


def _resolve(table: dict[str, str], kind: str, name: str) -> Callable[..., Any]:
    try:
        target = table[name]
    except KeyError:
        raise EngineError(f"unknown {kind} {name!r}; choose from {', '.join(sorted(table))}") from None
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EngineError(f"{kind} {name!r} cannot load: {exc}") from exc
    return getattr(module, attr)


def accepted_options(factory: Callable[..., Any]) -> set[str]:
    params = inspect.signature(factory).parameters.values()
    return {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def split_options(
    det_factory: Callable[..., Any], rec_factory: Callable[..., Any], options: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Routes each option to whichever part declares it; an option nobody takes is an error."""
    det_names, rec_names = accepted_options(det_factory), accepted_options(rec_factory)
    det_opts = {k: v for k, v in options.items() if k in det_names}
    rec_opts = {k: v for k, v in options.items() if k in rec_names}
    unknown = set(options) - det_names - rec_names
    if unknown:
        raise EngineError(
            f"unknown option(s) {', '.join(sorted(unknown))}; "
            f"this engine takes {', '.join(sorted(det_names | rec_names)) or 'none'}"
        )
    return det_opts, rec_opts


def create_detector(name: str, **options: Any) -> Detector:
    return _resolve(_DETECTORS, "detector", name)(**options)


def create_recognizer(name: str, **options: Any) -> Recognizer:
    return _resolve(_RECOGNIZERS, "recognizer", name)(**options)


def factories(detector: str, recognizer: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    return _resolve(_DETECTORS, "detector", detector), _resolve(_RECOGNIZERS, "recognizer", recognizer)


# Built-in parts. Later engines register here too.
register_detector("classic", "plateread.engines.classic.locator:ClassicDetector")
register_recognizer("tesseract", "plateread.engines.classic.tesseract:TesseractRecognizer")
register_engine(
    "classic", "classic", "tesseract",
    "OpenCV morphology locator + Tesseract --psm 7 (the tutorial pipeline; dark-on-light plates only)",
)
register_recognizer("crnn", "plateread.engines.crnn.recognizer:CrnnRecognizer")
register_engine(
    "classic-crnn", "classic", "crnn",
    "the classic OpenCV locator + the learned CRNN OCR",
)
register_detector("learned", "plateread.engines.learned.detector:LearnedDetector")
register_engine("learned", "learned", "crnn", "learned detector + CRNN OCR")
_MODELS = Path(__file__).resolve().parent / "models"
register_engine(
    "learned-int8", "learned", "crnn",
    "the learned engine with int8 copies of its models: faster on CPUs with VNNI, a little less "
    "accurate (docs/MODELS.md)",
    detector_model=str(_MODELS / "detector-int8.onnx"), ocr_model=str(_MODELS / "ocr-int8.onnx"),
    second_model=str(_MODELS / "ocr-second-int8.onnx"),
)
