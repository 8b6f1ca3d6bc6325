"""``plateread finetune ocr|detector``: adapt the shipped models to your own plates.

Both start from the shipped ONNX model (its weights are loaded back into torch), train on your
labelled data mixed with the synthetic plates the models were trained on (so they do not forget
other layouts), and write an ONNX file that ``--ocr-model`` / ``--detector-model`` take. Needs
the ``[train]`` extra (torch).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune", help="fine-tune the shipped OCR or detector on your own labelled plates",
        description="Fine-tune a shipped model on your own data and write an ONNX file. OCR data: a "
                    "folder of plate crops named by their text (AB123CD.jpg, AB123CD_2.png) or a "
                    "folder with index.jsonl as in shared/data. Detector data: a folder with "
                    "index.jsonl whose photos have every plate boxed. Needs: pip install 'plateread[train]'.")
    p.add_argument("model", choices=("ocr", "detector"), help="which model to fine-tune")
    p.add_argument("data", nargs="+", metavar="DIR", help="your labelled data (one or more folders)")
    p.add_argument("--out", required=True, metavar="ONNX", help="the fine-tuned model to write (with its .json)")
    p.add_argument("--minutes", type=float, default=15.0, help="training time budget (default 15)")
    p.add_argument("--work", metavar="DIR", help="checkpoints and log (default: a folder beside --out); "
                   "re-running with the same --work resumes")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: 5e-4 OCR, 1e-3 detector)")
    p.add_argument("--fonts", default=None, help="fonts for the synthetic plates (default: system DejaVu)")
    p.add_argument("--shared-data", default=None, metavar="DIR",
                   help="also mix in the built-in training sets from this data root (shared/data)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        print("plateread: error: finetune needs torch: pip install 'plateread[train]'", file=sys.stderr)
        return 2
    out = Path(args.out)
    work = Path(args.work) if args.work else out.with_name(out.stem + "_work")
    data_root = args.shared_data or tempfile.mkdtemp(prefix="plateread-nodata-")
    common = ["--data", data_root, "--out", str(work), "--minutes", str(args.minutes),
              "--threads", str(args.threads), "--export", str(out)]
    if args.fonts:
        common += ["--fonts", args.fonts]
    extra = [a for d in args.data for a in ("--extra", d)]
    if args.model == "ocr":
        from ..engines.crnn.recognizer import DEFAULT_MODEL
        from ..training import train_ocr

        argv = common + extra + ["--init", str(DEFAULT_MODEL), "--lr", str(args.lr or 5e-4),
                                 "--real-frac", "0.6", "--extra-weight", "3", "--synth-val", "200",
                                 "--eval-every", "200"]
        if not args.shared_data:
            argv += ["--sets", "none"]
        train_ocr.main(argv)
    else:
        from ..engines.learned.detector import DEFAULT_MODEL as DET_MODEL
        from ..training import train_detector

        argv = common + extra + ["--init", str(DET_MODEL), "--lr", str(args.lr or 1e-3),
                                 "--crop", "320x320", "--epoch-size", "512", "--workers", "0"]
        if not args.shared_data:
            argv += ["--sets", "none"]
        train_detector.main(argv)
    if not out.is_file():
        print(f"plateread: error: no model written to {out} (see the log in {work})", file=sys.stderr)
        return 1
    flag = "--ocr-model" if args.model == "ocr" else "--detector-model"
    print(f"wrote {out}; use it with: plateread read PHOTO {flag} {out}")
    return 0
