"""Makes the example camera clip: the car of ``car.jpg`` driving across an empty road.

    python examples/make_clip.py            # writes examples/gate.mp4 (640×360, 12 fps, 6 s)

The camera config of ``examples/plateread.toml`` plays this clip in a loop at its frame rate as a
stand-in for a live camera (the labelled clips in ../shared/data may not be redistributed).
Deterministic: the same file on every run with the same OpenCV.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent


def frames(car: np.ndarray, size: tuple[int, int] = (640, 360), fps: float = 12.0,
           crossing_s: float = 3.5, empty_s: float = 2.5) -> list[np.ndarray]:
    """A window over a wide road; the car enters from the right, crosses, leaves on the left."""
    h, w = car.shape[:2]
    road = car[h - 40:h, :, :].mean(axis=(0, 1))                       # the road's colour
    canvas = np.empty((h, 3 * w, 3), np.uint8)
    canvas[:] = car[:, :1].mean(axis=1, keepdims=True).astype(np.uint8)  # sky and road, without the car
    canvas[h // 2:] = np.maximum(canvas[h // 2:], road.astype(np.uint8) // 2)
    canvas[:, w:2 * w] = car
    n_cross, n_empty = int(crossing_s * fps), int(empty_s * fps)
    out = []
    for i in range(n_cross + n_empty):
        t = min(1.0, i / max(1, n_cross - 1))
        x = int(round(2 * w - t * (2 * w)))       # the window moves from the right of the car to its left
        x = x if i < n_cross else 0
        view = canvas[:, x:x + w]
        out.append(cv2.resize(view, size, interpolation=cv2.INTER_AREA))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--car", type=Path, default=HERE / "car.jpg")
    ap.add_argument("--out", type=Path, default=HERE / "gate.mp4")
    ap.add_argument("--fps", type=float, default=12.0)
    args = ap.parse_args()
    car = cv2.imread(str(args.car))
    if car is None:
        raise SystemExit(f"cannot read {args.car}")
    clip = frames(car, fps=args.fps)
    h, w = clip[0].shape[:2]
    writer = cv2.VideoWriter(str(args.out), cv2.VideoWriter_fourcc(*"mp4v"), args.fps, (w, h))
    for f in clip:
        writer.write(f)
    writer.release()
    print(f"wrote {args.out}: {len(clip)} frames, {w}×{h}, {args.fps:g} fps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
