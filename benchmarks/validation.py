"""Per-source validation report of the detector and the OCR, on validation data only (issue #10).

    python benchmarks/validation.py --threads 1                  # shipped models, markdown on stdout
    python benchmarks/validation.py --detector-model det.onnx --ocr-model ocr.onnx --json out/val.json
    python benchmarks/validation.py --threads 1 --sheets          # + failure sheets in docs/images/
    python benchmarks/validation.py --limit 5                     # quick check: 5 per source
    python benchmarks/validation.py --parts reads e2e --ocr-model A.onnx --second-ocr-model B.onnx
    python benchmarks/record.py validation "Validation per source" -- python benchmarks/validation.py --threads 1

Never touches a test split. Detector: open-lpr ``dev`` photos and the hash hold-out (10%, by
photo key) of every box set's ``train`` photos, loaded as the detector trainer loads them (long
side <= 1280, boxes scaled along; plate widths are in those pixels). Per source: recall at IoU >= 0.5,
false detections per image (sets that leave plates unlabelled count unlabelled real plates as
false, so they are summed apart from fully labelled ones), recall by plate width and the median
time of one ``detect`` call. OCR: the hash hold-out (10%, by plate text) of the text-labelled real
crops, the crop as it is or the labelled box of a photo; uc3m-lp-crops labels hold ``?`` for
greyed-out characters and are scored on the visible positions only (same length, every other
position equal). Per source: exact and top-N accuracy, AUROC of the read score (right vs wrong
reads) and the share of reads scored > 0.9 that are wrong. Errors are classified by cause
(stray / confusion / length / other; detector: missed) and, with ``--sheets``, drawn as contact
sheets. ``reads``: the whole reader on the detector's photos, reads away from every labelled plate
counted by read score (confident false alarms). ``e2e``: the whole reader on photos whose plates are
in the OCR's text hold-out, read right by plate width. Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detector import failure_tile, pct  # noqa: E402
from report import DEFAULT_DATA, REPO, write_json  # noqa: E402

from plateread.annotate import contact_sheet  # noqa: E402
from plateread.engines.learned.detector import iou_matrix, match_boxes  # noqa: E402
from plateread.evaluation.metrics import READ_IOU, auroc, score_plate  # noqa: E402
from plateread.text import normalize_plate  # noqa: E402
from plateread.training.data import WILDCARD as MASK, matches as matches_label  # noqa: E402  (no torch behind it)

#: Plate-width bins (px, in the loaded photo) for detector recall: (low, high, name).
WIDTH_BINS = ((0, 20, "<20"), (20, 40, "20-40"), (40, 80, "40-80"), (80, float("inf"), ">=80"))
#: Look-alike characters: a wrong read whose differing positions are all such pairs is a "confusion".
LOOKALIKE_PAIRS = ("O0", "I1", "B8", "S5", "Z2", "D0", "Q0", "G6", "T7")
LOOKALIKES = frozenset(frozenset(p) for p in LOOKALIKE_PAIRS)
OCR_CAUSES = ("stray", "confusion", "length", "other")
SHEET_TILES = 40
#: Width a held-out crop is scaled to for the plate-image check at high resolution (a 4K camera's cut).
LARGE_CROP_WIDTH = 600


# ---- detector ----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def detector_sources(data: str | Path, limit: int | None = None) -> dict[str, tuple[list, bool]]:
    """{source: (photos, partly labelled)}: open-lpr dev, then each box set's held-out train photos.

    Sets are loaded one at a time and only their hold-out is kept, so the photos of all sets are
    never in memory together. Cached: the detector, plates and reads parts share one load."""
    from plateread.training.det_data import DEV_SETS, TRAIN_SETS, load_photos, source_of, split_photos

    out: dict[str, tuple[list, bool]] = {}
    for sets, split in ((DEV_SETS, "dev"), (TRAIN_SETS, "train")):
        for name, partial in sets.items():
            photos = load_photos(data, {name: partial}, split)
            if split == "train":
                photos = split_photos(photos)[1]
            if photos:
                out[source_of(photos[0])] = (photos[:limit] if limit else photos, partial)
    return out


def new_det_counts() -> dict[str, Any]:
    return {"photos": 0, "plates": 0, "found": 0, "false": 0, "loose": 0, "ms": [],
            "bins": {b[2]: [0, 0] for b in WIDTH_BINS}, "misses": []}


def width_bin(w: float) -> str:
    return next(b[2] for b in WIDTH_BINS if b[0] <= w < b[1])


def score_photos(det: Any, photos: Sequence[Any], source: str = "",
                 tiles: list[tuple[np.ndarray, str, str]] | None = None) -> dict[str, Any]:
    """Runs ``det.detect`` on each photo (``.image``, ``.boxes`` N×4 x0 y0 x1 y1, ``.key``) and
    counts labels found at IoU >= 0.5 (by width bin), detections matching no label, missed labels
    with a box at IoU 0.3-0.5 (``loose``: found but badly fitted) and times. Every miss is listed;
    with ``tiles``, a picture of the photo around each missed label is appended there too."""
    c = new_det_counts()
    for p in photos:
        t0 = time.perf_counter()
        dets = det.detect(p.image)
        c["ms"].append((time.perf_counter() - t0) * 1000)
        boxes = np.array([[d.box.xmin, d.box.ymin, d.box.xmax, d.box.ymax] for d in dets],
                         np.float32).reshape(-1, 4)
        gts = np.asarray(p.boxes, np.float32).reshape(-1, 4)
        found, used = match_boxes(boxes, gts)
        for j, hit in enumerate(found):
            w = float(gts[j, 2] - gts[j, 0])
            c["bins"][width_bin(w)][0] += int(hit)
            c["bins"][width_bin(w)][1] += 1
            if hit:
                continue
            best = float(iou_matrix(boxes, gts[j:j + 1]).max()) if len(boxes) else 0.0
            c["loose"] += best >= 0.3
            c["misses"].append({"photo": p.key, "box": [round(float(v), 1) for v in gts[j]],
                                "width": round(w, 1), "best_iou": round(best, 3)})
            if tiles is not None:
                why = f"best IoU {best:.2f}" if len(boxes) else "no detection"
                tiles.append((failure_tile(p.image, gts[j], gts, boxes),
                              f"{source} {p.key.split('/', 1)[-1]}"[:30], f"w {w:.0f}px, {why}"))
        c["photos"] += 1
        c["plates"] += len(gts)
        c["found"] += int(found.sum())
        c["false"] += int(len(boxes) - used.sum())
    return c


def merge_det(counts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    out = new_det_counts()
    for c in counts:
        for k in ("photos", "plates", "found", "false", "loose", "ms", "misses"):
            out[k] += c[k]
        for b, (f, n) in c["bins"].items():
            out["bins"][b][0] += f
            out["bins"][b][1] += n
    return out


def det_figures(c: dict[str, Any]) -> dict[str, Any]:
    return {"photos": c["photos"], "plates": c["plates"],
            "recall": c["found"] / c["plates"] if c["plates"] else None,
            "false_per_image": c["false"] / c["photos"] if c["photos"] else None,
            "recall_by_width": {b: (f / n if n else None) for b, (f, n) in c["bins"].items()},
            "plates_by_width": {b: n for b, (_, n) in c["bins"].items()},
            "missed": c["plates"] - c["found"], "missed_with_box_iou_0.3_0.5": c["loose"],
            "median_ms": float(np.median(c["ms"])) if c["ms"] else None,
            "p95_ms": float(np.percentile(c["ms"], 95)) if c["ms"] else None}


def det_table(rows: dict[str, dict[str, Any]], labels: dict[str, str]) -> str:
    bins = " | ".join(f"w {b[2]}" for b in WIDTH_BINS)
    lines = [f"| source | labels | photos | plates | recall@0.5 | false/img | {bins} | median ms | p95 ms |",
             "|---|---|---:|---:|---:|---:|" + "---:|" * len(WIDTH_BINS) + "---:|---:|"]
    for name, r in rows.items():
        by = " | ".join(f"{pct(r['recall_by_width'][b[2]])} ({r['plates_by_width'][b[2]]})" for b in WIDTH_BINS)
        fpi = "-" if r["false_per_image"] is None else f"{r['false_per_image']:.2f}"
        ms = "- | -" if r["median_ms"] is None else f"{r['median_ms']:.1f} | {r['p95_ms']:.1f}"
        lines.append(f"| {name} | {labels.get(name, '')} | {r['photos']} | {r['plates']} | {pct(r['recall'])} "
                     f"| {fpi} | {by} | {ms} |")
    return "\n".join(lines)


# ---- OCR ---------------------------------------------------------------------------------------
def ocr_sources(data: str | Path, charset: str, limit: int | None = None) -> dict[str, list[tuple[np.ndarray, str]]]:
    """{source: [(BGR crop, label)]} of the held-out real plates: crops as they are, photo items
    cut to the labelled box. Labels keep ``?`` where a character is masked."""
    from plateread.training.data import load_real, split_real  # imports no torch

    with contextlib.redirect_stdout(sys.stderr):  # load_real prints its warnings
        held_out = split_real(load_real(data, charset))[1]
    out: dict[str, list[tuple[np.ndarray, str]]] = {}
    for it in held_out:
        crop = it.image
        if it.box is not None:
            x0, y0, x1, y1 = (int(round(v)) for v in it.box)
            crop = it.image[y0:y1, x0:x1]
        items = out.setdefault(it.source, [])
        if not limit or len(items) < limit:
            items.append((crop, it.text))
    return out


def matches(read: str, label: str) -> bool:
    """The scoring rule; a label with ``?`` is matched on its visible positions only."""
    return matches_label(normalize_plate(read), label)


def classify(read: str, label: str) -> str:
    """Cause of a wrong read: ``stray`` (label plus extra characters at the start and/or end),
    ``confusion`` (same length, every differing position a look-alike pair), ``length`` (other
    length differences) or ``other``."""
    read = normalize_plate(read)
    n = len(label)
    if len(read) > n and any(matches(read[k:k + n], label) for k in range(len(read) - n + 1)):
        return "stray"
    if len(read) != n:
        return "length"
    diff = [frozenset((r, l)) for r, l in zip(read, label) if l != MASK and r != l]
    return "confusion" if diff and all(d in LOOKALIKES for d in diff) else "other"


def judge(reads: Sequence[Any], labels: Sequence[str]) -> tuple[list[bool], list[bool], list[float]]:
    """(right, label among the candidates, score) of each read (``.text``, ``.score``, ``.candidates``)."""
    ok = [matches(r.text, t) for r, t in zip(reads, labels)]
    top = [o or any(matches(c.plate, t) for c in r.candidates) for r, t, o in zip(reads, labels, ok)]
    return ok, top, [float(r.score) for r in reads]


def ocr_figures(ok: Sequence[bool], top: Sequence[bool], scores: Sequence[float]) -> dict[str, Any]:
    sure = [o for s, o in zip(scores, ok) if s > 0.9]
    a = auroc(list(scores), list(ok))
    return {"n": len(ok), "exact": float(np.mean(ok)) if len(ok) else None,
            "top_n": float(np.mean(top)) if len(top) else None,
            "auroc": None if np.isnan(a) else a,
            "above_0.9": len(sure), "wrong_above_0.9": len(sure) - sum(sure),
            "wrong_share_above_0.9": (len(sure) - sum(sure)) / len(sure) if sure else None}


def ocr_table(rows: dict[str, dict[str, Any]]) -> str:
    f3 = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
    lines = ["| source | n | exact | top-N | AUROC | reads > 0.9 | wrong among > 0.9 |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['n']} | {pct(r['exact'])} | {pct(r['top_n'])} | {f3(r['auroc'])} "
                     f"| {r['above_0.9']} | {pct(r['wrong_share_above_0.9'])} ({r['wrong_above_0.9']}) |")
    return "\n".join(lines)


# ---- failure sheets ----------------------------------------------------------------------------
def spread(by_source: dict[str, list], n: int) -> list:
    """Up to ``n`` items taken in turn from each source's list, so no source fills a sheet alone."""
    out: list = []
    queues = [list(v) for v in by_source.values()]
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    return out


