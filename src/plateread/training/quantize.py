"""Static int8 copies of the exported detector and OCR models, for the ``learned-int8`` engine.

    python -m plateread.training.quantize --kind detector --model src/plateread/models/detector.onnx \\
        --out src/plateread/models/detector-int8.onnx
    python -m plateread.training.quantize --kind ocr --model src/plateread/models/ocr.onnx \\
        --out src/plateread/models/ocr-int8.onnx

onnxruntime's static quantisation in its operator form (QLinearConv: uint8 activations, int8
per-channel weights), which CPUs with VNNI run about 1.4x (detector) and 1.6x (OCR) faster than
float32; the QDQ form ran 2.5x slower here. Activation ranges come from real TRAIN data only
(never the validation hold-out): for the detector, photos letterboxed to its input, ranges at the
99.999th percentile (min-max cost 0.2 recall points on validation, entropy more); for the OCR,
crops, min-max, convolutions only and the first one kept in float (quantised too it cost 0.4
points). The card (.json) is copied with a ``quantization`` entry; the float model stays the one
training and ``plateread finetune`` start from. Measure with ``benchmarks/validation.py
--detector-model/--ocr-model`` and ``benchmarks/speed.py``.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np


def _detector_inputs(data: str, n: int, seed: int, model: str) -> tuple[str, list[np.ndarray]]:
    from ..engines.learned.detector import LearnedDetector, letterbox, to_tensor
    from .det_data import load_photos, split_photos

    det = LearnedDetector(detector_model=model)
    train, _ = split_photos(load_photos(data))
    if not train:
        raise SystemExit(f"no training photos with boxes under {data}")
    pick = np.random.default_rng(seed).choice(len(train), min(n, len(train)), replace=False)
    return det.input_name, [to_tensor(letterbox(train[i].image, det.width, det.height)[0]) for i in pick]


def _ocr_inputs(data: str, n: int, seed: int, model: str) -> tuple[str, list[np.ndarray]]:
    from ..engines.crnn.recognizer import CrnnRecognizer
    from .data import clean_input, load_real, split_real

    rec = CrnnRecognizer(ocr_model=model, second_model=None)
    train = [it for it in split_real(load_real(data, rec.charset))[0] if "?" not in it.text]
    if not train:
        raise SystemExit(f"no labelled training crops under {data}")
    pick = np.random.default_rng(seed).choice(len(train), min(n, len(train)), replace=False)
    return rec.input_name, [rec.preprocess(clean_input(train[i]))[None] for i in pick]


def calibration_inputs(kind: str, model: str | Path, data: str, n: int | None = None,
                       seed: int = 0) -> tuple[str, list[np.ndarray]]:
    """(input name, model inputs) drawn from the TRAIN data; the percentile calibrator keeps every
    activation, ~0.2 GB per detector photo, hence few photos."""
    n = n or (30 if kind == "detector" else 200)
    return (_detector_inputs if kind == "detector" else _ocr_inputs)(data, n, seed, str(model))


def quantize(kind: str, model: str | Path, out: str | Path, name: str, inputs: list[np.ndarray]) -> Path:
    """Writes the int8 copy of ``model`` calibrated on ``inputs`` (fed as input ``name``)."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model, out = Path(model), Path(out)

    class Feed(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter({name: x} for x in inputs)

        def get_next(self) -> dict | None:
            return next(self.it, None)

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(model), str(pre), skip_symbolic_shape=True)  # free H, W: no symbolic shapes
        first_conv = next(nd.name for nd in onnx.load(str(pre)).graph.node if nd.op_type == "Conv")
        if kind == "detector":
            opts = dict(calibrate_method=CalibrationMethod.Percentile)
        else:
            opts = dict(calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=["Conv"],
                        nodes_to_exclude=[first_conv])
        quantize_static(str(pre), str(out), Feed(), quant_format=QuantFormat.QOperator, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, **opts)
    card_in, card_out = model.with_suffix(".json"), out.with_suffix(".json")
    if card_in.is_file():
        card = json.loads(card_in.read_text(encoding="utf-8"))
        card["quantization"] = {
            "from": model.name, "format": "QOperator, uint8 activations, int8 per-channel weights",
            "calibration": (f"{len(inputs)} inputs, percentile 99.999" if kind == "detector"
                            else f"{len(inputs)} inputs, min-max; convolutions only, {first_conv} in float"),
            "command": "python -m plateread.training.quantize " + " ".join(sys.argv[1:]),
        }
        card_out.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    elif card_out.exists():
        card_out.unlink()
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, from {model.stat().st_size / 1e6:.2f} MB)")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kind", choices=["detector", "ocr"], required=True)
    ap.add_argument("--model", required=True, help="float ONNX model (its .json card is copied)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", default="../shared/data", help="where the TRAIN photos / crops are")
    ap.add_argument("--calibration", type=int, default=None,
                    help="calibration inputs (default: 30 photos / 200 crops)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if Path(a.model).resolve() == Path(a.out).resolve():
        ap.error("--out must differ from --model: the float model is kept")
    quantize(a.kind, a.model, a.out, *calibration_inputs(a.kind, a.model, a.data, a.calibration, a.seed))


if __name__ == "__main__":
    main()
