"""Exports a detector checkpoint to ONNX (opset 17) + the JSON that ``LearnedDetector`` reads.

    python -m plateread.training.export_detector --ckpt runs/detector/best.pt \\
        --out src/plateread/models/detector.onnx

The export is refused unless onnxruntime reproduces the torch head maps: a silent mismatch
would ship a detector that behaves differently from the one that was validated.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from .det_data import CORNER_ORDER
from .det_model import count_params
from .onnx_export import export_checked, write_card

VERSION = "1"
OUTPUTS = ["heatmap", "size", "offset", "corners"]


def export(ckpt: str | Path, out: str | Path, tol: float = 1e-3) -> dict[str, Any]:
    from .train_detector import build_model

    ck = torch.load(ckpt, map_location="cpu", weights_only=False)  # our own training's checkpoint # nosec B614
    cfg = ck["config"]
    model = build_model(cfg)
    model.load_state_dict(ck["model"])
    model.eval()
    out = Path(out)
    h, w = int(cfg["input_height"]), int(cfg["input_width"])
    diff = export_checked(model, torch.rand(1, 3, h, w) * 255, torch.rand(2, 3, h, w) * 255, out, OUTPUTS, tol,
                          spatial=True)
    meta = {
        "name": "plateread-detector", "version": VERSION, "architecture": "PlateNet (CenterNet-style)",
        "arch": cfg.get("arch"), "stages": list(cfg["stages"]), "neck": cfg["neck"], "depth": list(cfg["depth"]),
        "input_width": w, "input_height": h,
        "input": "1x3xHxW float32 BGR 0-255, letterboxed (aspect kept, centred, pad 114)",
        "stride": int(cfg["stride"]), "backbone_strides": [2, 4, 8, 16, 32],
        "size_unit": float(cfg["size_unit"]),
        "outputs": {"heatmap": "sigmoid centre heat-map [N,1,H/4,W/4]",
                    "size": "log(box w, h / size_unit) in input px [N,2,H/4,W/4]",
                    "offset": "sub-cell centre offset in cells [N,2,H/4,W/4]",
                    "corners": "4 corners - centre, divided by box w, h [N,8,H/4,W/4]"},
        "corner_order": list(CORNER_ORDER),
        "epoch": ck.get("epoch"),
    }
    if ck.get("metrics"):  # a time-boxed fine-tune may end without a validation pass
        meta["validation"] = ck["metrics"]
    return write_card(out, meta, ck, count_params(model), diff)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", default="runs/detector/best.pt")
    ap.add_argument("--out", default="src/plateread/models/detector.onnx")
    a = ap.parse_args(argv)
    export(a.ckpt, a.out)


if __name__ == "__main__":
    main()