def write_sheet(path: Path, tiles: list[tuple[np.ndarray, str, str]], tile_size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), contact_sheet(tiles, columns=5, tile_size=tile_size))
    print(f"wrote {len(tiles)} tiles to {path}", file=sys.stderr)


def cause_table(errors: list[dict[str, Any]], missed: dict[str, dict[str, Any]]) -> str:
    """Counts per cause; ``missed``: the detector rows ({source: det_figures}) or {}."""
    lines = ["| cause | count | by source | examples (label → read, score) |", "|---|---:|---|---|"]
    if missed:
        n = sum(r["missed"] for r in missed.values())
        loose = sum(r["missed_with_box_iou_0.3_0.5"] for r in missed.values())
        by = ", ".join(f"{k} {r['missed']}" for k, r in missed.items() if r["missed"])
        lines.append(f"| missed (detector) | {n} | {by} | {loose} of them with a box at IoU 0.3–0.5 |")
    for cause in OCR_CAUSES:
        es = sorted((e for e in errors if e["cause"] == cause), key=lambda e: -e["score"])
        srcs: dict[str, int] = {}
        for e in es:
            srcs[e["source"]] = srcs.get(e["source"], 0) + 1
        ex = ", ".join(f"{e['label']} → {e['read'] or '∅'} {e['score']:.2f}" for e in es[:4])
        lines.append(f"| {cause} (OCR) | {len(es)} | {', '.join(f'{k} {v}' for k, v in srcs.items())} | {ex} |")
    return "\n".join(lines)


