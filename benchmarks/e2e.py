"""End-to-end accuracy and speed of each engine on the test splits of the labelled photo sets.

    python benchmarks/e2e.py                      # every engine, prints and updates docs/BENCHMARKS.md
    python benchmarks/e2e.py --engines classic --no-write

Runs single-threaded inference (the per-image times are one-thread figures).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import DEFAULT_DATA, REPO, TEST_SETS, stamp, update_section  # noqa: E402

from plateread import Reader, registry  # noqa: E402
from plateread.evaluation.metrics import summarize  # noqa: E402
from plateread.evaluation.runner import evaluate  # noqa: E402

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="folder holding the sets (default ../shared/data)")
    ap.add_argument("--engines", nargs="+", default=sorted(registry.engines()), help="engines to run")
    ap.add_argument("--sets", nargs="+", default=list(TEST_SETS))
    ap.add_argument("--split", default="test")
    ap.add_argument("--out", default=str(REPO / "docs" / "BENCHMARKS.md"))
    ap.add_argument("--json", help="also write all metrics as JSON")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs untouched")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="a Reader option for an ablation, e.g. second_look=None, zoom=False, "
                         "plate_images=False, region='auto' (Python literals; repeatable)")
    args = ap.parse_args()
    import ast
    options = {k: ast.literal_eval(v) for k, v in (o.split("=", 1) for o in args.option)}
    cv2.setNumThreads(1)

    rows, everything = [], {}
    for engine in args.engines:
        try:
            reader = Reader(engine, **options)
        except (registry.EngineError, RuntimeError, FileNotFoundError) as exc:
            print(f"skipping engine {engine}: {exc}", file=sys.stderr)
            continue
        for set_name in args.sets:
            set_dir = Path(args.data) / set_name
            if not (set_dir / "index.jsonl").exists():
                print(f"skipping {set_name}: {set_dir} absent", file=sys.stderr)
                continue
            m = summarize(evaluate(reader, set_dir, args.split))
            everything.setdefault(engine, {})[set_name] = m.to_dict()
            rows.append((engine, set_name, m))
            print(f"{engine:14s} {set_name:12s} acc {m.accuracy:6.1%}  top-N {m.top_n_accuracy:6.1%}  "
                  f"det {m.detection_recall:6.1%}  false/img {m.false_reads_per_image:.2f}  "
                  f"median {m.median_ms:.0f} ms  p95 {m.p95_ms:.0f} ms", flush=True)

    table = ["| engine | set | images | end-to-end accuracy | top-N accuracy | detection recall (IoU≥0.5) "
             "| false reads / image | failed | median ms | p95 ms |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for engine, set_name, m in rows:
        table.append(f"| {engine} | {set_name} | {m.images} | {m.accuracy:.1%} | {m.top_n_accuracy:.1%} | "
                     f"{m.detection_recall:.1%} | {m.false_reads_per_image:.2f} | {m.failed_images} | "
                     f"{m.median_ms:.0f} | {m.p95_ms:.0f} |")
    body = ("## End to end, test splits\n\n" + stamp() + "One inference thread; times include decoding the "
            "image file. Scoring: `shared/data/README.md` (exact text, IoU ≥ 0.3 for a read).\n\n"
            + "\n".join(table) + "\n")
    print("\n" + "\n".join(table))
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=1))
    if not args.no_write:
        update_section(args.out, "e2e", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
