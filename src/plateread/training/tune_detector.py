"""Picks the detector's operating threshold on the held-out TRAIN photos (never on test).

    python -m plateread.training.tune_detector --data ../shared/data \\
        --model src/plateread/models/detector.onnx

Runs the exported model once at a low threshold on the ~10% of training photos that training
never saw (the same CRC32 hold-out as ``train_detector``) and the dev photos (open-lpr), then prints recall (IoU >= 0.5),
precision and false detections per image for a range of thresholds. It names the threshold
with the best F1 over all held-out photos and the lowest one whose false detections stay within
``--max-false`` per openalpr photo; ``--write`` stores the best-F1 one in the model's .json as
its default threshold; ``--verify --write`` stores the shipped verify rule's measured recall and
false detections (``verify_rule``).
Held-out openimages and ro-dashcam photos leave many plates unlabelled (other cars, distant
ones), so their "false" detections are often real plates; the table also shows the openalpr
photos apart, where one car fills the view.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..engines.learned.detector import LearnedDetector, match_boxes
from .det_data import DEV_SETS, load_photos, match, split_photos

THRESHOLDS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--model", default=None, help="ONNX model (default: the shipped one)")
    ap.add_argument("--max-false", type=float, default=0.05, help="false detections per image allowed")
    ap.add_argument("--write", action="store_true",
                    help="store the best-F1 threshold in the model's .json (with --verify: the measured verify rule)")
    ap.add_argument("--verify", action="store_true",
                    help="instead: the OCR check of unsure detections (threshold, verify threshold, minimum "
                         "read score) through the Reader with the shipped OCR")
    ap.add_argument("--low", type=float, default=0.3,
                    help="with --verify: lowest detection score looked at; under the model's verify threshold a "
                         "second table tries a stricter read score for detections under it")
    ap.add_argument("--zoom", action="store_true",
                    help="instead: recall and detector passes per photo of the zoom pass for several "
                         "lowest peak scores, on the held-out photos large enough to use it")
    a = ap.parse_args(argv)
    _, held = split_photos(load_photos(a.data))
    held += load_photos(a.data, DEV_SETS, "dev")
    if a.zoom:
        zoom_table(held, a.model)
        return
    if a.verify:
        verify_table(held, a.model, a.low, a.write)
        return
    # one pass without the zoom: its second look depends on the threshold being tuned
    det = LearnedDetector(detector_model=a.model, threshold=min(THRESHOLDS), threads=2, zoom=False)
    runs = []
    for p in held:
        dets = det.detect(p.image)
        boxes = np.array([[d.box.xmin, d.box.ymin, d.box.xmax, d.box.ymax] for d in dets], np.float32)
        scores = np.array([d.score for d in dets], np.float32)
        single_car = p.key.startswith("openalpr-")
        runs.append((single_car, boxes.reshape(-1, 4), scores, p.boxes))
    print(f"{len(held)} held-out train photos, {sum(len(r[3]) for r in runs)} labelled plates\n")
    print("| threshold | recall@0.5 | precision | false / image | recall (openalpr) | false / image (openalpr) |")
    print("|---:|---:|---:|---:|---:|---:|")
    pick, best_f1 = None, (-1.0, None)
    for t in THRESHOLDS:
        found = n = false = false_one = n_one = found_one = lab_one = 0
        for single_car, boxes, scores, gts in runs:
            f, fa = match(boxes[scores >= t], gts)
            found, n, false = found + f, n + len(gts), false + fa
            if single_car:
                false_one, n_one = false_one + fa, n_one + 1
                found_one, lab_one = found_one + f, lab_one + len(gts)
        recall, fpi = found / max(n, 1), false_one / max(n_one, 1)
        precision = found / max(found + false, 1)
        best_f1 = max(best_f1, (2 * recall * precision / max(recall + precision, 1e-9), t))
        print(f"| {t:.2f} | {recall:.3f} | {precision:.3f} | {false / len(runs):.3f} | "
              f"{found_one / max(lab_one, 1):.3f} | {fpi:.3f} |")
        if pick is None and fpi <= a.max_false:
            pick = t
    print(f"\nbest F1 over all held-out photos: {best_f1[0]:.3f} at threshold {best_f1[1]}")
    print(f"lowest threshold with <= {a.max_false} false detections per openalpr photo: {pick}")
    t = best_f1[1]
    buckets = ((0, 20, "<20"), (20, 40, "20-40"), (40, 80, "40-80"), (80, 1e9, ">=80"))
    by = {name: [0, 0] for *_, name in buckets}
    for _, boxes, scores, gts in runs:
        hits, _ = match_boxes(boxes[scores >= t], gts)
        for g, hit in zip(gts, hits):
            name = next(n for lo, hi, n in buckets if lo <= g[2] - g[0] < hi)
            by[name][0] += int(hit)
            by[name][1] += 1
    print(f"recall by labelled plate width (px, photo long side <= 1280) at {t}: "
          + ", ".join(f"{n} {f / max(c, 1):.2f} ({c})" for n, (f, c) in by.items()))
    if a.write:
        meta_path = _update_card(det.model_path, threshold=best_f1[1], threshold_rule=(
            f"best F1 ({best_f1[0]:.3f}) on {len(held)} held-out train + dev photos; "
            + _command(a.model, "--write")))
        print(f"wrote threshold {best_f1[1]} into {meta_path}")


def zoom_table(held: list, model: str | None) -> None:
    """What the zoom pass finds and costs for each ZOOM_LOW, at the model's own thresholds."""
    from ..engines.learned import detector as det_mod

    probe = LearnedDetector(detector_model=model)
    big = [p for p in held if min(probe.width / p.image.shape[1], probe.height / p.image.shape[0])
           < det_mod.ZOOM_BELOW_SCALE]
    print(f"{len(big)} of {len(held)} held-out + dev photos are large enough for the zoom pass\n")
    print("| lowest peak score | windows at most | recall@0.5 | false / image | detector passes / image |")
    print("|---|---:|---:|---:|---:|")
    default, default_windows = det_mod.ZOOM_LOW, det_mod.ZOOM_MAX_WINDOWS
    try:
        for low, windows in ((None, 0), (0.15, 2), (0.2, 2), (0.25, 2), (0.2, 4), (0.25, 4)):
            det = LearnedDetector(detector_model=model, zoom=low is not None)
            det_mod.ZOOM_LOW = low if low is not None else default
            det_mod.ZOOM_MAX_WINDOWS = windows or default_windows
            runs = [0]
            inner = det._run

            def counted(*args, _inner=inner, **kw):
                runs[0] += 1
                return _inner(*args, **kw)

            det._run = counted
            found = n = false = 0
            for p in big:
                dets = [d for d in det.detect(p.image) if d.score >= det.threshold]
                boxes = np.array([[d.box.xmin, d.box.ymin, d.box.xmax, d.box.ymax] for d in dets], np.float32)
                f, fa = match(boxes.reshape(-1, 4), p.boxes)
                found, n, false = found + f, n + len(p.boxes), false + fa
            name = "no zoom pass" if low is None else f"{low:.2f}"
            print(f"| {name} | {windows or '-'} | {found / max(n, 1):.3f} | {false / max(len(big), 1):.3f} "
                  f"| {runs[0] / max(len(big), 1):.2f} |")
    finally:
        det_mod.ZOOM_LOW, det_mod.ZOOM_MAX_WINDOWS = default, default_windows