# ---- main --------------------------------------------------------------------------------------
def run_detector(args: argparse.Namespace, report: dict, sheets: Path | None) -> tuple[str, dict[str, Any]]:
    from plateread.engines.learned.detector import LearnedDetector

    extra = {"zoom": False} if args.no_zoom else {}  # the first pass alone, to see what zooming adds
    if args.zoom_threshold is not None:
        extra["zoom_threshold"] = args.zoom_threshold
    det = LearnedDetector(detector_model=args.detector_model, threshold=args.threshold, threads=args.threads,
                          **extra)
    t0 = time.perf_counter()
    sources = detector_sources(args.data, args.limit)
    print(f"detector photos loaded in {time.perf_counter() - t0:.0f} s: "
          + ", ".join(f"{k} {len(v[0])}" for k, v in sources.items()), file=sys.stderr)
    if sources:  # untimed warm-up: the first calls allocate onnxruntime's arenas
        first = next(iter(sources.values()))[0]
        for p in first[:2]:
            det.detect(p.image)
    counts, tiles = {}, {}
    for name, (photos, _) in sources.items():
        tiles[name] = [] if sheets else None
        counts[name] = score_photos(det, photos, name, tiles[name])
    full = [counts[k] for k, (_, partial) in sources.items() if not partial]
    part = [counts[k] for k, (_, partial) in sources.items() if partial]
    rows = {k: det_figures(c) for k, c in counts.items()}
    per_source = dict(rows)
    rows["all, fully labelled"] = det_figures(merge_det(full))
    rows["all, partly labelled"] = det_figures(merge_det(part))
    rows["all"] = det_figures(merge_det(counts.values()))
    labels = {k: "partial" if partial else "full" for k, (_, partial) in sources.items()}
    report["detector"] = {"model": str(det.model_path), "meta": det.meta, "threshold": det.threshold,
                          "input": [det.width, det.height], "labels": labels, "sources": rows,
                          "misses": merge_det(counts.values())["misses"]}
    if sheets:
        write_sheet(sheets / "validation_missed.png", spread(tiles, SHEET_TILES), (240, 150))
    head = (f"### Detector\n\n`{det.meta.get('name', 'learned')}` v{det.meta.get('version', '?')} "
            f"({Path(det.model_path).name}), input {det.width}x{det.height}, threshold {det.threshold}, "
            f"{args.threads} thread(s){', zoom pass off' if args.no_zoom else ''}. Photos at long side <= 1280 px, plate widths in those pixels; "
            "labels `partial`: some real plates are unlabelled, so false/img there overcounts.\n\n")
    return head + det_table(rows, labels), per_source


