"""The learned plate detector: a CenterNet-style ONNX model, decoded in numpy.

The ONNX graph outputs raw head maps at stride 4 (heat-map after sigmoid, log box size,
sub-pixel centre offset, four corners as offsets from the centre in box units); everything
else — peak picking, NMS, mapping back through the letterbox and rectifying the plate for
OCR — lives here, so the same decoding serves inference, validation during training and tests.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ...debug import DebugSink
from ...imaging import as_bgr, crop_padded
from ...types import Box, Detection

MODEL_DIR = Path(__file__).resolve().parents[2] / "models"
DEFAULT_MODEL = MODEL_DIR / "detector.onnx"
DEFAULT_THRESHOLD = 0.35  # for a model whose .json names no tuned threshold
#: The zoom pass (see LearnedDetector._zoomed): photos shrunk below this scale, peaks scored at
#: least ZOOM_LOW and narrower than ZOOM_MAX_WIDTH input pixels, at most ZOOM_MAX_WINDOWS windows
#: of half the input size each, run at ZOOM_FACTOR× the first pass's scale.
ZOOM_BELOW_SCALE = 0.7
ZOOM_LOW = 0.25  # tune_detector --zoom: held-out recall 0.689 -> 0.702 at 1.42 passes/photo (0.15: 0.708 at 2.56)
ZOOM_MAX_WIDTH = 40
#: A sure first-pass detection narrower than this (input px) is looked at again too: at that size
#: its box is coarse, and a zoom-window detection inside it replaces it.
ZOOM_REFINE_WIDTH = 20
ZOOM_MAX_WINDOWS = 2
ZOOM_FACTOR = 3.0
ZOOM_MARGIN = 0.1  # zoom-window detections need threshold + this (see LearnedDetector)
PAD_VALUE = 114
#: Box sizes are regressed as log(size / SIZE_UNIT) in letterboxed-input pixels.
SIZE_UNIT = 16.0
STRIDE = 4


@dataclass(frozen=True)
class Letterbox:
    """Maps original pixels to model-input pixels: ``input = original * scale + (pad_x, pad_y)``."""

    scale: float
    pad_x: int
    pad_y: int
    width: int   # model input size
    height: int

    def to_original(self, xy: np.ndarray) -> np.ndarray:
        return (np.asarray(xy, np.float32) - (self.pad_x, self.pad_y)) / self.scale

    def to_input(self, xy: np.ndarray) -> np.ndarray:
        return np.asarray(xy, np.float32) * self.scale + (self.pad_x, self.pad_y)


def letterbox(image: np.ndarray, width: int, height: int) -> tuple[np.ndarray, Letterbox]:
    """Resizes keeping the aspect and pads (centred), so plates keep their true shape."""
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    px, py = (width - nw) // 2, (height - nh) // 2
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    out = np.full((height, width, 3), PAD_VALUE, np.uint8)
    out[py:py + nh, px:px + nw] = cv2.resize(image, (nw, nh), interpolation=interp)
    return out, Letterbox(scale, px, py, width, height)


@dataclass(frozen=True)
class RawDetection:
    """One decoded peak, in model-input pixels (before mapping back through the letterbox)."""

    score: float
    box: np.ndarray      # x0, y0, x1, y1
    corners: np.ndarray  # 4×2: top-left, top-right, bottom-right, bottom-left


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of boxes a (N×4) and b (M×4), x0 y0 x1 y1 (inverted boxes count as empty);
    used by NMS, the corner check, validation and the benchmarks."""
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area = lambda x: np.clip(x[:, 2] - x[:, 0], 0, None) * np.clip(x[:, 3] - x[:, 1], 0, None)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def match_boxes(dets: np.ndarray, gts: np.ndarray, iou: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Greedy one-to-one matching at IoU >= ``iou``, labels with the clearest match first.
    Returns (label found, M bools; detection used, N bools); shared by validation and benchmarks."""
    found, used = np.zeros(len(gts), bool), np.zeros(len(dets), bool)
    if not len(dets) or not len(gts):
        return found, used
    m = iou_matrix(dets, gts)
    for j in np.argsort(-m.max(0)):
        col = np.where(used, -1.0, m[:, j])
        i = int(np.argmax(col))
        if col[i] >= iou:
            used[i] = found[j] = True
    return found, used


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy NMS, best first. Peaks are already local maxima, but a long plate can still
    produce two peaks a few cells apart whose boxes overlap heavily."""
    order = list(np.argsort(-scores, kind="stable"))
    keep: list[int] = []
    while order:
        i = order.pop(0)
        keep.append(int(i))
        if order:
            rest = np.array(order)
            order = [int(j) for j in rest[iou_matrix(boxes[i:i + 1], boxes[rest])[0] <= iou]]
    return keep


def _maxpool3(a: np.ndarray) -> np.ndarray:
    """3×3 max filter (the CenterNet peak test); borders see only the inside of the map."""
    return cv2.dilate(np.ascontiguousarray(a, np.float32), np.ones((3, 3), np.uint8),
                      borderType=cv2.BORDER_CONSTANT, borderValue=-1e9)


def decode(heat: np.ndarray, size: np.ndarray, offset: np.ndarray, corners: np.ndarray, *,
           threshold: float, nms_iou: float, max_dets: int, stride: int = STRIDE,
           size_unit: float = SIZE_UNIT, top_k: int = 100) -> list[RawDetection]:
    """Peaks (3×3 local maxima above ``threshold``) → boxes and corners in input pixels.

    Shapes without the batch axis: heat (1,H,W), size (2,H,W), offset (2,H,W), corners (8,H,W).
    """
    hm = heat[0]
    peaks = (hm == _maxpool3(hm)) & (hm >= threshold)
    ys, xs = np.nonzero(peaks)
    if not len(ys):
        return []
    scores = hm[ys, xs]
    order = np.argsort(-scores, kind="stable")[:top_k]
    ys, xs, scores = ys[order], xs[order], scores[order]
    cx = (xs + offset[0, ys, xs]) * stride
    cy = (ys + offset[1, ys, xs]) * stride
    w = np.exp(np.clip(size[0, ys, xs], -6, 6)) * size_unit
    h = np.exp(np.clip(size[1, ys, xs], -6, 6)) * size_unit
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1).astype(np.float32)
    c = corners[:, ys, xs].T.reshape(-1, 4, 2)
    quads = (np.stack([cx, cy], 1)[:, None, :] + c * np.stack([w, h], 1)[:, None, :]).astype(np.float32)
    keep = nms(boxes, scores, nms_iou)[:max_dets]
    return [RawDetection(float(scores[i]), boxes[i], quads[i]) for i in keep]


