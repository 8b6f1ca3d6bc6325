"""``plateread read``: plates from files and folders."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2

from ..annotate import annotate
from ..debug import DebugSink
from ..imaging import iter_inputs
from ..output import FORMATS, ResultWriter
from ..progress import progress
from .engine_options import add_engine_options, reader_from_args
from .reads_cmd import add_store_options, open_store


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("read", help="read plates from image files and folders",
                       description="Read plates from images. Folders are searched recursively; "
                                   "images are recognised by content, not by extension.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    add_engine_options(p)
    p.add_argument("--crops", action="store_true",
                   help="every input is already a plate crop: read it whole, without detection")
    p.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    p.add_argument("--annotate", metavar="DIR", help="write copies with boxes and text drawn into DIR")
    p.add_argument("--debug", metavar="DIR", help="write every pipeline stage of every image into DIR")
    p.add_argument("--show", action="store_true", help="show pipeline stages in windows (needs a display)")
    p.add_argument("-o", "--output", metavar="FILE", help="write results to FILE instead of stdout")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="force the progress bar on or off (default: on when stderr is a terminal)")
    add_store_options(p)
    p.set_defaults(func=run)


def _unique_name(path: str, used: set[str]) -> str:
    stem = Path(path).stem or "image"
    name, n = stem, 1
    while name in used:
        n += 1
        name = f"{stem}_{n}"
    used.add(name)
    return name


def run(args: argparse.Namespace) -> int:
    if not args.store and (args.db or args.media or args.camera or args.retention_days is not None):
        print("plateread: error: --db, --media, --camera and --retention-days need --store", file=sys.stderr)
        return 2
    reader = reader_from_args(args)
    inputs = list(iter_inputs(args.paths))
    if not inputs:
        print("plateread: no images found", file=sys.stderr)
        return 1
    store = open_store(args) if args.store else None
    stream = open(args.output, "w", encoding="utf-8", newline="") if args.output else sys.stdout
    writer = ResultWriter(args.format, stream)
    used: set[str] = set()
    if args.annotate:
        os.makedirs(args.annotate, exist_ok=True)
    debug_root = DebugSink(args.debug, show=args.show) if (args.debug or args.show) else None
    failed = unstored = 0
    try:
        for path in progress(inputs, total=len(inputs), desc="reading", enabled=args.progress):
            name = _unique_name(path, used)
            debug = debug_root.child(name) if debug_root is not None else None
            result, image = reader.read_keep(path, name=path, debug=debug, crop=args.crops)
            if debug is not None:
                debug.wait()
            writer.write(result)
            if result.error:
                failed += 1
                continue
            if args.annotate:
                cv2.imwrite(os.path.join(args.annotate, f"{name}.jpg"), annotate(image, result.results))
            if store is not None and result.results:
                try:
                    store.add_image_result(result, camera=args.camera, image=image)
                except Exception as exc:  # one image failing to store must not end the run
                    unstored += 1
                    print(f"plateread: not stored: {path}: {exc}", file=sys.stderr)
    finally:
        if store is not None:
            store.close()
        writer.close()
        if args.output:
            stream.close()
    if failed:
        print(f"plateread: {failed} of {len(inputs)} input(s) could not be read", file=sys.stderr)
    if unstored:
        print(f"plateread: {unstored} image(s) could not be stored", file=sys.stderr)
    return 1 if failed or unstored else 0
