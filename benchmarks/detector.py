"""Learned detector alone: recall (IoU >= 0.5), false detections and speed on the test splits.

    python benchmarks/detector.py                       # shipped model, prints a markdown table
    python benchmarks/detector.py --model runs/detector/det.onnx --json out/det.json
    python benchmarks/detector.py --failures docs/images/detector_failures.png   # misses + false boxes

Recall is also split by labelled plate width in original pixels. Timing runs the detector
(letterbox + ONNX + decoding + crops) on test photos resized to 1280x720 and 1920x1080, with
onnxruntime on 1 and 2 threads. Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import DEFAULT_DATA, SIZES, TEST_SETS, stamp, test_photos, time_calls, timing_table, write_json  # noqa: E402

from plateread.annotate import contact_sheet  # noqa: E402
from plateread.engines.learned.detector import LearnedDetector, iou_matrix, match_boxes  # noqa: E402
from plateread.evaluation.dataset import load_index  # noqa: E402

BUCKETS = ((0, 40, "<40"), (40, 80, "40-80"), (80, 160, "80-160"), (160, 1e9, ">160"))



def failure_tile(img: np.ndarray, focus: np.ndarray, gts: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The photo around ``focus`` (x0,y0,x1,y1) with labels in green and detections in red."""
    vis = img.copy()
    for b in gts:
        cv2.rectangle(vis, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), (0, 200, 0), 2)
    for b in boxes:
        cv2.rectangle(vis, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), (0, 0, 255), 2)
    w, h = focus[2] - focus[0], focus[3] - focus[1]
    mx, my = max(1.5 * w, 60), max(3 * h, 40)
    x0, y0 = int(max(0, focus[0] - mx)), int(max(0, focus[1] - my))
    x1, y1 = int(min(img.shape[1], focus[2] + mx)), int(min(img.shape[0], focus[3] + my))
    return vis[y0:y1, x0:x1]


def score_set(det: LearnedDetector, set_dir: Path, split: str,
              failures: list[tuple[np.ndarray, str, str]] | None = None) -> dict:
    found = {b[2]: [0, 0] for b in BUCKETS}
    n_img = n_false = n_lab = n_found = 0
    for s in load_index(set_dir, split):
        gts = np.array([[p.box.xmin, p.box.ymin, p.box.xmax, p.box.ymax] for p in s.plates if p.box],
                       np.float32).reshape(-1, 4)
        if not len(gts):
            continue
        img = cv2.imread(str(s.path), cv2.IMREAD_COLOR)
        if img is None:
            continue
        dets = det.detect(img)
        boxes = np.array([[d.box.xmin, d.box.ymin, d.box.xmax, d.box.ymax] for d in dets],
                         np.float32).reshape(-1, 4)
        hits, used = match_boxes(boxes, gts)
        for j, hit in enumerate(hits):
            w = gts[j, 2] - gts[j, 0]
            name = next(b[2] for b in BUCKETS if b[0] <= w < b[1])
            found[name][0] += hit
            found[name][1] += 1
            if not hit and failures is not None:
                best = f"best IoU {iou_matrix(boxes, gts[j:j + 1]).max():.2f}" if len(boxes) else "no detection"
                failures.append((failure_tile(img, gts[j], gts, boxes), f"miss: {s.name}", best))
        n_found += int(hits.sum())
        n_lab += len(gts)
        n_false += int(len(boxes) - used.sum())
        if failures is not None:
            for i in np.flatnonzero(~used):
                failures.append((failure_tile(img, boxes[i], gts, boxes), f"false: {s.name}",
                                 f"score {dets[i].score:.2f}"))
        n_img += 1
    return {"images": n_img, "plates": n_lab, "recall": n_found / max(n_lab, 1),
            "false_per_image": n_false / max(n_img, 1),
            "recall_by_width": {k: (v[0] / v[1] if v[1] else None) for k, v in found.items()},
            "plates_by_width": {k: v[1] for k, v in found.items()}}


def timing(model: str | None, threshold: float | None, imgs: list[np.ndarray], runs: int) -> dict:
    res = {}
    for threads in (1, 2):
        cv2.setNumThreads(threads)
        det = LearnedDetector(detector_model=model, threshold=threshold, threads=threads)
        for w, h in SIZES:
            frames = [cv2.resize(i, (w, h), interpolation=cv2.INTER_AREA) for i in imgs]
            res[f"{w}x{h}/{threads}"] = time_calls(det.detect, frames, runs)[0]
    cv2.setNumThreads(1)
    return res


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="folder holding the sets (default ../shared/data)")
    ap.add_argument("--model", default=None, help="ONNX model (default: the shipped one)")
    ap.add_argument("--threshold", type=float, default=None, help="default: the model's tuned threshold")
    ap.add_argument("--sets", nargs="+", default=list(TEST_SETS))
    ap.add_argument("--split", default="test")
    ap.add_argument("--runs", type=int, default=40, help="timed detections per size and thread count")
    ap.add_argument("--limit-timing-photos", type=int, default=10)
    ap.add_argument("--json", metavar="PATH", help="also write all figures as JSON")
    ap.add_argument("--failures", metavar="PNG", help="write a contact sheet of misses and false detections")
    ap.add_argument("--no-timing", action="store_true", help="accuracy only")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    try:
        det = LearnedDetector(detector_model=args.model, threshold=args.threshold, threads=1)
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    report: dict = {"model": args.model or "shipped", "meta": det.meta, "threshold": det.threshold,
                    "split": args.split, "sets": {}}
    failures: list[tuple[np.ndarray, str, str]] | None = [] if args.failures else None
    for name in args.sets:
        set_dir = Path(args.data) / name
        if not (set_dir / "index.jsonl").is_file():
            print(f"skipping {name}: {set_dir} absent", file=sys.stderr)
            continue
        report["sets"][name] = score_set(det, set_dir, args.split, failures)
    photos = [] if args.no_timing else test_photos(args.data, args.limit_timing_photos, args.sets, args.split)
    report["timing"] = timing(args.model, args.threshold, photos, args.runs) if photos else {}
    if failures:
        Path(args.failures).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(args.failures, contact_sheet(failures[:60], columns=5, tile_size=(240, 150)))
        print(f"wrote {min(len(failures), 60)} of {len(failures)} failures to {args.failures}", file=sys.stderr)

    print(stamp())
    print(f"Detector `{det.meta.get('name', 'learned')}` v{det.meta.get('version', '?')}, input "
          f"{det.width}x{det.height}, threshold {det.threshold}, split {args.split}.\n")
    heads = " | ".join(f"recall w{b[2]}" for b in BUCKETS)
    print(f"| set | images | plates | recall@0.5 | false/img | {heads} |")
    print("|---|---:|---:|---:|---:|" + "---:|" * len(BUCKETS))
    for name, r in report["sets"].items():
        by = " | ".join(f"{pct(r['recall_by_width'][b[2]])} ({r['plates_by_width'][b[2]]})" for b in BUCKETS)
        print(f"| {name} | {r['images']} | {r['plates']} | {pct(r['recall'])} | {r['false_per_image']:.2f} | {by} |")
    if report["timing"]:
        print("\n" + timing_table(report["timing"]))
    if args.json:
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
