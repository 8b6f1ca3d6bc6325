"""`plateread finetune`: a short fine-tune of each shipped model on tiny generated data, end to
end (ONNX weights back into torch, training, export, the new model loaded by the reader)."""
import json
import random

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="fine-tuning needs the [train] extra (torch)")
pytest.importorskip("onnx", reason="ONNX weight loading needs the onnx package")

from plateread import Reader  # noqa: E402
from plateread.cli.main import main  # noqa: E402
from plateread.engines.learned.detector import LearnedDetector  # noqa: E402
from plateread.training.render import PlateRenderer  # noqa: E402


@pytest.fixture(scope="module")
def renderer():
    try:
        return PlateRenderer(None, seed=5)
    except FileNotFoundError as exc:
        pytest.skip(f"no plate fonts on this machine: {exc}")


def test_onnx_weights_reload_exactly():
    from plateread.engines.crnn.recognizer import DEFAULT_MODEL
    from plateread.training.from_onnx import crnn_config, load_onnx_weights
    from plateread.training.model import CRNN

    model = CRNN.from_config(37, crnn_config(DEFAULT_MODEL))  # the shipped model's own shape
    x = torch.rand(16, 1, 64, 192)
    diff = load_onnx_weights(model, DEFAULT_MODEL, x)
    assert diff < 1e-3
    # the BatchNorms were rebuilt from the statistics of the batch they were calibrated on, so a
    # train-mode pass on that batch (batch statistics) gives what the shipped model gives
    with torch.no_grad():
        model.eval()
        ref = model(x).exp()
        model.train()
        model.rnn.eval()  # no dropout: only the BatchNorms differ between the two passes
        got = model(x).exp()
    assert (ref - got).abs().max() < 0.05


def test_finetune_ocr_on_named_crops(tmp_path, renderer):
    crops = tmp_path / "crops"
    crops.mkdir()
    for i in range(24):
        r = renderer.render("eu")
        cv2.imwrite(str(crops / f"{r.text}_{i}.png"), cv2.resize(r.image, (180, 40)))
    out = tmp_path / "my_ocr.onnx"
    rc = main(["finetune", "ocr", str(crops), "--out", str(out), "--minutes", "0.15", "--threads", "1"])
    assert rc == 0 and out.is_file()
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["charset"] and card["step"] > 0
    img = cv2.imread(str(next(crops.iterdir())))
    result = Reader(ocr_model=str(out)).read_plate(img)  # the new model loads and reads
    assert result.width == 180


def test_finetune_detector_on_boxed_photos(tmp_path, renderer):
    data = tmp_path / "mycam"
    (data / "images").mkdir(parents=True)
    rng = random.Random(0)
    rows = []
    for i in range(10):
        img = np.full((360, 640, 3), rng.randint(40, 160), np.uint8)
        plate = cv2.resize(renderer.render("eu").image, (150, 32))
        x, y = rng.randint(0, 480), rng.randint(150, 320)
        img[y:y + 32, x:x + 150] = plate
        cv2.imwrite(str(data / "images" / f"{i}.jpg"), img)
        rows.append({"image": f"images/{i}.jpg", "split": "train", "width": 640, "height": 360,
                     "plates": [{"text": None, "box": [x, y, 150, 32]}]})
    (data / "index.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "my_det.onnx"
    rc = main(["finetune", "detector", str(data), "--out", str(out), "--minutes", "0.15", "--threads", "1"])
    assert rc == 0 and out.is_file()
    det = LearnedDetector(detector_model=str(out))
    det.detect(cv2.imread(str(data / "images" / "0.jpg")))  # runs; a 9-second fine-tune proves no accuracy
