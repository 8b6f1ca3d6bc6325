"""End-to-end accuracy and speed of each engine on the test splits of the labelled photo sets.

    python benchmarks/e2e.py                      # every engine, prints and updates docs/BENCHMARKS.md
    python benchmarks/e2e.py --engines classic --no-write
    python benchmarks/e2e.py --engines learned --false-sheet docs/images/e2e_false_reads.jpg

Runs single-threaded inference (the per-image times are one-thread figures). False reads are
split by where they are: on a labelled plate (a misread, also counted against accuracy) or
elsewhere (another car's plate the test labels leave out, or a true false alarm: the sheet shows
them, to be told apart by eye).
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
from plateread.annotate import contact_sheet  # noqa: E402
from plateread.evaluation.metrics import ImageOutcome, false_reads_of, summarize  # noqa: E402
from plateread.evaluation.runner import evaluate  # noqa: E402

#: Read score from which a false read away from the labels is counted apart: read that surely, a
#: false alarm becomes a false watchlist hit.
SURE = 0.5

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="folder holding the sets (default ../shared/data)")
    ap.add_argument("--engines", nargs="+", default=sorted(registry.engines()), help="engines to run")
    ap.add_argument("--sets", nargs="+", default=list(TEST_SETS))
    ap.add_argument("--split", default="test")
    ap.add_argument("--out", default=str(REPO / "docs" / "BENCHMARKS.md"))
    ap.add_argument("--json", help="also write all metrics as JSON")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs untouched")
    ap.add_argument("--false-sheet", metavar="IMAGE", help="contact sheet of the false reads away from every "
                    "labelled plate (first engine that has any)")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="a Reader option for an ablation, e.g. second_look=None, zoom=False, "
                         "plate_images=False, region='auto' (Python literals; repeatable)")
    args = ap.parse_args()
    import ast
    options = {k: ast.literal_eval(v) for k, v in (o.split("=", 1) for o in args.option)}
    cv2.setNumThreads(1)

    rows, everything, elsewhere_tiles = [], {}, []
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
            outcomes = list(evaluate(reader, set_dir, args.split))
            m = summarize(outcomes)
            on_label, elsewhere = false_reads_by_place(outcomes)
            sure = sum(r.score >= SURE for _, r in elsewhere)  # a confident false alarm: a false watchlist hit
            everything.setdefault(engine, {})[set_name] = {**m.to_dict(), "false_on_labelled_plate": len(on_label),
                                                           "false_elsewhere": len(elsewhere),
                                                           f"false_elsewhere_score_ge_{SURE}": sure}
            rows.append((engine, set_name, m, len(on_label), f"{len(elsewhere)} ({sure})"))
            if args.false_sheet and engine == args.engines[0]:
                elsewhere_tiles += [false_tile(o, r, set_name) for o, r in elsewhere]
            print(f"{engine:14s} {set_name:12s} acc {m.accuracy:6.1%}  top-N {m.top_n_accuracy:6.1%}  "
                  f"det {m.detection_recall:6.1%}  false/img {m.false_reads_per_image:.2f}  "
                  f"median {m.median_ms:.0f} ms  p95 {m.p95_ms:.0f} ms", flush=True)

    table = ["| engine | set | images | end-to-end accuracy | top-N accuracy | detection recall (IoU≥0.5) "
             f"| false reads / image | of them: misreads / elsewhere (read >= {SURE}) | failed | median ms | p95 ms |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for engine, set_name, m, on_label, elsewhere in rows:
        table.append(f"| {engine} | {set_name} | {m.images} | {m.accuracy:.1%} | {m.top_n_accuracy:.1%} | "
                     f"{m.detection_recall:.1%} | {m.false_reads_per_image:.2f} | {on_label} / {elsewhere} | "
                     f"{m.failed_images} | {m.median_ms:.0f} | {m.p95_ms:.0f} |")
    body = ("## End to end, test splits\n\n" + stamp() + "One inference thread; times include decoding the "
            "image file. Scoring: `shared/data/README.md` (exact text, IoU ≥ 0.3 for a read).\n\n"
            + "\n".join(table) + "\n")
    print("\n" + "\n".join(table))
    if args.false_sheet:
        cv2.imwrite(args.false_sheet, contact_sheet(elsewhere_tiles, columns=6, tile_size=(220, 150)))
        print(f"wrote {len(elsewhere_tiles)} false reads away from the labelled plates to {args.false_sheet}",
              file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=1))
    if not args.no_write:
        update_section(args.out, "e2e", body)
    return 0


def false_reads_by_place(outcomes: list[ImageOutcome]) -> tuple[list, list]:
    """The false reads as (outcome, read) pairs: those on a labelled plate's box (misreads) and
    those away from every labelled plate."""
    on_label, elsewhere = [], []
    for o in outcomes:
        for r, on_plate in false_reads_of(o.sample, o.result):
            (on_label if on_plate else elsewhere).append((o, r))
    return on_label, elsewhere


def false_tile(o: ImageOutcome, r, set_name: str) -> tuple:
    """The read's surroundings (3x its box) with the box drawn, for telling a plate from a false alarm."""
    img = cv2.imread(str(o.sample.path))
    b = r.box
    cx, cy, w, h = (b.xmin + b.xmax) // 2, (b.ymin + b.ymax) // 2, max(b.width * 3, 120), max(b.height * 3, 80)
    x0, y0 = max(0, cx - w // 2), max(0, cy - h // 2)
    tile = img[y0:y0 + h, x0:x0 + w].copy()
    cv2.rectangle(tile, (b.xmin - x0, b.ymin - y0), (b.xmax - x0, b.ymax - y0), (0, 0, 255), 2)
    return tile, f"{r.plate} {r.score:.2f}", f"{set_name} {o.sample.name}"[:40]


if __name__ == "__main__":
    sys.exit(main())
