"""Fits the read-score calibration of an exported OCR model on held-out real crops.

    python -m plateread.training.calibrate_ocr --data ../shared/data --model src/plateread/models/ocr.onnx --write

Reads the 10% hash hold-out of the text-labelled real train crops (the OCR trainer never trains
on them; uc3m-lp-crops are left out, their greyed-out characters make "right" ill-defined), fits
P(right) from the raw score and the weakest character (``engines.crnn.calibration``), prints the
figures before and after, and with ``--write`` stores the map in the model's .json card.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..engines.crnn.calibration import features, fit
from ..engines.crnn.recognizer import DEFAULT_MODEL, CrnnRecognizer
from ..evaluation.metrics import auroc
from .data import clean_input, load_real, split_real


def _report(name: str, scores: np.ndarray, ok: np.ndarray) -> str:
    high = scores > 0.9
    wrong = int((~ok & high).sum())
    return (f"{name}: AUROC {auroc(list(scores), list(ok)):.3f}; {int(high.sum())} reads > 0.9, {wrong} wrong "
            f"({wrong / max(int(high.sum()), 1):.1%}); mean score {scores.mean():.3f} vs accuracy {ok.mean():.3f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--write", action="store_true", help="store the calibration in the model's .json")
    a = ap.parse_args(argv)
    rec = CrnnRecognizer(ocr_model=a.model)
    rec.calibration = None  # fit on raw scores
    held = [it for it in split_real(load_real(a.data, rec.charset))[1] if "?" not in it.text]
    crops = [clean_input(it) for it in held]
    reads = rec.recognize(crops)
    ok = np.array([r.text == it.text for r, it in zip(reads, held)])
    raw = np.array([r.score for r in reads])
    feats = np.stack([features(r.score, r.char_scores) for r in reads])
    cal = fit(feats, ok)
    cooked = np.array([cal(r.score, r.char_scores) for r in reads])
    print(f"{len(held)} held-out real crops, {ok.mean():.1%} read right")
    print(_report("raw score       ", raw, ok))
    print(_report("calibrated score", cooked, ok))
    if a.write:
        card_path = Path(a.model).with_suffix(".json")
        card = json.loads(card_path.read_text(encoding="utf-8"))
        card["calibration"] = {
            "weights": list(cal.weights), "bias": cal.bias,
            "features": "logit(raw read score), logit(weakest character probability)",
            "fitted_on": f"{len(held)} held-out real train crops (hash split; uc3m-lp-crops left out)",
            "command": "python -m plateread.training.calibrate_ocr --write",
        }
        card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        print(f"wrote the calibration into {card_path}")


if __name__ == "__main__":
    main()
