"""What every model export shares: ONNX export, a parity check against torch, the JSON card.

The parity check refuses to write a model that onnxruntime runs differently from torch: a silent
mismatch would ship a model that behaves unlike the one that was validated.
"""
from __future__ import annotations

import datetime as dt
import json
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn


def export_checked(model: nn.Module, example: torch.Tensor, check: torch.Tensor, out: Path,
                   outputs: Sequence[str], tol: float = 1e-3, spatial: bool = False) -> float:
    """Exports ``model`` (opset 17, dynamic batch; with ``spatial`` also dynamic height and width,
    for fully convolutional models run on other input sizes) and returns the max abs
    ONNX-vs-torch diff on ``check``; raises when it is not below ``tol``."""
    axes = {0: "batch", 2: "height", 3: "width"} if spatial else {0: "batch"}
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # the legacy exporter's deprecation notice is expected
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (example,), str(out), opset_version=17, input_names=["input"],
                          output_names=list(outputs), dynamo=False,
                          dynamic_axes={n: axes for n in ["input", *outputs]})
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = model(check)
    ref_list = [ref] if isinstance(ref, torch.Tensor) else list(ref)
    got = sess.run(list(outputs), {"input": check.numpy()})
    diff = max(float(np.abs(r.numpy() - g).max()) for r, g in zip(ref_list, got))
    if not diff < tol:
        raise RuntimeError(f"ONNX and torch disagree: max abs diff {diff:.2e} > {tol}")
    return diff


def write_card(out: Path, meta: dict[str, Any], ck: dict[str, Any], params: int, diff: float) -> dict[str, Any]:
    """Adds the training facts every model card carries (this run's, and the chain of runs behind
    it with their totals) and writes ``out`` with suffix .json."""
    from .lineage import lineage, totals

    runs = lineage(ck)
    meta = {
        **meta,
        "params": params, "step": ck["step"], "train_minutes": round(ck["elapsed"] / 60, 1),
        "training_command": ck.get("command", ""), **totals(runs), "lineage": runs,
        "exported": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "onnx_torch_max_abs_diff": diff,
    }
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) and {out.with_suffix('.json')}; "
          f"ONNX vs torch max abs diff {diff:.2e}")
    return meta