def plausible_quad(quad: np.ndarray, box: np.ndarray) -> bool:
    """Corners worth rectifying by: a convex, clockwise quad that roughly fills the box.

    A wrong quad would warp the plate into garbage, so anything doubtful falls back to the box.
    """
    q = np.asarray(quad, np.float64)
    edges = np.roll(q, -1, 0) - q
    cross = edges[:, 0] * np.roll(edges, -1, 0)[:, 1] - edges[:, 1] * np.roll(edges, -1, 0)[:, 0]
    if not np.all(cross > 0):  # clockwise in image coordinates (y down)
        return False
    area = cv2.contourArea(q.astype(np.float32))
    bw, bh = box[2] - box[0], box[3] - box[1]
    if bw <= 1 or bh <= 1 or area < 0.4 * bw * bh:
        return False
    qb = np.array([q[:, 0].min(), q[:, 1].min(), q[:, 0].max(), q[:, 1].max()])
    return float(iou_matrix(qb[None], np.asarray(box, np.float64)[None])[0, 0]) >= 0.5


def rectify(image: np.ndarray, quad: np.ndarray, margin: tuple[float, float] = (0.05, 0.10),
            max_height: int = 160) -> np.ndarray:
    """Warps the quad (TL, TR, BR, BL) to an upright crop with the plate's measured aspect.

    The quad is grown by ``margin`` (of its width, height) so edge characters are not clipped.
    """
    q = np.asarray(quad, np.float32)
    top, bottom = np.linalg.norm(q[1] - q[0]), np.linalg.norm(q[2] - q[3])
    left, right = np.linalg.norm(q[3] - q[0]), np.linalg.norm(q[2] - q[1])
    pw, ph = max((top + bottom) / 2, 2.0), max((left + right) / 2, 2.0)
    out_h = int(np.clip(round(ph * (1 + 2 * margin[1])), 16, max_height))
    out_w = max(8, round(out_h * pw * (1 + 2 * margin[0]) / (ph * (1 + 2 * margin[1]))))
    mx, my = margin[0] * out_w / (1 + 2 * margin[0]), margin[1] * out_h / (1 + 2 * margin[1])
    dst = np.array([[mx, my], [out_w - mx, my], [out_w - mx, out_h - my], [mx, out_h - my]],
                   np.float32)
    m = cv2.getPerspectiveTransform(q, dst)
    return cv2.warpPerspective(image, m, (out_w, out_h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)


def box_crop(image: np.ndarray, box: Box, pad: float = 0.08) -> np.ndarray:
    return crop_padded(image, box, pad, pad)


def to_tensor(image: np.ndarray) -> np.ndarray:
    """HWC BGR uint8 → 1×3×H×W float32 0–255 (normalisation is inside the graph)."""
    return np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)