def run_ocr(args: argparse.Namespace, report: dict, sheets: Path | None) -> tuple[str, list[dict[str, Any]]]:
    from plateread.engines.crnn.recognizer import CrnnRecognizer

    rec = CrnnRecognizer(ocr_model=args.ocr_model, threads=args.threads)
    sources = ocr_sources(args.data, rec.charset, args.limit)
    print("OCR crops: " + ", ".join(f"{k} {len(v)}" for k, v in sources.items()), file=sys.stderr)
    rows, errors, tiles = {}, [], {}
    every: tuple[list, list, list] = ([], [], [])
    masked: list[bool] = []
    ms = []
    for name, items in sources.items():
        t0 = time.perf_counter()
        reads = rec.recognize([c for c, _ in items])
        ms.append((time.perf_counter() - t0) * 1000 / max(len(items), 1))
        judged = judge(reads, [t for _, t in items])
        rows[name] = ocr_figures(*judged)
        for acc, part in zip(every, judged):
            acc += part
        masked += [MASK in t for _, t in items]
        errs = [({"source": name, "label": label, "read": normalize_plate(rd.text),
                  "score": round(float(rd.score), 3), "cause": classify(rd.text, label)}, crop)
                for (crop, label), rd, o in zip(items, reads, judged[0]) if not o]
        errs.sort(key=lambda ec: -ec[0]["score"])  # confident errors first: they hurt most
        errors += [e for e, _ in errs]
        for e, crop in errs:
            tiles.setdefault(e["cause"], {}).setdefault(name, []).append(
                (crop, f"{e['label']} -> {e['read'] or '(none)'}", f"{name} {e['score']:.2f}"))
    rows["all"] = ocr_figures(*every)
    if any(masked):
        rows["all without `?` labels"] = ocr_figures(*([x for x, m in zip(acc, masked) if not m] for acc in every))
    report["ocr"] = {"model": str(rec.model_path), "meta": {k: v for k, v in rec.meta.items() if k != "charset"},
                     "beam_width": rec.beam_width, "top_n": rec.top_n, "sources": rows, "errors": errors}
    if sheets:
        for cause in OCR_CAUSES:
            if cause in tiles:
                write_sheet(sheets / f"validation_ocr_{cause}.png", spread(tiles[cause], SHEET_TILES), (240, 90))
    head = (f"### OCR\n\n`{rec.meta.get('name', 'crnn')}` v{rec.meta.get('version', '?')} "
            f"({Path(rec.model_path).name}), beam {rec.beam_width}, top-{rec.top_n} candidates, "
            f"{args.threads} thread(s), {np.median(ms) if ms else float('nan'):.1f} ms per crop "
            "(batched, median over sources). `?` labels: visible positions only.\n\n")
    return head + ocr_table(rows), errors


