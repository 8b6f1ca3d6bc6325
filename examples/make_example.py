"""Draws the README's example photo: a synthetic car rear with a rendered plate (no data set photo).

    python examples/make_example.py            # writes examples/car.jpg
    plateread read examples/car.jpg --annotate docs/images

Seeded, so the picture is the same on every run.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from plateread.training.render import PlateRenderer

HERE = Path(__file__).resolve().parent
DEFAULT_FONTS = HERE.parents[1] / "shared" / "data" / "fonts"


def car_scene(plate: np.ndarray, size: tuple[int, int] = (720, 1280), seed: int = 7,
              plate_width: int = 140) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = size
    sky = np.linspace(210, 150, h // 2)[:, None, None] * np.array([1.0, 0.93, 0.8])
    road = np.linspace(95, 60, h - h // 2)[:, None, None] * np.array([1.0, 1.0, 1.0])
    scene = np.concatenate([np.repeat(sky, w, 1), np.repeat(road, w, 1)]).astype(np.float32)
    scene += rng.normal(0, 4, scene.shape)
    for x in range(0, w, 160):  # lane marks
        cv2.line(scene, (x, h - 40), (x + 80, h - 40), (220, 220, 220), 6)
    body, dark = (40, 40, 150), (30, 30, 35)
    cv2.rectangle(scene, (330, 200), (950, 560), body, -1)                 # car body
    cv2.rectangle(scene, (390, 140), (890, 300), (60, 40, 40), -1)         # rear window
    cv2.rectangle(scene, (350, 300), (930, 330), (50, 50, 170), -1)        # boot lid
    for x0 in (345, 855):
        cv2.rectangle(scene, (x0, 340), (x0 + 80, 400), (30, 30, 230), -1)  # tail lights
    cv2.rectangle(scene, (320, 520), (960, 600), dark, -1)                 # bumper
    for x0 in (360, 840):
        cv2.rectangle(scene, (x0, 600), (x0 + 80, 650), (20, 20, 20), -1)  # tyres
    ph, pw = plate.shape[:2]
    plate = cv2.resize(plate, (plate_width, round(ph * plate_width / pw)), interpolation=cv2.INTER_AREA)
    ph, pw = plate.shape[:2]
    x, y = 640 - pw // 2, 430
    src = np.float32([[0, 0], [pw, 0], [pw, ph], [0, ph]])
    dst = np.float32([[x, y + 3], [x + pw, y], [x + pw - 2, y + ph], [x + 2, y + ph + 3]])
    warped = cv2.warpPerspective(plate, cv2.getPerspectiveTransform(src, dst), (w, h))
    mask = cv2.warpPerspective(np.full((ph, pw), 255, np.uint8), cv2.getPerspectiveTransform(src, dst), (w, h))
    scene[mask > 0] = warped[mask > 0]
    scene = cv2.GaussianBlur(np.clip(scene, 0, 255).astype(np.uint8), (3, 3), 0)
    return scene


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fonts", default=str(DEFAULT_FONTS), help="fonts folder (default ../shared/data/fonts)")
    ap.add_argument("--out", default=str(HERE / "car.jpg"))
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    plate = PlateRenderer(args.fonts, seed=args.seed).render("eu")
    cv2.imwrite(args.out, car_scene(plate.image), [cv2.IMWRITE_JPEG_QUALITY, 92])
    print(f"{args.out}: plate {plate.text}")


if __name__ == "__main__":
    main()