class LearnedDetector:
    """Finds plates with the shipped ONNX model; crops are rectified when corners are trusted."""

    name = "learned"

    def __init__(self, *, detector_model: str | None = None, threshold: float | None = None,
                 nms_iou: float = 0.5, max_plates: int = 20, threads: int = 1,
                 rectify: bool = True, zoom: bool = True, zoom_threshold: float | None = None) -> None:
        import onnxruntime as ort

        path = Path(detector_model) if detector_model else DEFAULT_MODEL
        self.model_path = path
        if not path.is_file():
            raise FileNotFoundError(
                f"detector model {path} not found; train one with "
                "`python -m plateread.training.train_detector` and export it with "
                "`python -m plateread.training.export_detector`, or pass detector_model=")
        meta_path = path.with_suffix(".json")
        self.meta: dict[str, Any] = (json.loads(meta_path.read_text(encoding="utf-8"))
                                     if meta_path.is_file() else {})
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.height = int(self.meta.get("input_height") or inp.shape[2])
        self.width = int(self.meta.get("input_width") or inp.shape[3])
        self.stride = int(self.meta.get("stride", STRIDE))
        self.size_unit = float(self.meta.get("size_unit", SIZE_UNIT))
        self.outputs = ["heatmap", "size", "offset", "corners"]
        # the model's own operating point (tuned on held-out photos) unless the caller picks one.
        # Below it, down to ``verify_threshold``, detections are still handed on, marked unsure: the
        # Reader keeps them only when the OCR reads them confidently (a badge or a caption rarely
        # reads like a plate), which finds more faint plates at the same false-alarm rate.
        tuned = threshold is None
        if threshold is None:
            threshold = float(self.meta.get("threshold", DEFAULT_THRESHOLD))
        self.threshold, self.nms_iou = float(threshold), float(nms_iou)
        self.verify_threshold = (min(self.threshold, float(self.meta.get("verify_threshold", self.threshold)))
                                 if tuned else self.threshold)
        self.max_plates, self.rectify = int(max_plates), bool(rectify)
        # the zoom pass feeds the model other input sizes: only for a graph with free H and W
        self.zoom = bool(zoom) and all(isinstance(d, str) for d in inp.shape[2:])
        self._zoom_threshold = float(zoom_threshold) if zoom_threshold is not None else None

    def _run(self, boxed: np.ndarray, threshold: float) -> tuple[list[RawDetection], np.ndarray]:
        heat, size, offset, corners = self.session.run(self.outputs, {self.input_name: to_tensor(boxed)})
        dets = decode(heat[0], size[0], offset[0], corners[0], threshold=threshold,
                      nms_iou=self.nms_iou, max_dets=self.max_plates, stride=self.stride,
                      size_unit=self.size_unit)
        return dets, heat[0, 0]

    @property
    def zoom_threshold(self) -> float:
        """Score a zoom-window detection needs: a window shows less of the scene (no car around a
        badge or a caption), so more than a first-pass one; follows ``threshold`` when a caller
        changes it, unless set explicitly."""
        if self._zoom_threshold is not None:
            return self._zoom_threshold
        return min(0.95, self.threshold + ZOOM_MARGIN)

    def _zoomed(self, image: np.ndarray) -> tuple[list[tuple[float, np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
        """First pass, then a second look at higher resolution where it pays.

        A photo much larger than the input (a 1600×1200 phone photo shrinks 3.2×) leaves distant
        plates 10–20 px wide, where the model is unsure rather than blind: it scores them between
        ZOOM_LOW and the threshold. Only then, and only for the best few such peaks, a small window
        around each is run again at up to ZOOM_FACTOR× the first scale (never above native), where
        the plate has a size the model knows. Photos near the input size never pay for it.
        Returns (score, box x0 y0 x1 y1, quad 4×2) in original pixels, the letterboxed input and
        the first pass's heat-map.
        """
        boxed, lb = letterbox(image, self.width, self.height)
        keep = min(self.threshold, self.verify_threshold)  # a caller may lower ``threshold`` later
        low = min(ZOOM_LOW, keep)
        dets, heat = self._run(boxed, low if self.zoom else keep)

        def original(r: RawDetection, rlb: Letterbox, origin: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
            return r.score, rlb.to_original(r.box.reshape(2, 2)).reshape(4) + np.tile(origin, 2), \
                rlb.to_original(r.corners) + origin

        zero = np.zeros(2, np.float32)
        first = {id(d): original(d, lb, zero) for d in dets if d.score >= keep}
        found = list(first.values())
        if not self.zoom or lb.scale > ZOOM_BELOW_SCALE:
            return found, boxed, heat
        # unsure small peaks, and sure ones so small at this scale that their box is a guess
        unsure = [d for d in dets if d.box[2] - d.box[0] < (ZOOM_MAX_WIDTH if d.score < keep else ZOOM_REFINE_WIDTH)
                  ][:ZOOM_MAX_WINDOWS]
        H, W = image.shape[:2]
        zs = min(1.0, lb.scale * ZOOM_FACTOR)
        zw, zh = self.width // 2, self.height // 2
        win_w, win_h = min(W, round(zw / zs)), min(H, round(zh / zs))
        for d in unsure:
            cx, cy = lb.to_original((d.box[:2] + d.box[2:]) / 2)
            x0 = int(np.clip(round(cx - win_w / 2), 0, W - win_w))
            y0 = int(np.clip(round(cy - win_h / 2), 0, H - win_h))
            zboxed, zlb = letterbox(image[y0:y0 + win_h, x0:x0 + win_w], zw, zh)
            zdets, _ = self._run(zboxed, self.zoom_threshold)
            cands = [original(z, zlb, np.array([x0, y0], np.float32)) for z in zdets]
            coarse = first.get(id(d))
            if coarse is not None:  # a sure but tiny detection: plates the zoom finds inside it replace it
                inside = [c for c in cands if _centre_in(c[1], coarse[1])]
                if inside:  # each detection gets one window, so ``coarse`` is still in ``found``
                    found = [f for f in found if f is not coarse] + inside
                    cands = [c for c in cands if not _centre_in(c[1], coarse[1])]
            for cand in cands:
                prev = np.array([b for _, b, _ in found], np.float32).reshape(-1, 4)
                if not len(prev) or iou_matrix(cand[1][None], prev).max() < 0.3:
                    found.append(cand)
        return found, boxed, heat

    def detect(self, image: np.ndarray, debug: DebugSink | None = None) -> list[Detection]:
        image = as_bgr(image)
        h, w = image.shape[:2]
        found, boxed, heat = self._zoomed(image)
        out: list[Detection] = []
        for score, (x0, y0, x1, y1), quad in found:
            box = Box(int(max(0, round(x0))), int(max(0, round(y0))),
                      int(min(w, round(x1))), int(min(h, round(y1))))
            if box.width < 2 or box.height < 2:
                continue
            ok = plausible_quad(quad, np.array([x0, y0, x1, y1]))
            crop = rectify(image, quad) if (self.rectify and ok) else box_crop(image, box)
            corners = tuple((float(x), float(y)) for x, y in quad) if ok else None
            out.append(Detection(box=box, score=score, crop=crop, corners=corners))
        if debug is not None:
            debug.add("learned_input", boxed)
            hm = cv2.applyColorMap((np.clip(heat, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
            hm = cv2.resize(hm, (self.width, self.height), interpolation=cv2.INTER_NEAREST)
            debug.add("learned_heatmap", cv2.addWeighted(boxed, 0.4, hm, 0.6, 0))
            debug.add("learned_detections", draw_detections(image, out))
        return out


def _centre_in(box: np.ndarray, outer: np.ndarray) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return bool(outer[0] <= cx <= outer[2] and outer[1] <= cy <= outer[3])


def draw_detections(image: np.ndarray, dets: list[Detection]) -> np.ndarray:
    vis = as_bgr(image).copy()
    for d in dets:
        cv2.rectangle(vis, (d.box.xmin, d.box.ymin), (d.box.xmax, d.box.ymax), (0, 255, 0), 2)
        if d.corners:
            pts = np.array(d.corners, np.int32).reshape(-1, 1, 2)
            cv2.polylines(vis, [pts], True, (0, 0, 255), 1, cv2.LINE_AA)
            cv2.circle(vis, (int(d.corners[0][0]), int(d.corners[0][1])), 3, (255, 0, 0), -1)
        cv2.putText(vis, f"{d.score:.2f}", (d.box.xmin, max(10, d.box.ymin - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 0), 1, cv2.LINE_AA)
    return vis
