"""Exports a detector checkpoint to ONNX (opset 17) + the JSON that ``LearnedDetector`` reads.

    python -m plateread.training.export_detector --ckpt runs/detector/best.pt \\
        --out src/plateread/models/detector.onnx

The export is refused unless onnxruntime reproduces the torch head maps: a silent mismatch
would ship a detector that behaves differently from the one that was validated.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .det_data import CORNER_ORDER
from .det_model import count_params

VERSION = "1"
OUTPUTS = ["heatmap", "size", "offset", "corners"]


def export(ckpt: str | Path, out: str | Path, tol: float = 1e-3) -> dict[str, Any]:
    from .train_detector import build_model

    ck = torch.load(ckpt, map_location="cpu", weights_only=False)
    cfg = ck["config"]
    model = build_model(cfg)
    model.load_state_dict(ck["model"])
    model.eval()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    h, w = int(cfg["input_height"]), int(cfg["input_width"])
    with warnings.catch_warnings():  # the legacy exporter's deprecation notice is expected
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (torch.rand(1, 3, h, w) * 255,), str(out), opset_version=17,
                          input_names=["input"], output_names=OUTPUTS, dynamo=False,
                          dynamic_axes={n: {0: "batch"} for n in ["input", *OUTPUTS]})
    import onnxruntime as ort
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, h, w) * 255
    with torch.no_grad():
        ref = [t.numpy() for t in model(x)]
    got = sess.run(OUTPUTS, {"input": x.numpy()})
    diff = max(float(np.abs(r - g).max()) for r, g in zip(ref, got))
    if not diff < tol:
        raise RuntimeError(f"ONNX and torch disagree: max abs diff {diff:.2e} > {tol}")
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
        "params": count_params(model), "step": ck["step"], "epoch": ck.get("epoch"),
        "train_minutes": round(ck["elapsed"] / 60, 1), "validation": ck.get("metrics", {}),
        "training_command": ck.get("command", ""),
        "exported": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "onnx_torch_max_abs_diff": diff,
    }
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) and {out.with_suffix('.json')}; "
          f"ONNX vs torch max abs diff {diff:.2e}")
    return meta


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", default="runs/detector/best.pt")
    ap.add_argument("--out", default="src/plateread/models/detector.onnx")
    a = ap.parse_args(argv)
    export(a.ckpt, a.out)


if __name__ == "__main__":
    main()
