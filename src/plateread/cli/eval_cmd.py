"""``plateread eval``: score an engine on a labelled set."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..evaluation.metrics import EvalMetrics, summarize
from ..evaluation.runner import evaluate, write_error_sheet
from ..output import format_table
from .engine_options import add_engine_options, engine_options, reader_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score an engine on a labelled set (index.jsonl)",
                       description="Run an engine on every labelled image of one split of a set and "
                                   "score it by the convention of shared/data/README.md.")
    p.add_argument("set_dirs", nargs="+", metavar="SET_DIR", help="folder(s) holding index.jsonl")
    p.add_argument("--split", default="test", help="split to score: train, test or dev (default: test); "
                                                   "'all' for every split")
    add_engine_options(p)
    p.add_argument("--json", metavar="FILE", help="write metrics and per-image reads as JSON")
    p.add_argument("--errors", metavar="PNG", help="write a contact sheet of wrong reads (one per set: "
                                                   "the set name is added to the file name for several)")
    p.add_argument("--limit", type=int, help="score only the first N images (quick checks)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="force the progress bar on or off (default: on when stderr is a terminal)")
    p.set_defaults(func=run)


def metrics_table(rows: list[tuple[str, EvalMetrics]]) -> str:
    def pct(x: float) -> str:
        return "-" if x != x else f"{100 * x:.1f}%"

    return format_table(
        ("set", "images", "accuracy", "top-N", "det. recall", "false/img", "failed", "median ms", "p95 ms"),
        [(name, m.images, pct(m.accuracy), pct(m.top_n_accuracy), pct(m.detection_recall),
          f"{m.false_reads_per_image:.2f}", m.failed_images, f"{m.median_ms:.0f}", f"{m.p95_ms:.0f}")
         for name, m in rows],
        "lrrrrrrrr",
    )


def run(args: argparse.Namespace) -> int:
    reader = reader_from_args(args)
    split = None if args.split == "all" else args.split
    rows, report = [], {"engine": args.engine, "detector": reader.detector.name,
                        "recognizer": reader.recognizer.name, "options": engine_options(args),
                        "split": args.split, "sets": {}}
    for set_dir in args.set_dirs:
        name = Path(set_dir).resolve().name
        outcomes = list(evaluate(reader, set_dir, split, args.progress, args.limit))
        metrics = summarize(outcomes)
        rows.append((name, metrics))
        report["sets"][name] = {"metrics": metrics.to_dict(), "images": [o.to_dict() for o in outcomes]}
        if args.errors:
            target = Path(args.errors)
            if len(args.set_dirs) > 1:
                target = target.with_name(f"{target.stem}-{name}{target.suffix or '.png'}")
            n = write_error_sheet(outcomes, target)
            print(f"{n} wrong read(s) drawn into {target}" if n else f"{name}: no wrong reads", file=sys.stderr)
    print(f"engine: {args.engine} (detector {reader.detector.name}, recognizer {reader.recognizer.name}), "
          f"split: {args.split}")
    print(metrics_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0
