"""The learned detector's decoding, geometry and rectification; the model only where present."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from plateread.debug import DebugSink
from plateread.engines.learned import detector as ld
from plateread.engines.learned.detector import (Letterbox, decode, letterbox, nms, plausible_quad,
                                                rectify)

W, H = 640, 384
HH, WW = H // 4, W // 4


def maps(peaks: list[tuple[int, int, float, float, float]]) -> tuple[np.ndarray, ...]:
    """Head maps with peaks (cell x, cell y, score, box w, box h in input px), axis-aligned corners."""
    heat = np.zeros((1, HH, WW), np.float32)
    size = np.zeros((2, HH, WW), np.float32)
    off = np.full((2, HH, WW), 0.5, np.float32)
    corners = np.tile(np.array([-.5, -.5, .5, -.5, .5, .5, -.5, .5], np.float32)[:, None, None], (1, HH, WW))
    for x, y, s, w, h in peaks:
        heat[0, y, x] = s
        size[:, y, x] = math.log(w / ld.SIZE_UNIT), math.log(h / ld.SIZE_UNIT)
    return heat, size, off, corners


def test_letterbox_geometry_round_trip() -> None:
    img = np.zeros((720, 1280, 3), np.uint8)
    boxed, lb = letterbox(img, W, H)
    assert boxed.shape == (H, W, 3)
    assert lb.scale == pytest.approx(0.5) and lb.pad_x == 0 and lb.pad_y == 12
    assert (boxed[:12] == ld.PAD_VALUE).all() and (boxed[12:372] == 0).all()
    pts = np.array([[0, 0], [1279, 719], [333.5, 101.25]], np.float32)
    np.testing.assert_allclose(lb.to_original(lb.to_input(pts)), pts, atol=1e-3)
    _, tall = letterbox(np.zeros((1000, 500, 3), np.uint8), W, H)
    assert tall.pad_y == 0 and tall.pad_x == (W - round(500 * tall.scale)) // 2


def test_decode_peak_to_box_through_letterbox() -> None:
    dets = decode(*maps([(50, 30, 0.9, 80, 20)]), threshold=0.35, nms_iou=0.5, max_dets=20)
    assert len(dets) == 1
    cx, cy = 50.5 * 4, 30.5 * 4
    np.testing.assert_allclose(dets[0].box, [cx - 40, cy - 10, cx + 40, cy + 10], atol=1e-3)
    np.testing.assert_allclose(dets[0].corners[0], [cx - 40, cy - 10], atol=1e-3)
    np.testing.assert_allclose(dets[0].corners[2], [cx + 40, cy + 10], atol=1e-3)
    assert dets[0].score == pytest.approx(0.9)
    lb = Letterbox(0.5, 0, 12, W, H)  # a 1280x720 photo
    np.testing.assert_allclose(lb.to_original(dets[0].box[:2]), [(cx - 40) * 2, (cy - 10 - 12) * 2], atol=1e-3)


def test_threshold_and_nms_keep_the_best() -> None:
    assert decode(*maps([(50, 30, 0.3, 80, 20)]), threshold=0.35, nms_iou=0.5, max_dets=20) == []
    # two separate local maxima whose boxes overlap heavily: only the stronger stays
    dets = decode(*maps([(50, 30, 0.6, 120, 30), (52, 30, 0.8, 120, 30), (120, 70, 0.5, 60, 20)]),
                  threshold=0.35, nms_iou=0.5, max_dets=20)
    assert [round(d.score, 2) for d in dets] == [0.8, 0.5]
    assert decode(*maps([(50, 30, 0.6, 80, 20), (120, 70, 0.5, 60, 20)]), threshold=0.35,
                  nms_iou=0.5, max_dets=1)[0].score == pytest.approx(0.6)
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
    assert nms(boxes, np.array([0.5, 0.9, 0.1]), 0.5) == [1, 2]


def test_plausible_quad() -> None:
    box = np.array([0, 0, 100, 30])
    good = np.array([[2, 3], [98, 0], [100, 28], [0, 30]], np.float32)
    assert plausible_quad(good, box)
    assert not plausible_quad(good[[0, 3, 2, 1]], box)       # anticlockwise: corners mislabelled
    assert not plausible_quad(good[[0, 2, 1, 3]], box)       # self-intersecting
    assert not plausible_quad(good * 0.3, box)               # far smaller than its box


def test_rectify_slanted_plate_gives_upright_crop() -> None:
    plate = np.full((60, 240, 3), 255, np.uint8)
    plate[20:40, 20:220] = 0  # a horizontal dark band: upright means it stays horizontal
    quad = np.array([[300, 200], [520, 150], [530, 215], [305, 262]], np.float32)
    scene = np.full((480, 800, 3), 90, np.uint8)
    m = cv2.getPerspectiveTransform(np.array([[0, 0], [240, 0], [240, 60], [0, 60]], np.float32), quad)
    warped = cv2.warpPerspective(plate, m, (800, 480))
    mask = cv2.warpPerspective(np.full((60, 240), 255, np.uint8), m, (800, 480)) > 127
    scene[mask] = warped[mask]
    crop = rectify(scene, quad, margin=(0.0, 0.0))
    h, w = crop.shape[:2]
    assert 3.0 < w / h < 4.6  # measured aspect of the quad, near the plate's 4:1
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY).astype(np.float32)
    rows = gray[:, int(0.15 * w):int(0.85 * w)].mean(1)
    assert rows[int(0.5 * h)] < 60 and rows[int(0.12 * h)] > 200 and rows[int(0.88 * h)] > 200
    with_margin = rectify(scene, quad)
    assert with_margin.shape[0] > h and with_margin.shape[1] > w


def test_training_targets_decode_back_to_the_plates() -> None:
    """Training encoding and inference decoding must agree on every convention."""
    from plateread.training.det_data import Obj, build_targets

    quad = np.array([[101, 52], [219, 47], [221, 83], [103, 90]], np.float32)
    box = Obj(np.array([[400, 200], [480, 200], [480, 230], [400, 230]], np.float32), False)
    objs = [Obj(quad, True), box]
    t = build_targets(objs, [], W, H)
    heat, size, off, corners = (np.zeros((c, HH, WW), np.float32) for c in (1, 2, 2, 8))
    heat[:] = t["heat"]
    for k in range(2):
        y, x = divmod(int(t["ind"][k]), WW)
        size[:, y, x], off[:, y, x], corners[:, y, x] = t["size"][k], t["offset"][k], t["corners"][k]
    dets = decode(heat, size, off, corners, threshold=0.5, nms_iou=0.5, max_dets=20)
    assert len(dets) == 2
    got = sorted(dets, key=lambda d: d.box[0])
    np.testing.assert_allclose(got[0].box, objs[0].box, atol=1e-3)
    np.testing.assert_allclose(got[0].corners, quad, atol=1e-3)
    np.testing.assert_allclose(got[1].box, objs[1].box, atol=1e-3)
    assert t["cmask"][:2].tolist() == [1.0, 0.0]


def _tiny_onnx(tmp_path: Path) -> tuple[Path, "object"]:
    torch = pytest.importorskip("torch")
    from plateread.training.det_model import PlateNet

    torch.manual_seed(0)
    model = PlateNet((8, 8, 16, 16, 16), 8, (1, 1, 1, 1)).eval()
    path = tmp_path / "det.onnx"
    with torch.no_grad():
        torch.onnx.export(model, (torch.rand(1, 3, H, W) * 255,), str(path), opset_version=17,
                          input_names=["input"], output_names=["heatmap", "size", "offset", "corners"],
                          dynamo=False)
    return path, model


def test_torch_onnx_parity_and_pipeline(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx", reason="ONNX export needs the onnx package (pip install plateread[train])")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path, model = _tiny_onnx(tmp_path)
    x = torch.rand(1, 3, H, W) * 255
    with torch.no_grad():
        ref = [t.numpy() for t in model(x)]
    det = ld.LearnedDetector(detector_model=str(path), threshold=0.0, max_plates=5)
    got = det.session.run(det.outputs, {det.input_name: x.numpy()})
    assert max(float(np.abs(r - g).max()) for r, g in zip(ref, got)) < 1e-3
    sink = DebugSink()
    dets = det.detect(np.random.default_rng(0).integers(0, 255, (720, 1280, 3), np.uint8), sink)
    assert len(dets) <= 5 and all(d.crop.ndim == 3 and d.crop.size for d in dets)
    assert len(sink.stages) == 3


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train_detector"):
        ld.LearnedDetector(detector_model=str(tmp_path / "absent.onnx"))


needs_model = pytest.mark.skipif(not ld.DEFAULT_MODEL.is_file(),
                                 reason=f"no shipped detector model at {ld.DEFAULT_MODEL} (not trained yet)")


@needs_model
def test_shipped_model_runs_and_is_registered() -> None:
    from plateread import registry

    det = registry.create_detector("learned")
    assert det.name == "learned"
    dets = det.detect(np.full((720, 1280, 3), 128, np.uint8))
    assert isinstance(dets, list)
    assert det.meta.get("input_width") and det.meta.get("training_command") is not None
    assert ld.DEFAULT_MODEL.stat().st_size < 10e6


def test_crop_samples_keep_the_inference_plate_scale() -> None:
    """--crop trains on windows of photos scaled for the full input: plates keep their size."""
    from conftest import DATA_DIR
    from plateread.training.det_data import SCALE_RANGE, Photo, SampleGenerator
    from plateread.training.render import find_fonts

    if not find_fonts(DATA_DIR / "fonts"):
        pytest.skip("no plate fonts for the renderer")
    img = np.random.default_rng(1).integers(0, 255, (720, 1280, 3), np.uint8)
    photo = Photo("t/a.jpg", img, np.array([[900, 500, 1000, 530]], np.float32), False)
    gen = SampleGenerator([photo], None, 320, 320, seed=3, synthetic=0.0, scale_ref=(W, H), crop_focus=0.8)
    widths = []
    for _ in range(30):
        canvas, objs, _, _ = gen.sample()
        assert canvas.shape == (320, 320, 3)
        widths += [o.box[2] - o.box[0] for o in objs]
    assert len(widths) >= 15  # crops mostly sit around a plate
    # letterbox scale for 1280x720 into 640x384 is 0.5, times the random zoom (+ rotation slack)
    lo, hi = SCALE_RANGE
    assert min(widths) >= 100 * 0.5 * lo * 0.9 and max(widths) <= 100 * 0.5 * hi * 1.1
