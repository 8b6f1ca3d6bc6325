"""Writes a contact sheet of rendered plates (clean and augmented) to eyeball the renderer.

    python training/render_samples.py --fonts ../shared/data/fonts --out runs/render_sheet.png
"""
from __future__ import annotations

import argparse
import random

import cv2
import numpy as np

from plateread.training.augment import synth_sample
from plateread.training.render import LAYOUTS, PlateRenderer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fonts", default="../shared/data/fonts")
    ap.add_argument("--out", default="runs/render_sheet.png")
    ap.add_argument("--per-layout", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    ren = PlateRenderer(a.fonts, seed=a.seed)
    rng = random.Random(a.seed)
    rows = []
    for layout in LAYOUTS:
        cells = []
        for _ in range(a.per_layout):
            r = ren.render(layout)
            clean = cv2.resize(r.image, (192, 64 if r.lines == 1 else 96))
            clean = cv2.copyMakeBorder(clean, 0, 96 - clean.shape[0], 0, 0, cv2.BORDER_CONSTANT)
            aug = cv2.cvtColor(cv2.resize(synth_sample(rng, r.image), (192, 64)), cv2.COLOR_GRAY2BGR)
            aug = cv2.copyMakeBorder(aug, 0, 32, 0, 0, cv2.BORDER_CONSTANT)
            cv2.putText(aug, r.text, (2, 90), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 0), 1)
            cells += [clean, aug]
        rows.append(np.hstack([cv2.copyMakeBorder(c, 2, 2, 2, 2, cv2.BORDER_CONSTANT,
                                                  value=(255, 0, 255)) for c in cells]))
    sheet = np.vstack(rows)
    cv2.imwrite(a.out, sheet)
    print(f"wrote {a.out} {sheet.shape[1]}x{sheet.shape[0]}")


if __name__ == "__main__":
    main()
