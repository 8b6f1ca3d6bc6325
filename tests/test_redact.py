"""`plateread redact`: the plate's pixels change and nothing readable is left, in photos and videos."""
from pathlib import Path

import cv2
import numpy as np

from conftest import fake_plate_image
from plateread import Reader
from plateread.cli.main import main
from plateread.imaging import load_image
from plateread.redact import redact_image, redact_photo, redact_video
from plateread.types import Box

REPO = Path(__file__).resolve().parents[1]
PLATE = (slice(60, 100), slice(100, 220))  # where fake_plate_image draws it


def test_photo_plate_region_changes_and_reads_nothing(tmp_path, write_image):
    src = write_image("in.png", fake_plate_image("AB123"))
    reader = Reader(engine="fake")
    assert [r.plate for r in reader.read(src).results] == ["AB123"]
    for pixelate in (False, True):
        dst = tmp_path / f"out-{pixelate}.png"
        assert redact_photo(reader, src, dst, pixelate=pixelate) == 1
        before, after = load_image(src), load_image(dst)
        assert np.abs(before[PLATE].astype(int) - after[PLATE]).mean() > 20
        assert np.array_equal(before[:20], after[:20])  # far from the plate: untouched
        assert "AB123" not in [r.plate for r in reader.read(dst).results]


def test_margin_grows_the_box():
    img = np.zeros((100, 100, 3), np.uint8)
    img[::2] = 255  # stripes: any blur changes them
    out = redact_image(img, [Box(40, 40, 60, 60)], margin=0.5)
    changed = np.argwhere((out != img).any(axis=2))
    assert changed[:, 0].min() < 35 and changed[:, 0].max() > 65


def test_video_every_frame_redacted(tmp_path):
    src = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (320, 200))
    frames = [fake_plate_image("XY99", at=(60, 20 + 10 * i)) for i in range(8)]
    for f in frames:
        writer.write(f)
    writer.release()
    dst = tmp_path / "clip.mp4"
    stats = redact_video(Reader(engine="fake"), src, dst)
    assert stats.frames == 8 and stats.boxes >= 8
    cap = cv2.VideoCapture(str(dst))
    out = []
    while (ok := cap.read())[0]:
        out.append(ok[1])
    assert len(out) == 8
    reader = Reader(engine="fake")
    for i, (f, g) in enumerate(zip(frames, out)):
        plate = (slice(60, 100), slice(20 + 10 * i, 140 + 10 * i))
        assert np.abs(f[plate].astype(int) - g[plate]).mean() > 20, i
        assert "XY99" not in [r.plate for r in reader.read(g).results]


def test_cli_redacts_the_example_car_with_the_real_engine(tmp_path, capsys):
    car = REPO / "examples" / "car.jpg"
    assert main(["redact", str(car), "--out", str(tmp_path)]) == 0
    assert "1 plate(s) redacted" in capsys.readouterr().out
    assert Reader().read(tmp_path / "car.jpg").results == ()
    assert main(["redact", str(tmp_path / "missing.mp4"), "--out", str(tmp_path)]) == 1
