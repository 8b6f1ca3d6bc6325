"""The OCR on rendered plates of each style the issue's failures name, plate by plate as the reader
gets them: letter-only and vanity texts, dealer frames/screws/emblems, Ukrainian and Kazakh
plates after their flag band, numeric plates with dashes, and every other layout.

    python benchmarks/synthetic_styles.py                  # 60 plates per style, shipped models
    python benchmarks/synthetic_styles.py --ocr-model training/checkpoints/ocr4/ocr.onnx --n 100

Each plate is rendered (seed 20261202, never a training seed), placed in a scene and degraded
like the training samples (``training/augment.py``), then read by ``Reader.read_plate`` with and
without the second look. Synthetic, so an upper bound for real photos of the style; what it shows
is which styles the models have not learnt. Errors by cause as in ``validation.py``: ``stray``
(extra characters at an end), ``confusion`` (only look-alike pairs differ: O/0, I/1, B/8...),
``length`` and ``other``. Asserts nothing.
"""
from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import DEFAULT_DATA, stamp  # noqa: E402
from validation import classify, matches  # noqa: E402

from plateread import Reader  # noqa: E402
from plateread.training.augment import synth_sample  # noqa: E402
from plateread.training.render import LAYOUTS, PlateRenderer  # noqa: E402

SEED = 20261202


def styles() -> list[tuple[str, str | None, bool]]:
    """(row name, layout, decorated): every layout plain, then decorated for the ones whose
    failures the issue names."""
    rows = [(name, name, False) for name in LAYOUTS]
    return rows + [(f"{name} + frame/screws/emblem", name, True) for name in ("eu", "us", "vanity", "ua", "br")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="data root (its fonts/ folder renders the plates)")
    ap.add_argument("--n", type=int, default=60, help="plates per style")
    ap.add_argument("--ocr-model", help="first OCR model (default: the shipped one)")
    ap.add_argument("--second-ocr-model", help="second OCR model ('none': without; default: the shipped one)")
    args = ap.parse_args()
    opts = {k: v for k, v in (("ocr_model", args.ocr_model), ("second_model", args.second_ocr_model)) if v}
    plain, looked = Reader(second_look=None, **opts), Reader(**opts)
    fonts = Path(args.data) / "fonts"
    lines = ["| style | plates | read | with second look | stray | confusion | length | other | examples (label → read) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    total = Counter()
    for row, layout, decorated in styles():
        ren, rng = PlateRenderer(fonts if fonts.is_dir() else None, seed=SEED), random.Random(SEED)
        ok_plain = ok_looked = 0
        causes: Counter[str] = Counter()
        examples: list[str] = []
        for _ in range(args.n):
            p = ren.render(layout, decorate=decorated)
            crop = cv2.cvtColor(synth_sample(rng, p.image, small=0.0), cv2.COLOR_GRAY2BGR)  # as in session 5
            a = plain.read_plate(crop).results
            b = looked.read_plate(crop).results
            ok_plain += bool(a) and matches(a[0].plate, p.text)
            read = b[0].plate if b else ""
            if b and matches(read, p.text):
                ok_looked += 1
            else:
                causes[classify(read, p.text)] += 1
                if len(examples) < 3:
                    examples.append(f"{p.text} → {read or '(none)'}")
        total.update({"n": args.n, "plain": ok_plain, "looked": ok_looked, **causes})
        lines.append(f"| {row} | {args.n} | {100 * ok_plain / args.n:.0f}% | {100 * ok_looked / args.n:.0f}% | "
                     f"{causes['stray']} | {causes['confusion']} | {causes['length']} | {causes['other']} | "
                     f"{', '.join(examples)} |")
        print(lines[-1], file=sys.stderr, flush=True)
    n = total["n"]
    lines.append(f"| all | {n} | {100 * total['plain'] / n:.1f}% | {100 * total['looked'] / n:.1f}% | "
                 f"{total['stray']} | {total['confusion']} | {total['length']} | {total['other']} | |")
    print(stamp())
    print(f"OCR `{Path(plain.recognizer.model_path).name}`"
          f"{', second model ' + Path(looked.recognizer.second.model_path).name if getattr(looked.recognizer, 'second', None) else ''}; "
          f"{args.n} rendered plates per style (seed {SEED}), placed and degraded like training samples, read "
          "with `Reader.read_plate`; causes counted with the second look.\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
