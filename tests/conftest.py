import os
from pathlib import Path

import cv2
import numpy as np
import pytest

import fakes  # noqa: F401  (registers the 'fake' engine)

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("PLATEREAD_DATA", REPO.parent / "shared" / "data"))


def require_data(*sets: str) -> Path:
    """The shared data folder, or a skip saying what is missing."""
    for s in sets or ("",):
        if not (DATA_DIR / s).exists():
            pytest.skip(f"needs the shared data set {DATA_DIR / s} (absent on this machine)")
    return DATA_DIR


def fake_plate_image(text: str, size=(200, 320), at=(60, 100), plate=(40, 120)) -> np.ndarray:
    """A dark image with one bright 'plate' carrying ``text`` for the fake engine."""
    img = np.full((*size, 3), 30, np.uint8)
    y, x = at
    ph, pw = plate
    img[y:y + ph, x:x + pw] = 255  # 255 decodes as end-of-text
    fakes.encode_text(img[y:y + ph, x:x + pw], text)
    return img


@pytest.fixture
def write_image(tmp_path):
    def _write(name: str, image: np.ndarray) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        ok, buf = cv2.imencode(".png", image)
        assert ok
        path.write_bytes(buf.tobytes())
        return path
    return _write
