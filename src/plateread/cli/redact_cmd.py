"""``plateread redact``: redacted copies of photos and videos, every plate blurred or pixelated."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import registry
from ..imaging import ImageError, is_image_file, iter_inputs
from ..redact import DEFAULT_HOLD, DEFAULT_MARGIN, REDACTION_THRESHOLD, redact_photo, redact_video
from .engine_options import add_engine_options, reader_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "redact", help="blur every plate in photos and videos (copies for publishing)",
        description="Write redacted copies of photos, folders of photos and videos into --out, every "
                    "plate the detector finds blurred (or pixelated) with a margin around it. Errs toward "
                    "blurring: a low detection threshold, every detection whether readable or not, and in "
                    "videos boxes held for a few frames. Videos are written as .mp4 (mp4v).")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="photos, folders of photos, or video files")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the redacted copies (same names)")
    p.add_argument("--pixelate", action="store_true", help="pixelate instead of blurring")
    p.add_argument("--margin", type=float, default=DEFAULT_MARGIN,
                   help=f"grow each plate box by this fraction of its size on every side (default {DEFAULT_MARGIN})")
    p.add_argument("--hold", type=int, default=DEFAULT_HOLD,
                   help=f"videos: keep a box redacted this many frames after it was last seen (default {DEFAULT_HOLD})")
    add_engine_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    detector = args.detector or registry.engine_spec(args.engine).detector
    if args.threshold is None and detector == "learned":
        args.threshold = REDACTION_THRESHOLD
    reader = reader_from_args(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in iter_inputs(args.inputs):
        try:
            if is_image_file(path):
                dst = out / Path(path).name
                n = redact_photo(reader, path, dst, margin=args.margin, pixelate=args.pixelate)
                print(f"{path} -> {dst}: {n} plate(s) redacted")
            else:
                dst = out / (Path(path).stem + ".mp4")
                stats = redact_video(reader, path, dst, margin=args.margin, pixelate=args.pixelate, hold=args.hold)
                print(f"{path} -> {dst}: {stats.frames} frames, {stats.boxes} plate boxes redacted")
        except (ImageError, RuntimeError, OSError) as exc:
            failed += 1
            print(f"plateread redact: {path}: {exc}", file=sys.stderr)
    return 1 if failed else 0
