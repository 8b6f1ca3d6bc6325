"""Exports a CRNN checkpoint to ONNX (opset 17, dynamic batch) + the JSON the recognizer reads.

    python -m plateread.training.export_ocr --ckpt runs/ocr/last.pt --out src/plateread/models/ocr.onnx

The export is refused unless onnxruntime reproduces the torch outputs on a batch.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from .model import CRNN, count_params
from .onnx_export import export_checked, write_card

VERSION = "1"


def export(ckpt: str | Path, out: str | Path, tol: float = 1e-3) -> dict:
    ck = torch.load(ckpt, map_location="cpu", weights_only=False)  # our own training's checkpoint # nosec B614
    charset: str = ck["charset"]
    cfg = ck["config"]
    model = CRNN.from_config(len(charset) + 1, cfg)
    model.load_state_dict(ck["model"])
    model.eval()
    out = Path(out)
    h, w = cfg["height"], cfg["width"]
    diff = export_checked(model, torch.rand(2, 1, h, w), torch.rand(5, 1, h, w), out, ["logprobs"], tol)
    meta = {
        "name": "plateread-crnn", "version": VERSION, "charset": charset, "blank": 0,
        "input": {"height": h, "width": w, "channels": 1, "scale": "gray/255",
                  "resize": "stretch (no aspect keeping)"},
        "output": "log-probabilities [N, T, 1+len(charset)]; T = 2 rows x W/4, row 0 then row 1",
        "best_holdout": ck.get("best"),
    }
    return write_card(out, meta, ck, count_params(model), diff)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", default="runs/ocr/last.pt")
    ap.add_argument("--out", default="src/plateread/models/ocr.onnx")
    a = ap.parse_args(argv)
    export(a.ckpt, a.out)


if __name__ == "__main__":
    main()
