"""Torch weights back from a shipped ONNX model, so that fine-tuning starts from what users run.

The package ships only ONNX files; the exporter folded every BatchNorm into the convolution
before it (weight W', bias b'). To train again, each BatchNorm is rebuilt so that it is exact in
eval mode *and* close to its input's batch statistics in train mode: with the conv output's
per-channel mean m and std s measured on calibration inputs, BN(y) = s·(y − m)/s + (m + b')
= y + b'. Without that calibration the first train-mode batch would renormalise every layer and
throw the learned function away. LSTM gates are reordered from ONNX's (i, o, f, c) to torch's
(i, f, g, o).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn


def _conv_order(model: nn.Module, x: torch.Tensor) -> list[nn.Conv2d]:
    order: list[nn.Conv2d] = []
    hooks = [m.register_forward_hook(lambda mod, _i, _o: order.append(mod))
             for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model.eval()
        model(x)
    for h in hooks:
        h.remove()
    return order


def _bn_after(model: nn.Module) -> dict[nn.Conv2d, nn.BatchNorm2d]:
    """Each Conv2d directly followed by a BatchNorm2d in a Sequential."""
    pairs: dict[nn.Conv2d, nn.BatchNorm2d] = {}
    for seq in model.modules():
        if isinstance(seq, nn.Sequential):
            mods = list(seq)
            for a, b in zip(mods, mods[1:]):
                if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
                    pairs[a] = b
    return pairs


def _lstm_gates(t: np.ndarray, hidden: int) -> np.ndarray:
    """ONNX (i, o, f, c) blocks along axis 0 -> torch (i, f, g, o)."""
    i, o, f, c = (t[k * hidden:(k + 1) * hidden] for k in range(4))
    return np.concatenate([i, f, c, o], 0)


def crnn_config(onnx_path: str | Path) -> dict:
    """The CRNN shape an exported OCR model has (``CRNN.from_config``): the five CNN stage widths
    from its convolutions' output channels (stages 3 and 4 hold two convolutions each) and the
    LSTM's hidden size, so that a widened model fine-tunes as itself."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    init = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    outs = [int(init[n.input[1]].shape[0]) for n in graph.node if n.op_type == "Conv"]
    lstm = [n for n in graph.node if n.op_type == "LSTM"]
    if len(outs) != 7 or not lstm:
        raise ValueError(f"{onnx_path}: not a plateread CRNN ({len(outs)} convolutions, {len(lstm)} LSTM layers)")
    return {"widths": [outs[0], outs[1], outs[2], outs[4], outs[6]],
            "hidden": int(init[lstm[0].input[2]].shape[-1])}


@torch.no_grad()
def load_onnx_weights(model: nn.Module, onnx_path: str | Path, calib: torch.Tensor,
                      tol: float = 1e-3) -> float:
    """Fills ``model`` (same architecture as the export) from ``onnx_path``; returns the largest
    absolute difference between torch (eval) and onnxruntime on ``calib``, raising above ``tol``."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    init = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    convs = _conv_order(model, calib[:1])
    conv_nodes = [n for n in graph.node if n.op_type == "Conv"]
    if len(conv_nodes) != len(convs):
        raise ValueError(f"{onnx_path}: {len(conv_nodes)} convolutions, the torch model has {len(convs)}")
    bns = _bn_after(model)
    folded_bias: dict[nn.BatchNorm2d, torch.Tensor] = {}
    for node, conv in zip(conv_nodes, convs):
        w = torch.from_numpy(init[node.input[1]].copy())
        b = torch.from_numpy(init[node.input[2]].copy()) if len(node.input) > 2 else torch.zeros(w.shape[0])
        if w.shape != conv.weight.shape:
            raise ValueError(f"{onnx_path}: conv weight {tuple(w.shape)} != {tuple(conv.weight.shape)}")
        conv.weight.copy_(w)
        if conv in bns:
            bn = bns[conv]
            bn.running_mean.zero_()
            bn.running_var.fill_(1 - bn.eps)
            bn.weight.fill_(1)
            bn.bias.copy_(b)
            folded_bias[bn] = b
        elif conv.bias is not None:
            conv.bias.copy_(b)
        else:
            raise ValueError(f"{onnx_path}: conv {node.name} has a bias the torch layer cannot take")

    lstm_nodes = [n for n in graph.node if n.op_type == "LSTM"]
    lstm_layers = [(m, k) for m in model.modules() if isinstance(m, nn.LSTM) for k in range(m.num_layers)]
    if len(lstm_nodes) != len(lstm_layers):
        raise ValueError(f"{onnx_path}: {len(lstm_nodes)} LSTM layers, the torch model has {len(lstm_layers)}")
    for node, (lstm, k) in zip(lstm_nodes, lstm_layers):
        W, R, B = (init[node.input[j]] for j in (1, 2, 3))
        h = lstm.hidden_size
        for d, suffix in enumerate(["", "_reverse"][: W.shape[0]]):
            getattr(lstm, f"weight_ih_l{k}{suffix}").copy_(torch.from_numpy(_lstm_gates(W[d], h)))
            getattr(lstm, f"weight_hh_l{k}{suffix}").copy_(torch.from_numpy(_lstm_gates(R[d], h)))
            getattr(lstm, f"bias_ih_l{k}{suffix}").copy_(torch.from_numpy(_lstm_gates(B[d][:4 * h], h)))
            getattr(lstm, f"bias_hh_l{k}{suffix}").copy_(torch.from_numpy(_lstm_gates(B[d][4 * h:], h)))

    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    mat_nodes = [n for n in graph.node if n.op_type in ("MatMul", "Gemm") and n.input[1] in init]
    if len(linears) != len(mat_nodes):
        raise ValueError(f"{onnx_path}: {len(mat_nodes)} dense layers, the torch model has {len(linears)}")
    for node, lin in zip(mat_nodes, linears):
        w = init[node.input[1]]
        lin.weight.copy_(torch.from_numpy(w.T.copy() if node.op_type == "MatMul" else w.copy()))
        if lin.bias is not None:
            bias = next((init[i] for n in graph.node if n.op_type == "Add" for i in n.input
                         if i in init and init[i].shape == (lin.out_features,)), None)
            if node.op_type == "Gemm" and len(node.input) > 2:
                bias = init[node.input[2]]
            if bias is None:
                raise ValueError(f"{onnx_path}: no bias found for a dense layer")
            lin.bias.copy_(torch.from_numpy(bias.copy()))

    # calibrate the rebuilt BatchNorms on the conv outputs (pre-BN) they will see in training
    stats: dict[nn.Conv2d, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = [c.register_forward_hook(
        lambda mod, _i, out: stats.__setitem__(mod, (out.mean((0, 2, 3)), out.std((0, 2, 3)))))
        for c in bns]
    model.eval()
    model(calib)
    for h in hooks:
        h.remove()
    for conv, bn in bns.items():
        m, s = stats[conv]
        s = s.clamp(min=1e-3)
        bn.running_mean.copy_(m)
        bn.running_var.copy_(s * s)
        bn.weight.copy_(torch.sqrt(s * s + bn.eps))
        bn.bias.copy_(m + folded_bias[bn])
    return _check(model, onnx_path, calib, tol)


def _check(model: nn.Module, onnx_path: str | Path, x: torch.Tensor, tol: float) -> float:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        model.eval()
        out = model(x)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    diff = max(float(np.abs(o.numpy() - r).max()) for o, r in zip(outs, ref))
    if diff > tol:
        raise ValueError(f"{onnx_path}: torch and onnxruntime differ by {diff:.2e} after loading")
    return diff
