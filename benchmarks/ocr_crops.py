"""OCR-only benchmark: reads the labelled plate crops of the TEST photos of openalpr-us/eu/br.

    python benchmarks/ocr_crops.py --data ../shared/data --recognizers crnn tesseract --json out/ocr.json

Crops are cut by the labelled boxes, so detection plays no part. Reports per set: exact-match
accuracy (scoring convention of shared/data/README.md), top-N accuracy, median time per crop
(batch 1, and batched), model size, and how well the score separates right from wrong reads
(AUROC; wrong reads scoring above 0.9). Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from plateread.annotate import contact_sheet
from plateread.evaluation.dataset import iter_labelled_crops
from plateread.evaluation.metrics import auroc
from plateread.registry import create_recognizer
from plateread.text import normalize_plate

from report import TEST_SETS as SETS  # noqa: E402  (this script's folder is on sys.path)


def load_crops(data: Path, sets: tuple[str, ...]) -> dict[str, list[tuple[np.ndarray, str]]]:
    out: dict[str, list[tuple[np.ndarray, str]]] = {}
    for name in sets:
        items = []
        for sample, plate in iter_labelled_crops(data / name, "test"):
            if plate.box is None:
                continue
            img = cv2.imread(str(sample.path), cv2.IMREAD_COLOR)
            if img is None:
                continue
            b = plate.box
            crop = img[max(0, b.ymin):b.ymax, max(0, b.xmin):b.xmax]
            if crop.size:
                items.append((crop, plate.text or ""))
        out[name] = items
    return out


def model_size(rec: object) -> float | None:
    """Size in MB of the recognizer's model file, where it has one."""
    path = getattr(rec, "model_path", None)
    return Path(path).stat().st_size / 1e6 if path and Path(path).is_file() else None


def bench(name: str, crops: dict[str, list[tuple[np.ndarray, str]]], batch: int,
          model_path: str | None) -> dict:
    kwargs: dict = {"threads": 1} if name == "crnn" else {}
    if model_path and name == "crnn":
        kwargs["ocr_model"] = model_path
    try:
        rec = create_recognizer(name, **kwargs)
    except Exception as exc:  # noqa: BLE001 - report, do not crash the other recognizers
        return {"recognizer": name, "error": f"{type(exc).__name__}: {exc}"}
    res: dict = {"recognizer": name, "sets": {}}
    all_scores: list[float] = []
    all_ok: list[bool] = []
    t1: list[float] = []
    tb: list[float] = []
    for set_name, items in crops.items():
        imgs = [c for c, _ in items]
        texts = [t for _, t in items]
        reads = []
        for img in imgs:  # batch 1, one thread
            t0 = time.perf_counter()
            reads += rec.recognize([img])
            t1.append((time.perf_counter() - t0) * 1000)
        for i in range(0, len(imgs), batch):
            t0 = time.perf_counter()
            rec.recognize(imgs[i:i + batch])
            n = len(imgs[i:i + batch])
            tb += [(time.perf_counter() - t0) * 1000 / n] * n
        ok = [normalize_plate(r.text) == t for r, t in zip(reads, texts)]
        topn = [t in {normalize_plate(c.plate) for c in r.candidates} | {normalize_plate(r.text)}
                for r, t in zip(reads, texts)]
        scores = [float(r.score) for r in reads]
        all_scores += scores
        all_ok += ok
        res["sets"][set_name] = {
            "n": len(items), "exact": float(np.mean(ok)) if ok else float("nan"),
            "top_n": float(np.mean(topn)) if topn else float("nan"),
            "wrong_above_0.9": int(sum(1 for s, o in zip(scores, ok) if s > 0.9 and not o)),
            "auroc": auroc(scores, ok),
            "errors": [(t, r.text, round(r.score, 3)) for r, t, o in zip(reads, texts, ok) if not o],
        }
        res.setdefault("error_crops", []).extend(
            (img, f"{set_name[9:]}: {r.text or '(none)'} {r.score:.2f}", f"label: {t}")
            for img, r, t, o in zip(imgs, reads, texts, ok) if not o)
    res["all"] = {"n": len(all_ok), "exact": float(np.mean(all_ok)) if all_ok else float("nan"),
                  "auroc": auroc(all_scores, all_ok),
                  "wrong_above_0.9": int(sum(1 for s, o in zip(all_scores, all_ok) if s > 0.9 and not o)),
                  "right_above_0.9": int(sum(1 for s, o in zip(all_scores, all_ok) if s > 0.9 and o))}
    res["median_ms_batch1"] = statistics.median(t1) if t1 else float("nan")
    res["median_ms_per_crop_batched"] = statistics.median(tb) if tb else float("nan")
    res["batch"] = batch
    res["model_mb"] = model_size(rec)
    return res


def table(results: list[dict], sets: tuple[str, ...]) -> str:
    head = ["recognizer"] + [f"{s} exact" for s in sets] + [
        "all exact", "AUROC", "wrong >0.9", "ms/crop b=1", "ms/crop batched", "model MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['recognizer']} | " + f"error: {r['error']} |")
            continue
        cells = [r["recognizer"]]
        cells += [f"{r['sets'][s]['exact']:.3f} ({r['sets'][s]['n']})" for s in sets]
        cells += [f"{r['all']['exact']:.3f}", f"{r['all']['auroc']:.3f}",
                  f"{r['all']['wrong_above_0.9']}", f"{r['median_ms_batch1']:.1f}",
                  f"{r['median_ms_per_crop_batched']:.1f} (b={r['batch']})",
                  "-" if r["model_mb"] is None else f"{r['model_mb']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    ap.add_argument("--recognizers", nargs="+", default=["crnn", "tesseract"])
    ap.add_argument("--sets", nargs="+", default=list(SETS))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--model", default=None, help="crnn ONNX path (default: the shipped model)")
    ap.add_argument("--json", default=None, help="write the full results (with errors) here")
    ap.add_argument("--show-errors", type=int, default=0, help="print up to N wrong reads per set")
    ap.add_argument("--errors-sheet", metavar="PNG", help="contact sheet of the first recognizer's wrong reads")
    a = ap.parse_args(argv)
    sets = tuple(a.sets)
    crops = load_crops(Path(a.data), sets)
    print("crops: " + ", ".join(f"{k} {len(v)}" for k, v in crops.items()), file=sys.stderr)
    results = [bench(name, crops, a.batch, a.model) for name in a.recognizers]
    print(table(results, sets))
    for r in results:
        if "all" in r:
            print(f"\n{r['recognizer']}: reads scoring > 0.9: {r['all']['right_above_0.9']} right, "
                  f"{r['all']['wrong_above_0.9']} wrong; AUROC(score, right) {r['all']['auroc']:.3f}")
            if a.show_errors:
                for s in sets:
                    errs = r["sets"][s]["errors"][: a.show_errors]
                    print(f"  {s} errors (label, read, score): {errs}")
    if a.errors_sheet and results and results[0].get("error_crops"):
        tiles = results[0]["error_crops"][:48]
        cv2.imwrite(a.errors_sheet, contact_sheet(tiles, columns=6, tile_size=(200, 90)))
        print(f"\n{len(tiles)} wrong reads of {results[0]['recognizer']} drawn into {a.errors_sheet}",
              file=sys.stderr)
    for r in results:
        r.pop("error_crops", None)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