def reader_options(args: argparse.Namespace) -> dict[str, Any]:
    """``Reader`` keyword arguments for the models named on the command line."""
    return {"threads": args.threads, **({"ocr_model": args.ocr_model} if args.ocr_model else {}),
            **({"second_model": args.second_ocr_model} if args.second_ocr_model else {}),
            **({"detector_model": args.detector_model} if args.detector_model else {})}


def run_plates(args: argparse.Namespace, report: dict) -> str:
    """The same held-out crops as whole images through the Reader: the automatic plate-image
    path (``read``), the explicit one (``read_plate``) and the second look on top of it."""
    from plateread import Reader

    opts = reader_options(args)
    auto, plain, second = Reader(**opts), Reader(second_look=None, **opts), Reader(**opts)
    sources = ocr_sources(args.data, plain.recognizer.charset, args.limit)
    lines = [f"| source | n | read (auto: a plate image is read whole) | read, scaled to {LARGE_CROP_WIDTH} px wide "
             "| read_plate | read_plate + second look "
             "| second looks | AUROC (plain / second look) | wrong among > 0.9 (plain / second look) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows: dict[str, Any] = {}
    every: dict[str, list] = {"auto": [], "large": [], "plain": [], "second": [], "ps": [], "ss": [], "looks": []}
    for name, items in sources.items():
        res: dict[str, list] = {"auto": [], "large": [], "plain": [], "second": [], "ps": [], "ss": [], "looks": []}
        for crop, label in items:
            a = auto.read(crop).results
            res["auto"].append(any(matches(r.plate, label) for r in a))
            h, w = crop.shape[:2]  # the same plate as a high-resolution camera cuts it
            big = cv2.resize(crop, (LARGE_CROP_WIDTH, max(8, round(h * LARGE_CROP_WIDTH / w))), interpolation=cv2.INTER_CUBIC)
            res["large"].append(any(matches(r.plate, label) for r in auto.read(big).results))
            for key, rdr, sc in (("plain", plain, "ps"), ("second", second, "ss")):
                r = rdr.read_plate(crop).results
                res[key].append(bool(r) and matches(r[0].plate, label))
                res[sc].append(float(r[0].score) if r else 0.0)
            res["looks"].append(res["ps"][-1] < (second.second_look or 0))
        for k in every:
            every[k] += res[k]
        rows[name] = res
    rows["all"] = every
    out = {}
    for name, res in rows.items():
        fp, fs = ocr_figures(res["plain"], res["plain"], res["ps"]), ocr_figures(res["second"], res["second"], res["ss"])
        out[name] = {"n": len(res["auto"]), "auto": float(np.mean(res["auto"])), "large": float(np.mean(res["large"])),
                     "read_plate": fp["exact"],
                     "second_look": fs["exact"], "looks": int(sum(res["looks"])), "auroc_plain": fp["auroc"],
                     "auroc_second": fs["auroc"], "wrong_09_plain": fp["wrong_share_above_0.9"],
                     "wrong_09_second": fs["wrong_share_above_0.9"]}
        f3 = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
        o = out[name]
        lines.append(f"| {name} | {o['n']} | {pct(o['auto'])} | {pct(o['large'])} | {pct(o['read_plate'])} | {pct(o['second_look'])} "
                     f"| {o['looks']} | {f3(o['auroc_plain'])} / {f3(o['auroc_second'])} "
                     f"| {pct(o['wrong_09_plain'])} / {pct(o['wrong_09_second'])} |")
    cuts = non_plate_cuts(args.data, per_source=40)
    false_reads = sum(len(auto.read(c).results) for c in cuts)
    large = non_plate_cuts(args.data, per_source=None, widths=(480, 1280), aspects=(1.8, 2.0, 2.5, 3.0, 4.0),
                           per_photo=1)
    large_results = [(c.shape[1], c.shape[0], auto.read(c).results) for c in large]
    large_reads = sum(len(r) for _, _, r in large_results)
    large_whole = sum(1 for w, h, r in large_results for x in r if (x.box.xmin, x.box.ymin, x.box.xmax, x.box.ymax) == (0, 0, w, h))
    report["plates"] = out
    report["non_plate_cuts"] = {"cuts": len(cuts), "reads": false_reads, "large_cuts": len(large),
                                "large_reads": large_reads, "large_whole_reads": large_whole}
    head = ("### Plate images through the reader\n\nEach held-out crop handed to `Reader` as a whole image; "
            f"second look below a read score of {second.second_look}. `?` labels: visible positions only.\n\n")
    tail = (f"\n\nThe other side: {len(cuts)} plate-sized cuts (60-300 px wide, aspect 1.2-4) of held-out and dev "
            "photos, each at least 10 px away from every labelled plate, through `read`: "
            f"**{false_reads} reads returned**; {len(large)} one-line-shaped cuts 480-1280 px wide: "
            f"**{large_reads} reads returned**, {large_whole} of them read whole (some sets label only some "
            "plates, so a few may be real ones).")
    return head + "\n".join(lines) + tail


#: Read-score bounds for counting reads away from every labelled plate: a false alarm read at a
#: high score is what raises a false watchlist hit, so those are counted apart.
FALSE_READ_BOUNDS = (0.0, 0.5, 0.9)


def reads_elsewhere(reader: Any, photos: Sequence[Any], source: str = "",
                    tiles: list[tuple[np.ndarray, str, str]] | None = None,
                    tile_min_score: float = 0.5) -> tuple[list[int], list[dict[str, Any]]]:
    """Runs ``reader.read`` on each photo (``.image``, ``.boxes`` N×4 x0 y0 x1 y1, ``.key``) and
    keeps the reads that overlap no labelled box (IoU < READ_IOU): their count at each of
    ``FALSE_READ_BOUNDS`` and a list of them; with ``tiles``, a picture of each read at >= ``tile_min_score``."""
    from plateread import Box

    counts, listed = [0] * len(FALSE_READ_BOUNDS), []
    for p in photos:
        gts = np.asarray(p.boxes, np.float32).reshape(-1, 4)
        labels = [Box(*(int(round(float(v))) for v in b)) for b in gts]
        for r in reader.read(p.image).results:
            if any(r.box.iou(b) >= READ_IOU for b in labels):
                continue
            for i, bound in enumerate(FALSE_READ_BOUNDS):
                counts[i] += r.score >= bound
            listed.append({"source": source, "photo": p.key, "plate": r.plate, "score": round(float(r.score), 3),
                           "box": [r.box.xmin, r.box.ymin, r.box.xmax, r.box.ymax]})
            if tiles is not None and r.score >= tile_min_score:
                box = np.array([r.box.xmin, r.box.ymin, r.box.xmax, r.box.ymax], np.float32)
                tiles.append((failure_tile(p.image, box, gts, box[None]),
                              f"{source} {p.key.split('/', 1)[-1]}"[:30], f"{r.plate} {r.score:.2f}"))
    return counts, listed


def reads_table(rows: dict[str, dict[str, Any]]) -> str:
    lines = ["| source | labels | photos | " + " | ".join(f"reads >= {b} / photo" for b in FALSE_READ_BOUNDS) + " |",
             "|---|---|---:|" + "---:|" * len(FALSE_READ_BOUNDS)]
    for name, r in rows.items():
        lines.append(f"| {name} | {'partial' if r['partial'] else 'full'} | {r['photos']} | "
                     + " | ".join(f"{c / max(1, r['photos']):.3f} ({c})" for c in r["counts"]) + " |")
    return "\n".join(lines)


def run_reads(args: argparse.Namespace, report: dict, sheets: Path | None) -> str:
    """The whole reader on the detector's validation photos: reads that lie on no labelled plate,
    counted by read score. On fully labelled sources these are false alarms (or a rare missed
    label); on partly labelled ones they include real unlabelled plates."""
    from plateread import Reader

    reader = Reader(**reader_options(args))
    rows: dict[str, dict[str, Any]] = {}
    tiles: list = []
    listed: list = []
    for name, (photos, partial) in detector_sources(args.data, args.limit).items():
        counts, found = reads_elsewhere(reader, photos, name, tiles if sheets else None, args.false_sheet_min)
        rows[name] = {"photos": len(photos), "partial": partial, "counts": counts}
        listed += found
    full = [r for r in rows.values() if not r["partial"]]
    rows["all, fully labelled"] = {"photos": sum(r["photos"] for r in full), "partial": False,
                                   "counts": [sum(c) for c in zip(*(r["counts"] for r in full))]}
    report["reads_elsewhere"] = {"bounds": list(FALSE_READ_BOUNDS), "sources": rows, "reads": listed}
    if sheets and tiles:
        if args.false_sheet_min < 0.5:  # every read: a long sheet, as JPEG
            write_sheet(sheets / "validation_false_reads_all.jpg", tiles, (240, 150))
        else:
            write_sheet(sheets / "validation_false_reads.png", tiles[:SHEET_TILES], (240, 150))
    head = ("### Reads away from the labelled plates\n\nThe whole `Reader` (detector, OCR, second look) on the "
            "detector's validation photos; a read counts here when it overlaps no labelled plate (IoU < 0.3). "
            "On fully labelled sources these are false alarms; on partly labelled ones they include real plates "
            "the labels leave out. Read at a high score, a false alarm becomes a false watchlist hit.\n\n")
    return head + reads_table(rows)


# ---- end to end on photos whose plates the OCR never trained on --------------------------------
def e2e_sources(data: str | Path, limit: int | None = None) -> dict[str, list[tuple[np.ndarray, list[tuple[Any, str]]]]]:
    """{source: [(photo, [(labelled Box, text)])]}: train photos with text-labelled plates in the
    OCR's hash hold-out (openalpr-us/br), and uc3m-lp street photos with their plates' texts taken
    from uc3m-lp-crops (crop to box by aspect; ``?`` kept) where the text is held out. Only those
    plates are scored; a photo's other plates (the OCR trained on them) are ignored. The detector
    trained on most of these photos, so this compares OCR candidates (and the reader's crops), not
    detectors."""
    import itertools
    import json

    from plateread.evaluation.dataset import load_index
    from plateread.training.data import is_holdout
    from plateread.types import Box

    root = Path(data)
    out: dict[str, list] = {}
    for name in ("openalpr-us", "openalpr-br"):
        if not (root / name / "index.jsonl").is_file():
            continue
        for smp in load_index(root / name, "train"):
            plates = [(p.box, p.text) for p in smp.plates if p.text and p.box is not None and is_holdout(p.text)]
            if plates and (not limit or len(out.get(name, [])) < limit):
                out.setdefault(name, []).append((cv2.imread(str(smp.path), cv2.IMREAD_COLOR), plates))
    crops_index, photos_index = root / "uc3m-lp-crops" / "index.jsonl", root / "uc3m-lp" / "index.jsonl"
    if crops_index.is_file() and photos_index.is_file():
        by_photo: dict[str, list[dict]] = {}
        for line in crops_index.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            by_photo.setdefault(row["photo"], []).append(row)
        for line in photos_index.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            crops = by_photo.get(Path(row["image"]).stem, [])
            boxes = [p["box"] for p in row["plates"]]
            if not crops or len(crops) != len(boxes) or not any(is_holdout(c["plates"][0]["text"]) for c in crops):
                continue
            aspect = lambda c, b: abs(c["height"] / c["width"] - b[3] / b[2])  # noqa: E731
            perm = min(itertools.permutations(range(len(boxes))),
                       key=lambda pm: sum(aspect(c, boxes[j]) for c, j in zip(crops, pm)))
            plates = [(Box.from_xywh(*boxes[j]), c["plates"][0]["text"]) for c, j in zip(crops, perm)
                      if is_holdout(c["plates"][0]["text"]) and aspect(c, boxes[j]) < 0.05]
            if plates and (not limit or len(out.get("uc3m-lp", [])) < limit):
                out.setdefault("uc3m-lp", []).append((cv2.imread(str(root / "uc3m-lp" / row["image"])), plates))
    return out


def score_e2e(reader: Any, photos: Sequence[tuple[np.ndarray, list[tuple[Any, str]]]]) -> dict[str, Any]:
    """Per labelled plate (``evaluation.metrics.score_plate`` with ``?`` matching any character):
    read right, its text among the candidates, boxed at IoU >= 0.5; reads right also by plate
    width (street photos hold plates too small for any reader)."""
    from plateread.evaluation.dataset import LabelledPlate

    c: dict[str, Any] = {"plates": 0, "right": 0, "top_n": 0, "found": 0,
                         "by_width": {b[2]: [0, 0] for b in WIDTH_BINS}}
    for image, plates in photos:
        reads = reader.read(image).results
        for box, text in plates:
            o = score_plate(LabelledPlate(text, box), reads, matches)
            c["plates"] += 1
            c["right"] += o.correct
            c["top_n"] += o.in_top_n
            c["found"] += bool(o.detected)
            c["by_width"][width_bin(box.width)][0] += o.correct
            c["by_width"][width_bin(box.width)][1] += 1
    return c


def run_e2e(args: argparse.Namespace, report: dict) -> str:
    from plateread import Reader

    reader = Reader(**reader_options(args))
    rows = {name: score_e2e(reader, photos) for name, photos in e2e_sources(args.data, args.limit).items()}
    rows["all"] = {k: sum(r[k] for r in rows.values()) for k in ("plates", "right", "top_n", "found")}
    rows["all"]["by_width"] = {b[2]: [sum(r["by_width"][b[2]][i] for n, r in rows.items() if n != "all")
                                      for i in (0, 1)] for b in WIDTH_BINS}
    report["e2e"] = rows
    lines = ["| source | plates | read right | top-N | boxed (IoU >= 0.5) | "
             + " | ".join(f"right, w {b[2]}" for b in WIDTH_BINS) + " |", "|---|---:|---:|---:|---:|" + "---:|" * len(WIDTH_BINS)]
    for name, r in rows.items():
        n = max(1, r["plates"])
        lines.append(f"| {name} | {r['plates']} | {pct(r['right'] / n)} | {pct(r['top_n'] / n)} | {pct(r['found'] / n)} | "
                     + " | ".join(f"{pct(f / m) if m else '-'} ({m})" for f, m in r["by_width"].values()) + " |")
    head = ("### End to end on photos, plates the OCR never trained on\n\nThe whole `Reader` on train photos "
            "whose labelled plates are in the OCR's text hold-out (openalpr-us/br; uc3m-lp street photos, 320x240, "
            "with the texts of uc3m-lp-crops, `?` = any character, most plates under 40 px wide). The detector "
            "trained on most of these photos: this compares OCR models and crops, not detectors.\n\n")
    return head + "\n".join(lines)


def non_plate_cuts(data: str | Path, per_source: int | None, widths: tuple[int, int] = (60, 300),
                   aspects: Sequence[float] = (1.2, 1.6, 2.5, 4.0), per_photo: int = 3) -> list[np.ndarray]:
    """Plate-shaped cuts (``widths`` px wide, one of ``aspects``) of validation photos, each at
    least 10 px away from every labelled plate (seeded): what the plate-image path must not read."""
    import random

    rng = random.Random(1)
    cuts = []
    for photos, _partial in detector_sources(data, None).values():
        for p in photos[:per_source]:
            H, W = p.image.shape[:2]
            for _ in range(per_photo):
                cw = rng.randint(widths[0], max(widths[0], min(widths[1], W - 1)))
                ch = int(cw / rng.choice(aspects))
                if cw >= W or ch >= H or ch < 10:
                    continue
                x, y = rng.randint(0, W - cw), rng.randint(0, H - ch)
                if all(x + cw < b[0] - 10 or x > b[2] + 10 or y + ch < b[1] - 10 or y > b[3] + 10 for b in p.boxes):
                    cuts.append(p.image[y:y + ch, x:x + cw])
    return cuts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="folder holding the sets (default ../shared/data)")
    ap.add_argument("--detector-model", default=None, help="detector ONNX (default: the shipped one)")
    ap.add_argument("--ocr-model", default=None, help="CRNN ONNX (default: the shipped one)")
    ap.add_argument("--second-ocr-model", default=None, help="the second look's CRNN ONNX ('none': without; "
                    "default: the shipped one unless --ocr-model replaces the first)")
    ap.add_argument("--threshold", type=float, default=None, help="detector threshold (default: the model's)")
    ap.add_argument("--no-zoom", action="store_true", help="detector without its zoomed second pass")
    ap.add_argument("--zoom-threshold", type=float, default=None,
                    help="score a zoom-window detection needs (default: the threshold + 0.1)")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime and OpenCV threads")
    ap.add_argument("--limit", type=int, default=None, help="at most N photos / crops per source (quick check)")
    ap.add_argument("--parts", nargs="+", choices=("detector", "ocr", "plates", "reads", "e2e"),
                    default=["detector", "ocr", "plates", "reads", "e2e"])
    ap.add_argument("--sheets", nargs="?", const=str(REPO / "docs" / "images"), default=None, metavar="DIR",
                    help="write failure contact sheets by cause here (bare flag: docs/images)")
    ap.add_argument("--false-sheet-min", type=float, default=0.5, metavar="SCORE",
                    help="reads part: draw the reads away from the labels from this score on (default 0.5; "
                         "below 0.5 every one is drawn, to tell real unlabelled plates from false alarms by eye)")
    ap.add_argument("--json", metavar="FILE", help="also write all figures (and every error) as JSON")
    args = ap.parse_args(argv)
    if not Path(args.data).is_dir():
        print(f"no data folder {args.data}", file=sys.stderr)
        return 2
    cv2.setNumThreads(args.threads)
    sheets = Path(args.sheets) if args.sheets else None
    report: dict[str, Any] = {"data": str(args.data), "limit": args.limit}
    out = ["Validation data only, never a test split: detector on open-lpr `dev` and the 10% hash "
           "hold-out of each box set's train photos; OCR on the 10% hash hold-out (by plate text) of "
           "the text-labelled real crops."]
    missed: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    try:
        if "detector" in args.parts:
            text, missed = run_detector(args, report, sheets)
            out.append(text)
        if "ocr" in args.parts:
            text, errors = run_ocr(args, report, sheets)
            out.append(text)
        if "plates" in args.parts:
            out.append(run_plates(args, report))
        if "reads" in args.parts:
            out.append(run_reads(args, report, sheets))
        if "e2e" in args.parts:
            out.append(run_e2e(args, report))
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    out.append("### Failures by cause\n\nOCR: `stray` = label plus extra characters at an end, "
               "`confusion` = same length and only look-alike pairs differ (" +
               " ".join(f"{p[0]}/{p[1]}" for p in LOOKALIKE_PAIRS) +
               "), `length` = other length errors.\n\n" + cause_table(errors, missed))
    print("\n\n".join(out))
    if args.json:
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