def _command(model: str | None, flags: str) -> str:
    """The command line that wrote a card entry, so that it can be run again."""
    return "python -m plateread.training.tune_detector" + (f" --model {model}" if model else "") + f" {flags}"


def _update_card(model_path: str, **fields: object) -> Path:
    """Sets ``fields`` in the model's .json card; returns the card's path."""
    meta_path = Path(model_path).with_suffix(".json")
    card = json.loads(meta_path.read_text(encoding="utf-8"))
    card.update(fields)
    meta_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return meta_path


def verify_table(held: list, model: str | None, low: float = 0.3, write: bool = False) -> None:
    """Recall and false detections when detections between ``low`` and the threshold count only
    if the OCR reads them at a minimum score: one Reader pass at ``low``, then each rule. With
    ``low`` under the model's verify threshold, detections under it get a stricter read score of
    their own (second table), on top of the shipped rule. ``write``: the shipped rule's figures go
into the model's .json as ``verify_rule``."""
    from ..reader import VERIFY_MIN_READ, Reader

    reader = Reader(threshold=low, second_look=None, plate_images=False,
                    **({"detector_model": model} if model else {}))
    meta = reader.detector.meta
    sure0 = float(meta.get("threshold", 0.5))
    verify0 = min(sure0, float(meta.get("verify_threshold", sure0)))
    runs = [(p, reader.read(p.image).results) for p in held]

    def score(rule) -> tuple[float, float]:
        found = n = false = 0
        for p, reads in runs:
            keep = [r for r in reads if rule(r.detection_score, r.score)]
            boxes = np.array([[r.box.xmin, r.box.ymin, r.box.xmax, r.box.ymax] for r in keep], np.float32)
            f, fa = match(boxes.reshape(-1, 4), p.boxes)
            found, n, false = found + f, n + len(p.boxes), false + fa
        return found / max(n, 1), false / len(runs)

    print(f"{len(held)} held-out train + dev photos; detections from {low}, one pass with the zoom\n")
    print("| threshold | minimum read score below it | recall@0.5 | false / image |")
    print("|---:|---:|---:|---:|")
    for sure in (0.35, 0.4, 0.45, 0.5):
        for min_read in (0.0, 0.2, 0.4, 0.6, 1.1):
            rec, fa = score(lambda d, r: d >= max(sure, verify0) or (d >= verify0 and r >= min_read))
            rule = "(none kept)" if min_read > 1 else f"{min_read:.1f}"
            print(f"| {sure:.2f} | {rule} | {rec:.3f} | {fa:.3f} |")
    shipped = lambda d, r: d >= sure0 or (d >= verify0 and r >= VERIFY_MIN_READ)  # noqa: E731
    rec, fa = score(shipped)
    if write:
        meta_path = _update_card(reader.detector.model_path, verify_rule=(
            f"detections from verify_threshold {verify0} up to threshold {sure0} are kept when "
            f"the OCR reads them at >= {VERIFY_MIN_READ}: recall {rec:.3f} at {fa:.3f} false "
            f"detections per photo on {len(held)} held-out train + dev photos with the shipped "
            f"float OCR ({_command(model, '--verify --write')})"))
        print(f"wrote the verify rule's figures into {meta_path}")
    if low >= verify0:
        return
    print(f"\nThreshold {sure0}, read >= {VERIFY_MIN_READ} from {verify0}; from {low} to {verify0} a read "
          "score of at least:\n")
    print(f"| lowest detection score | minimum read score under {verify0} | recall@0.5 | false / image |")
    print("|---:|---:|---:|---:|")
    for lowest in sorted({low, round((low + verify0) / 2, 3)}):
        for min_low in (0.4, 0.6, 0.8, 0.9, 1.1):
            rec, fa = score(lambda d, r: shipped(d, r) or (d >= lowest and r >= min_low))
            rule = "(none kept)" if min_low > 1 else f"{min_low:.1f}"
            print(f"| {lowest:.2f} | {rule} | {rec:.3f} | {fa:.3f} |")


if __name__ == "__main__":
    main()
