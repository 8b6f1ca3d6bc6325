"""What plate formats (``--region``) change: reads fixed and broken, per test split.

    python benchmarks/regions.py                       # crops + end to end, updates docs/BENCHMARKS.md
    python benchmarks/regions.py --no-e2e --no-write   # OCR on labelled crops only, print only

Three decodings of the same CRNN output: no formats, ``auto`` (every layout of every region) and
the set's own region (``us``; ``eu`` plus gb/no/ch for openalpr-eu, whose plates come from
several countries; ``br``). On crops (cut by the labelled boxes, so detection plays no part) the
frame probabilities are computed once and decoded three ways; end to end runs ``plateread eval``'s
scorer with the engine given. "fixed" = wrong without formats and right with them; "broken" =
the reverse.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ocr_crops import load_crops  # noqa: E402
from report import DEFAULT_DATA, REPO, stamp, update_section  # noqa: E402

from plateread import Reader  # noqa: E402
from plateread.engines.crnn.recognizer import CrnnRecognizer  # noqa: E402
from plateread.evaluation.metrics import summarize  # noqa: E402
from plateread.evaluation.runner import evaluate  # noqa: E402
from plateread.reader import DEFAULT_ENGINE  # noqa: E402

RIGHT_REGION = {"openalpr-us": "us", "openalpr-eu": "eu,gb,no,ch", "openalpr-br": "br"}
MODES = ("none", "auto", "right")


def _region(mode: str, set_name: str) -> str:
    return RIGHT_REGION[set_name] if mode == "right" else mode


def _changes(base: list[bool], other: list[bool]) -> tuple[int, int]:
    fixed = sum(o and not b for b, o in zip(base, other))
    broken = sum(b and not o for b, o in zip(base, other))
    return fixed, broken


def crops_table(data: Path, sets: list[str]) -> list[str]:
    crops = load_crops(data, tuple(sets))
    rows = ["| set | crops | no formats | auto | right region | fixed (auto / right) | broken (auto / right) |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for set_name in sets:
        items = crops[set_name]
        base = CrnnRecognizer(threads=1)
        probs = base.recognize_probs([c for c, _ in items])
        labels = [t for _, t in items]
        ok: dict[str, list[bool]] = {}
        for mode in MODES:
            rec = CrnnRecognizer(threads=1, region=_region(mode, set_name))
            ok[mode] = [rec.decode(fp).text == t for fp, t in zip(probs, labels)]
        fa, ba = _changes(ok["none"], ok["auto"])
        fr, br = _changes(ok["none"], ok["right"])
        n = len(items)
        rows.append(f"| {set_name} | {n} | {sum(ok['none']) / n:.1%} | {sum(ok['auto']) / n:.1%} | "
                    f"{sum(ok['right']) / n:.1%} | {fa} / {fr} | {ba} / {br} |")
        print(rows[-1], flush=True)
    return rows


def e2e_table(data: Path, sets: list[str], engine: str) -> list[str]:
    rows = ["| engine | set | images | no formats | auto | right region | fixed (auto / right) | broken (auto / right) |",
            "|---|---|---:|---:|---:|---:|---:|---:|"]
    for set_name in sets:
        ok: dict[str, list[bool]] = {}
        acc: dict[str, float] = {}
        for mode in MODES:
            reader = Reader(engine, region=_region(mode, set_name))
            outcomes = list(evaluate(reader, data / set_name, "test"))
            ok[mode] = [p.correct for o in outcomes for p in o.plates if p.label]
            acc[mode] = summarize(outcomes).accuracy
        fa, ba = _changes(ok["none"], ok["auto"])
        fr, br = _changes(ok["none"], ok["right"])
        rows.append(f"| {engine} | {set_name} | {len(ok['none'])} | {acc['none']:.1%} | {acc['auto']:.1%} | "
                    f"{acc['right']:.1%} | {fa} / {fr} | {ba} / {br} |")
        print(rows[-1], flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--sets", nargs="+", default=list(RIGHT_REGION))
    ap.add_argument("--engine", default=DEFAULT_ENGINE, help="engine for the end-to-end table (default: the default engine)")
    ap.add_argument("--no-e2e", action="store_true", help="skip the end-to-end table")
    ap.add_argument("--out", default=str(REPO / "docs" / "BENCHMARKS.md"))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    data = Path(args.data)
    body = ["## Plate formats (`--region`), test splits", "", stamp(),
            "Right region: " + ", ".join(f"{k} → `{v}`" for k, v in RIGHT_REGION.items()) + ".", "",
            "OCR on the labelled crops:", ""] + crops_table(data, args.sets)
    if not args.no_e2e:
        body += ["", "End to end (`plateread eval`):", ""] + e2e_table(data, args.sets, args.engine)
    if not args.no_write:
        update_section(args.out, "regions", "\n".join(body) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
