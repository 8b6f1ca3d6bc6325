"""The learned-int8 engine and the quantisation tool that makes its models."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from plateread import Reader
from plateread.engines.crnn.recognizer import CrnnRecognizer

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "car.jpg"
MODELS = Path(__file__).resolve().parents[1] / "src" / "plateread" / "models"


def _plate_crop() -> np.ndarray:
    return cv2.imread(str(EXAMPLE))[427:465, 565:720]  # the example's plate, YO76317, a few px around


def test_int8_engine_loads_its_models_and_a_callers_model_wins():
    r = Reader("learned-int8")
    assert Path(r.detector.model_path).name == "detector-int8.onnx"
    assert r.recognizer.second is not None
    assert Path(Reader("learned-int8", detector_model=str(MODELS / "detector.onnx")).detector.model_path).name \
        == "detector.onnx"
    # its own operating point, tuned for the int8 detector's scores, is in its card
    assert json.loads((MODELS / "detector-int8.json").read_text())["threshold"] == r.detector.threshold


def test_int8_engine_reads_a_plate_crop_like_the_float_one():
    crop = _plate_crop()
    assert [p.plate for p in Reader("learned-int8").read_plate(crop).results] == \
        [p.plate for p in Reader().read_plate(crop).results] == ["YO76317"]


def test_quantize_writes_a_smaller_model_that_reads_the_same(tmp_path):
    pytest.importorskip("onnx", reason="the quantisation tool needs the onnx package ([train] or [test] extra)")
    from plateread.training.quantize import quantize

    src = MODELS / "ocr-second.onnx"
    rec = CrnnRecognizer(ocr_model=str(src), second_model=None)
    rng = np.random.default_rng(0)
    crop = _plate_crop()
    # calibration: the plate and noisy, shifted copies of it (the tool itself draws train crops)
    inputs = [rec.preprocess(np.clip(np.roll(crop, int(rng.integers(-4, 5)), axis=1).astype(np.int16)
                                     + rng.integers(-20, 21, crop.shape), 0, 255).astype(np.uint8))[None]
              for _ in range(8)]
    out = quantize("ocr", src, tmp_path / "ocr-int8.onnx", rec.input_name, inputs)
    assert out.stat().st_size < src.stat().st_size
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["charset"] == rec.charset and "8 inputs" in card["quantization"]["calibration"]
    assert CrnnRecognizer(ocr_model=str(out), second_model=None).recognize([crop])[0].text == \
        rec.recognize([crop])[0].text == "YO76317"
