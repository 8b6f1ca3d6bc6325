"""Exports a CRNN checkpoint to ONNX (opset 17, dynamic batch) + the JSON the recognizer reads.

    python -m plateread.training.export_ocr --ckpt runs/ocr/last.pt --out src/plateread/models/ocr.onnx

The export is refused unless onnxruntime reproduces the torch outputs on a batch: a silent
mismatch would ship a model that reads differently from the one that was validated.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import numpy as np
import torch

from .model import CRNN, count_params

VERSION = "1"


def export(ckpt: str | Path, out: str | Path, tol: float = 1e-3) -> dict:
    ck = torch.load(ckpt, map_location="cpu", weights_only=False)
    charset: str = ck["charset"]
    cfg = ck["config"]
    model = CRNN(len(charset) + 1, height=cfg["height"], width=cfg["width"], hidden=cfg["hidden"])
    model.load_state_dict(ck["model"])
    model.eval()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    h, w = cfg["height"], cfg["width"]
    dummy = torch.rand(2, 1, h, w)
    torch.onnx.export(model, (dummy,), str(out), opset_version=17, input_names=["input"],
                      output_names=["logprobs"], dynamo=False,
                      dynamic_axes={"input": {0: "batch"}, "logprobs": {0: "batch"}})
    import onnxruntime as ort
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.rand(5, 1, h, w)
    with torch.no_grad():
        ref = model(x).numpy()
    got = sess.run(None, {"input": x.numpy()})[0]
    diff = float(np.abs(ref - got).max())
    if not diff < tol:
        raise RuntimeError(f"ONNX and torch disagree: max abs diff {diff:.2e} > {tol}")
    meta = {
        "name": "plateread-crnn", "version": VERSION, "charset": charset, "blank": 0,
        "input": {"height": h, "width": w, "channels": 1, "scale": "gray/255",
                  "resize": "stretch (no aspect keeping)"},
        "output": "log-probabilities [N, T, 1+len(charset)]; T = 2 rows x W/4, row 0 then row 1",
        "params": count_params(model), "step": ck["step"],
        "train_minutes": round(ck["elapsed"] / 60, 1), "best_holdout": ck.get("best"),
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
    ap.add_argument("--ckpt", default="runs/ocr/last.pt")
    ap.add_argument("--out", default="src/plateread/models/ocr.onnx")
    a = ap.parse_args(argv)
    export(a.ckpt, a.out)


if __name__ == "__main__":
    main()
