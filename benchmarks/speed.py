"""End-to-end time per image of an engine at fixed photo sizes, on one thread and on both cores.

    python benchmarks/speed.py                       # default engine, 1280x720 and 1920x1080
    python benchmarks/speed.py --engine classic-crnn --runs 60

Test photos of the labelled sets are resized to each size and JPEG-encoded once; each timed read
starts from those JPEG bytes (decode + detect + OCR + formats), as a camera upload would. Both
onnxruntime and OpenCV get the thread count. Prints a markdown table; asserts nothing.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import DEFAULT_DATA, SIZES, stamp, test_photos, time_calls, timing_table, write_json  # noqa: E402

from plateread import Reader, registry  # noqa: E402
from plateread.reader import DEFAULT_ENGINE  # noqa: E402

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="folder holding the sets (default ../shared/data)")
    ap.add_argument("--engine", default=DEFAULT_ENGINE)
    ap.add_argument("--per-set", type=int, default=10, help="photos taken from each test split")
    ap.add_argument("--runs", type=int, default=40, help="timed reads per size and thread count")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    ap.add_argument("--extras", action=argparse.BooleanOptionalAction, default=True,
                    help="also time one thread without the zoom pass and second look, with a second "
                         "look at every read (its worst case), and the learned-int8 engine")
    args = ap.parse_args()
    imgs = test_photos(args.data, args.per_set)
    if not imgs:
        print(f"no test photos under {args.data}", file=sys.stderr)
        return 2
    report = {"engine": args.engine, "photos": len(imgs), "runs": args.runs, "timing": {}}
    for threads in args.threads:
        cv2.setNumThreads(threads)
        try:
            reader = Reader(args.engine, threads=threads)
        except registry.EngineError:  # an engine without thread settings (classic) still gets cv2's
            reader = Reader(args.engine)
        for w, h in SIZES:
            payloads = [cv2.imencode(".jpg", cv2.resize(i, (w, h), interpolation=cv2.INTER_AREA),
                                     [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for i in imgs]
            stats, results = time_calls(reader.read, payloads, args.runs)  # from JPEG bytes: decode included
            plates = sum(len(r.results) for r in results)
            report["timing"][f"{w}x{h}/{threads}"] = {**stats, "plates_per_image": plates / args.runs}
    if args.extras and args.engine == DEFAULT_ENGINE:
        cv2.setNumThreads(1)
        for label, engine, opts in (("no zoom, no second look", args.engine, {"zoom": False, "second_look": None}),
                                    ("second look at every read", args.engine, {"second_look": 1.01}),
                                    ("engine learned-int8", "learned-int8", {})):
            reader = Reader(engine, threads=1, **opts)
            for w, h in SIZES:
                payloads = [cv2.imencode(".jpg", cv2.resize(i, (w, h), interpolation=cv2.INTER_AREA),
                                         [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for i in imgs]
                stats, results = time_calls(reader.read, payloads, args.runs)
                plates = sum(len(r.results) for r in results)
                report["timing"][f"{w}x{h}/1, {label}"] = {**stats, "plates_per_image": plates / args.runs}
    print(stamp())
    print(f"Engine `{args.engine}`, {len(imgs)} test photos resized to each size, {args.runs} timed reads from "
          "JPEG bytes per row (decode + detection + OCR).\n")
    print(timing_table(report["timing"], ("plates_per_image", "plates / image")))
    if args.json:
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
