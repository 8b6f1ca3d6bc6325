"""OCR training crops cut the way the reader cuts them: by the detector.

The OCR learns from labelled boxes (jittered), but at run time it reads the detector's crops,
warped upright from the predicted corners with the detector's own idea of where a plate ends (a
fine-tuned detector that boxes a plate with more of its frame changed which US plates the same
OCR read). This writes, for every text-labelled plate of the given photo sets that the detector
finds (IoU >= 0.5), the crop the Reader would hand the OCR, as a crop set for
``train_ocr --extra``:

    python -m plateread.training.detector_crops --data ../shared/data --sets openalpr-us,openalpr-br \\
        --extra runs/pseudo2/open-lpr --extra runs/pseudo2/ro-dashcam --out runs/detcrops

Only ``train`` splits are read; the OCR's text hold-out applies to these crops as to any set.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from ..engines.learned.detector import LearnedDetector
from ..evaluation.dataset import load_index
from ..types import Box

MIN_IOU = 0.5


def best_match(dets: list, box: Box) -> object | None:
    """The detection overlapping ``box`` most, if at IoU >= MIN_IOU."""
    scored = [(d.box.iou(box), d) for d in dets]
    iou, det = max(scored, key=lambda t: t[0], default=(0.0, None))
    return det if iou >= MIN_IOU else None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--sets", default="openalpr-us,openalpr-br", help="text-labelled photo sets in --data")
    ap.add_argument("--extra", action="append", default=[], metavar="DIR",
                    help="more photo sets with texts and boxes (an index.jsonl, e.g. pseudo-labels)")
    ap.add_argument("--detector-model", default=None, help="the detector whose crops to cut (default: shipped)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    det = LearnedDetector(detector_model=a.detector_model, threads=2)
    out = Path(a.out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows, plates, found = [], 0, 0
    dirs = [Path(a.data) / n for n in a.sets.split(",") if n] + [Path(d) for d in a.extra]
    for set_dir in dirs:
        for s in load_index(set_dir, "train"):
            labelled = [p for p in s.plates if p.text and p.box is not None]
            if not labelled:
                continue
            img = cv2.imread(str(s.path), cv2.IMREAD_COLOR)
            if img is None:
                continue
            dets = det.detect(img)
            for p in labelled:
                plates += 1
                d = best_match(dets, p.box)
                if d is None or not isinstance(d.crop, np.ndarray) or d.crop.size == 0:
                    continue
                found += 1
                name = f"images/{len(rows):06d}.png"
                cv2.imwrite(str(out / name), d.crop)
                rows.append({"image": name, "split": "train", "width": int(d.crop.shape[1]),
                             "height": int(d.crop.shape[0]), "plates": [{"text": p.text, "box": None}],
                             "source": f"{set_dir.name}/{s.name}"})
    (out / "index.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    print(f"{found} of {plates} labelled plates found by {det.model_path} -> {out / 'index.jsonl'}")


if __name__ == "__main__":
    main()
