"""Semi-supervised OCR labels for boxed plates without text (open-lpr, ...): the model's own
reads, kept only where two different crops agree, all reads are confident and (unless
``--any-format``) the text fits a known plate format. With ``--second-ocr-model`` a second model
must read both crops the same way too, which lets a lower score bound and plates of countries
without a known format through at the same measured precision.

    python -m plateread.training.pseudo_labels --data ../shared/data --sets open-lpr \\
        --out runs/pseudo --ocr-model src/plateread/models/ocr.onnx
    python -m plateread.training.pseudo_labels --data ../shared/data \\
        --sets open-lpr,ro-dashcam,openimages-plates --out runs/pseudo2 \\
        --second-ocr-model runs/ocr4/ocr.onnx --min-score 0.5 --any-format

Writes ``OUT/<set>/index.jsonl`` (absolute image paths, the labelled box, the agreed text) for
``train_ocr --extra OUT/<set>``. Before that it measures the rule where the truth is known: on
the held-out text-labelled photos and crops, it prints how many plates the rule accepts and how
many of those accepted texts are right, so the labels' error rate is a measured figure, not a
hope.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..engines.crnn.recognizer import CrnnRecognizer
from ..evaluation.dataset import load_index
from ..formats import RegionDecoder
from ..imaging import crop_padded
from ..types import Box
from .data import RealItem, load_real, split_real

#: The two cuts of a box that must agree (pad x, pad y as shares of the box).
CUTS = ((0.06, 0.10), (0.18, 0.30))


def agreed(recs: Sequence[CrnnRecognizer], tagger: RegionDecoder | None, crops: list[np.ndarray],
           min_score: float) -> str | None:
    """The text every model reads on every crop, each read scoring at least ``min_score`` (and
    fitting a plate format unless ``tagger`` is None); else None."""
    reads = [r for rec in recs for r in rec.recognize(crops)]
    texts = {r.text for r in reads}
    if len(texts) != 1 or not reads[0].text or min(r.score for r in reads) < min_score:
        return None
    text = reads[0].text
    return text if tagger is None or tagger.classify(text)[0] is not None else None


def _cuts(image: np.ndarray, box: Box) -> list[np.ndarray]:
    return [crop_padded(image, box, px, py) for px, py in CUTS]


def _held_out_check(recs: Sequence[CrnnRecognizer], tagger: RegionDecoder | None, items: list[RealItem], min_score: float) -> str:
    accepted = right = 0
    for it in items:
        if it.box is not None:
            x0, y0, x1, y1 = (int(round(v)) for v in it.box)
            crops = _cuts(it.image, Box(x0, y0, x1, y1))
        else:  # a crop: the crop itself, and the crop with a little cut off each side
            h, w = it.image.shape[:2]
            crops = [it.image, crop_padded(it.image, Box(w // 20, h // 12, w - w // 20, h - h // 12), 0, 0)]
        text = agreed(recs, tagger, crops, min_score)
        if text is not None:
            accepted += 1
            right += text == it.text
    return (f"rule check on {len(items)} held-out labelled plates: {accepted} accepted "
            f"({accepted / max(len(items), 1):.0%}), {right} of them right "
            f"({right / max(accepted, 1):.1%} precision)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--sets", default="open-lpr", help="comma-separated boxed sets without text")
    ap.add_argument("--out", default="runs/pseudo")
    ap.add_argument("--ocr-model", default=None)
    ap.add_argument("--second-ocr-model", default=None, help="a second model that must agree too")
    ap.add_argument("--min-score", type=float, default=0.8)
    ap.add_argument("--any-format", action="store_true",
                    help="keep texts that fit no known plate format (countries the formats lack)")
    a = ap.parse_args(argv)
    models = [a.ocr_model] + ([a.second_ocr_model] if a.second_ocr_model else [])
    recs = [CrnnRecognizer(ocr_model=m, region="none", second_model=None) for m in models]
    tagger = None if a.any_format else RegionDecoder(None)
    held = [it for it in split_real(load_real(a.data, recs[0].charset))[1] if "?" not in it.text]
    print(_held_out_check(recs, tagger, held, a.min_score))
    for name in a.sets.split(","):
        set_dir = Path(a.data) / name
        rows, plates, kept = [], 0, 0
        for s in load_index(set_dir, "train"):
            boxes = [p.box for p in s.plates if p.box is not None and p.text is None]
            if not boxes:
                continue
            img = cv2.imread(str(s.path), cv2.IMREAD_COLOR)
            if img is None:
                continue
            labelled = []
            for b in boxes:
                plates += 1
                text = agreed(recs, tagger, _cuts(img, b), a.min_score)
                if text is not None:
                    labelled.append({"text": text, "box": [b.xmin, b.ymin, b.width, b.height]})
            kept += len(labelled)
            if labelled:
                rows.append({"image": str(s.path.resolve()), "split": "train", "width": s.width,
                             "height": s.height, "plates": labelled})
        out = Path(a.out) / name
        out.mkdir(parents=True, exist_ok=True)
        (out / "index.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        print(f"{name}: {kept} of {plates} boxed plates labelled ({kept / max(plates, 1):.0%}) -> {out / 'index.jsonl'}")


if __name__ == "__main__":
    main()
