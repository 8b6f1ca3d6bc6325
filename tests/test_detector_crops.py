"""OCR training crops cut by the detector, as the reader cuts them, and loadable as a crop set."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")  # plateread.training needs the [train] extra

from plateread.training.data import load_user_set  # noqa: E402
from plateread.training.detector_crops import main  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "car.jpg"


def test_detector_crops_of_a_labelled_photo(tmp_path):
    photos = tmp_path / "mine"
    (photos / "images").mkdir(parents=True)
    shutil.copy(EXAMPLE, photos / "images" / "car.jpg")
    rows = [{"image": "images/car.jpg", "split": "train", "width": 1280, "height": 720,
             "plates": [{"text": "YO76317", "box": [569, 430, 147, 32]},
                        {"text": "NOWHERE1", "box": [10, 10, 60, 20]}]},          # no plate there
            {"image": "images/car.jpg", "split": "test", "width": 1280, "height": 720,
             "plates": [{"text": "TEST123", "box": [569, 430, 147, 32]}]}]          # test: never read
    (photos / "index.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    main(["--data", str(tmp_path), "--sets", "mine", "--out", str(tmp_path / "crops")])
    items = load_user_set(tmp_path / "crops", "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    assert [it.text for it in items] == ["YO76317"]
    h, w = items[0].image.shape[:2]
    assert 2.5 < w / h < 7 and 100 < w < 250                 # the plate, warped upright, not the photo
