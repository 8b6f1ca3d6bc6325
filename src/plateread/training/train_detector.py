"""Trains the CenterNet-style plate detector (real photos + synthetic composites).

    python -m plateread.training.train_detector --data ../shared/data --out runs/detector \\
        --minutes 120 --threads 2 --workers 1

Resumable: re-running the same command continues from ``OUT/last.pt`` (written every
``--ckpt-minutes``, on SIGTERM/SIGINT and at the end); ``--minutes`` is the TOTAL training
budget across sessions (the checkpoint remembers the time already spent), and the learning rate
follows warm-up + cosine over the fraction of that budget used, so an interrupted and resumed run
anneals exactly like an uninterrupted one. Validation (every epoch) runs the numpy decoder of the
shipped detector on held-out real photos and prints recall at IoU 0.5 and false detections per
image; the best by F1 is kept as ``OUT/best.pt`` and exported at the end (``--export``).
"""
from __future__ import annotations

import argparse
import math
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

from .clock import step_seconds
from ..engines.learned.detector import decode, letterbox, to_tensor
from .det_data import (DEV_SETS, SIZE_UNIT, STRIDE, TRAIN_SETS, Photo, SampleGenerator, build_targets,
                       draw_sample, load_photos, match, split_photos)
from .det_model import PlateNet, count_params

ARCHS: dict[str, dict[str, Any]] = {
    "s": {"stages": (16, 32, 64, 160, 320), "neck": 64, "depth": (1, 3, 5, 4)},
    "m": {"stages": (16, 32, 64, 192, 384), "neck": 64, "depth": (2, 3, 6, 5)},
}


def build_model(config: dict[str, Any]) -> PlateNet:
    return PlateNet(tuple(config["stages"]), int(config["neck"]), tuple(config["depth"]))


class _Stream(IterableDataset):
    """Endless samples; each worker gets its own seed so workers never repeat each other."""

    def __init__(self, photos: list[Photo], fonts: str, width: int, height: int, seed: int,
                 synthetic: float, scale_ref: tuple[int, int], crop_focus: float) -> None:
        self.args = (photos, fonts, width, height, seed, synthetic, scale_ref, crop_focus)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        photos, fonts, width, height, seed, synthetic, scale_ref, crop_focus = self.args
        info = torch.utils.data.get_worker_info()
        wid = info.id if info is not None else 0
        gen = SampleGenerator(photos, fonts, width, height, seed * 101 + wid, synthetic, scale_ref,
                              crop_focus)
        while True:
            canvas, objs, ignore, partial = gen.sample()
            t = build_targets(objs, ignore, width, height)
            t["image"] = np.ascontiguousarray(canvas.transpose(2, 0, 1))
            t["partial"] = np.float32(partial)
            yield t


def _worker_init(_: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when to stop
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def _gather(t: torch.Tensor, ind: torch.Tensor) -> torch.Tensor:
    """(B,C,H,W) at flat indices (B,K) → (B,K,C)."""
    b, c = t.shape[:2]
    flat = t.reshape(b, c, -1)
    return flat.gather(2, ind[:, None, :].expand(b, c, ind.shape[1])).permute(0, 2, 1)


def detection_loss(out: tuple[torch.Tensor, ...], t: dict[str, torch.Tensor],
                   corner_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Penalty-reduced focal loss on the heat-map + L1 on size/offset/corners at centres.

    In photos whose labels are known to be partial (openimages: distant plates unlabelled),
    confident small predictions far from any label are not punished: they are as likely to
    be an unlabelled plate as a mistake.
    """
    heat, size, offset, corners = out
    p = heat.clamp(1e-4, 1 - 1e-4)
    gt, ign = t["heat"], t["ignore"]
    pos = (gt >= 0.999).float()
    neg_w = (1 - gt).pow(4) * (1 - ign) * (1 - pos)
    with torch.no_grad():
        width = torch.exp(size[:, :1].clamp(-6, 6)) * SIZE_UNIT
        soft = (t["partial"].view(-1, 1, 1, 1) > 0) & (p > 0.3) & (width < 24) & (gt < 0.1)
        neg_w = neg_w * (~soft).float()
    npos = pos.sum().clamp(min=1)
    focal = -(torch.log(p) * (1 - p).pow(2) * pos + torch.log(1 - p) * p.pow(2) * neg_w).sum() / npos
    m = t["mask"][..., None]
    nobj = m.sum().clamp(min=1)
    l_size = (torch.abs(_gather(size, t["ind"]) - t["size"]) * m).sum() / nobj
    l_off = (torch.abs(_gather(offset, t["ind"]) - t["offset"]) * m).sum() / nobj
    cm = t["cmask"][..., None]
    l_corner = (torch.abs(_gather(corners, t["ind"]) - t["corners"]) * cm).sum() / cm.sum().clamp(min=1)
    loss = focal + l_size + l_off + corner_weight * l_corner
    return loss, {"heat": focal.item(), "size": l_size.item(), "off": l_off.item(), "corner": l_corner.item()}



class Validator:
    """Held-out real photos, letterboxed once; scored with the inference decoder."""

    def __init__(self, photos: list[Photo], width: int, height: int) -> None:
        self.items = []
        for p in photos:
            boxed, lb = letterbox(p.image, width, height)
            self.items.append((p.key.split("/")[0], to_tensor(boxed), lb, p.boxes))

    @torch.no_grad()
    def __call__(self, model: nn.Module, threshold: float = 0.35, low: float = 0.1) -> dict[str, float]:
        """Scores at ``threshold``; also recall at ``low``, which shows progress early on,
        while peaks are still too weak to pass the operating threshold."""
        model.eval()
        per: dict[str, list[int]] = {}
        low_found = 0
        for name, x, lb, gts in self.items:
            maps = [o[0].numpy() for o in model(torch.from_numpy(x))]
            raws = decode(*maps, threshold=min(threshold, low), nms_iou=0.5, max_dets=20)
            dets = np.array([np.concatenate([lb.to_original(r.box[:2]), lb.to_original(r.box[2:])])
                             for r in raws], np.float32).reshape(-1, 4)
            keep = np.array([r.score >= threshold for r in raws], bool)
            found, false = match(dets[keep], gts)
            low_found += match(dets, gts)[0]
            acc = per.setdefault(name, [0, 0, 0, 0])
            acc[0] += found
            acc[1] += len(gts)
            acc[2] += false
            acc[3] += 1
        model.train()
        tot = np.sum(list(per.values()), 0) if per else np.zeros(4)
        recall = tot[0] / max(tot[1], 1)
        precision = tot[0] / max(tot[0] + tot[2], 1)
        res = {"recall": float(recall), "precision": float(precision),
               "false_per_image": float(tot[2] / max(tot[3], 1)),
               "f1": float(2 * recall * precision / max(recall + precision, 1e-9)),
               f"recall@{low:g}": low_found / max(tot[1], 1)}
        for name, (f, n, _, _) in per.items():
            res[f"recall/{name}"] = f / max(n, 1)
        return res


def lr_at(p: float, peak: float, warm: float = 0.03) -> float:
    if p < warm:
        return peak * (0.05 + 0.95 * p / warm)
    q = min(1.0, (p - warm) / (1 - warm))
    return peak * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * q)))


def _collate(batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.stack([b[k] for b in batch])) for k in batch[0]}


def write_preview(photos: list[Photo], fonts: str, width: int, height: int, n: int, path: str,
                  seed: int) -> None:
    gen = SampleGenerator(photos, fonts, width, height, seed)
    tiles = [draw_sample(*gen.sample()[:3]) for _ in range(n)]
    cols = 3
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % cols)
    rows = [np.concatenate(tiles[i:i + cols], 1) for i in range(0, len(tiles), cols)]
    cv2.imwrite(path, np.concatenate(rows, 0))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data", help="data root (shared/data)")
    ap.add_argument("--fonts", default=None, help="fonts dir (default DATA/fonts)")
    ap.add_argument("--out", default="runs/detector", help="checkpoints and log folder")
    ap.add_argument("--minutes", type=float, default=120.0, help="total training budget (all sessions)")
    ap.add_argument("--steps", type=int, default=0, help="step budget (0: time only)")
    ap.add_argument("--arch", choices=sorted(ARCHS), default="m",
                    help="network preset: m ~1.0M params, s ~0.57M (faster inference)")
    ap.add_argument("--input", default="640x384", help="WxH of the letterboxed input (multiples of 32)")
    ap.add_argument("--crop", default="",
                    help="train on WxH crops (multiples of 32) of samples scaled for --input; the net is "
                         "fully convolutional, so this trades background pixels for samples per second")
    ap.add_argument("--crop-focus", type=float, default=0.5,
                    help="share of --crop windows placed around a plate; the rest fall anywhere, which "
                         "is where the background negatives (captions, lights, badges) are")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--synthetic", type=float, default=0.65, help="share of samples with composited plates")
    ap.add_argument("--epoch-size", type=int, default=0, help="samples per epoch (0: number of train photos)")
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    ap.add_argument("--val-threshold", type=float, default=0.35)
    ap.add_argument("--workers", type=int, default=1, help="data loader processes (0: in the main one)")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-resume", action="store_true", help="start fresh even if OUT/last.pt exists")
    ap.add_argument("--init", metavar="CKPT",
                    help="fine-tune: start from this checkpoint's weights (and architecture) with a fresh "
                         "optimiser and schedule (ignored when OUT/last.pt resumes this run itself)")
    ap.add_argument("--sets", default="",
                    help="comma-separated set names with boxes to train on (default: every known set); "
                         "a set name not in the defaults counts as fully labelled")
    ap.add_argument("--no-dev", action="store_true", help="validate on the hash hold-out only, not on dev splits")
    ap.add_argument("--extra", action="append", default=[], metavar="DIR",
                    help="your own photos with plate boxes: a folder with index.jsonl as in shared/data "
                         "(every split but test; all plates in a photo labelled); repeatable")
    ap.add_argument("--export", default="src/plateread/models/detector.onnx",
                    help="ONNX written from best.pt at the end ('' to skip)")
    ap.add_argument("--preview", type=int, default=0, metavar="N",
                    help="write N training samples with labels drawn to OUT/preview.png and exit")
    a = ap.parse_args(argv)
    fonts = a.fonts or str(Path(a.data) / "fonts")
    width, height = (int(v) for v in a.input.lower().split("x"))
    if width % 32 or height % 32:
        ap.error("--input sides must be multiples of 32")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(a.threads)
    cv2.setNumThreads(1)  # cv2's thread pool does not survive fork into the loader worker
    torch.manual_seed(a.seed)
    random.seed(a.seed)
    np.random.seed(a.seed)
    tty = sys.stderr.isatty()
    logf = (out / "train.log").open("a", encoding="utf-8")

    def log(msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    t0 = time.time()
    sets = ({n: TRAIN_SETS.get(n, False) for n in a.sets.split(",") if n and n != "none"}
            if a.sets else None)
    photos = load_photos(a.data, sets) if sets != {} else []
    for extra in a.extra:
        ex = Path(extra).resolve()
        photos += load_photos(ex.parent, {ex.name: False}, None)
    if not photos:
        ap.error("no photos with boxes to train on (check --data, --sets and --extra)")
    train, val = split_photos(photos)
    if not train:
        train = val
    if not a.no_dev:
        val += load_photos(a.data, {n: p for n, p in DEV_SETS.items() if sets is None or n in sets}, "dev")
    if a.preview:
        write_preview(train, fonts, width, height, a.preview, str(out / "preview.png"), a.seed)
        print(f"wrote {out / 'preview.png'}")
        return
    log(f"photos: {len(train)} train, {len(val)} held out (loaded in {time.time() - t0:.0f} s)")

    config = {**ARCHS[a.arch], "arch": a.arch, "input_width": width, "input_height": height,
              "stride": STRIDE, "size_unit": SIZE_UNIT}
    step, elapsed, best, epoch = 0, 0.0, -1.0, 0
    ckpt_path = out / "last.pt"
    ck = None
    if ckpt_path.is_file() and not a.no_resume:
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)  # our own training's checkpoint # nosec B614
        config = ck["config"]  # a resumed run keeps its architecture and input size
        width, height = config["input_width"], config["input_height"]
    elif a.init and a.init.endswith(".onnx"):
        import json
        card = json.loads(Path(a.init).with_suffix(".json").read_text(encoding="utf-8"))
        config = {k: card[k] for k in ("arch", "stages", "neck", "depth", "input_width", "input_height",
                                       "stride", "size_unit")}
        width, height = config["input_width"], config["input_height"]
    elif a.init:
        init = torch.load(a.init, map_location="cpu", weights_only=False)  # our own training's checkpoint # nosec B614
        config = init["config"]
        width, height = config["input_width"], config["input_height"]
    model = build_model(config).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.weight_decay)
    if ck is None and a.init and a.init.endswith(".onnx"):
        from .from_onnx import load_onnx_weights
        calib = np.concatenate([to_tensor(letterbox(p.image, width, height)[0]) for p in train[:16]])
        diff = load_onnx_weights(model, a.init, torch.from_numpy(calib))
        model = model.to(memory_format=torch.channels_last)
        log(f"fine-tuning from {a.init} (torch vs onnxruntime after loading: {diff:.1e})")
    elif ck is None and a.init:
        model.load_state_dict(init["model"])
        log(f"fine-tuning from {a.init} (its step {init.get('step')}, epoch {init.get('epoch')})")
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, elapsed, best, epoch = ck["step"], ck["elapsed"], ck.get("best", -1.0), ck.get("epoch", 0)
        log(f"resumed from {ckpt_path}: step {step}, epoch {epoch}, {elapsed / 60:.1f} of "
            f"{a.minutes:g} min done")
    log(f"model: arch {config['arch']}, {count_params(model):,} params, input {width}x{height}")
    command = " ".join(["python -m plateread.training.train_detector"] + (argv if argv is not None else sys.argv[1:]))

    validator = Validator(val, width, height)
    epoch_size = a.epoch_size or len(train)
    crop_w, crop_h = (int(v) for v in a.crop.lower().split("x")) if a.crop else (width, height)
    if crop_w % 32 or crop_h % 32:
        ap.error("--crop sides must be multiples of 32")
    stream = _Stream(train, fonts, crop_w, crop_h, a.seed * 7919 + step, a.synthetic, (width, height),
                     a.crop_focus)
    loader = DataLoader(stream, batch_size=a.batch, num_workers=a.workers, collate_fn=_collate,
                        multiprocessing_context="fork" if a.workers > 0 else None,
                        worker_init_fn=_worker_init if a.workers > 0 else None,
                        persistent_workers=a.workers > 0, prefetch_factor=2 if a.workers > 0 else None)
    budget_s = a.minutes * 60
    stop: list[str] = []

    def on_signal(signum: int, _frame: Any) -> None:
        stop.append(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def progress() -> float:
        p = elapsed / budget_s if budget_s > 0 else 0.0
        return max(p, step / a.steps) if a.steps else p

    def save(path: Path, metrics: dict[str, float] | None = None) -> None:
        tmp = path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "elapsed": elapsed, "best": best, "epoch": epoch, "config": config,
                    "metrics": metrics or {}, "command": command}, tmp)
        os.replace(tmp, path)

    def validate() -> dict[str, float]:
        nonlocal best
        m = validator(model, a.val_threshold)
        sets = " ".join(f"{k.split('/')[1]} {v:.2f}" for k, v in m.items() if k.startswith("recall/"))
        log(f"val epoch {epoch} step {step}: recall@0.5 {m['recall']:.3f} precision {m['precision']:.3f} "
            f"false/img {m['false_per_image']:.2f} F1 {m['f1']:.3f} ({sets}); recall at threshold 0.1 "
            f"{m['recall@0.1']:.3f}")
        if m["f1"] > best:
            best = m["f1"]
            save(out / "best.pt", m)
        return m

    bar = None
    if tty:
        from tqdm import tqdm
        bar = tqdm(total=100, unit="%", bar_format="{l_bar}{bar}| {n:.1f}/{total}% [{elapsed}<{remaining}]{postfix}")
    model.train()
    t_last = t_ckpt = t_rate = time.time()
    seen, in_epoch = 0, step * a.batch % epoch_size
    avg: dict[str, float] = {}
    for batch in loader:
        if progress() >= 1.0 or stop:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(progress(), a.lr)
        x = batch.pop("image").float().contiguous(memory_format=torch.channels_last)
        loss, parts = detection_loss(model(x), batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        step += 1
        seen += x.shape[0]
        in_epoch += x.shape[0]
        now = time.time()
        elapsed += step_seconds(now, t_last)
        t_last = now
        for k, v in parts.items():
            avg[k] = v if k not in avg else 0.95 * avg[k] + 0.05 * v
        if bar is not None:
            bar.n = min(100.0, 100 * progress())
            bar.set_postfix_str(f"ep {epoch} step {step} " + " ".join(f"{k} {v:.3f}" for k, v in avg.items()),
                                refresh=False)
            bar.refresh()
        elif step % 25 == 0:
            rate = seen / max(1e-6, now - t_rate)
            log(f"step {step} ep {epoch} {100 * progress():.1f}% " + " ".join(f"{k} {v:.3f}" for k, v in avg.items())
                + f" lr {opt.param_groups[0]['lr']:.2e} {rate:.1f} img/s")
            seen, t_rate = 0, now
        if in_epoch >= epoch_size:
            epoch += 1
            in_epoch -= epoch_size
            validate()
            t_last = time.time()  # validation time is not training time
        if now - t_ckpt > a.ckpt_minutes * 60:
            save(ckpt_path)
            t_ckpt = time.time()
    if bar is not None:
        bar.close()
    if stop:
        save(ckpt_path)
        log(f"stopped by {stop[0]} at step {step} ({elapsed / 60:.1f} min); saved {ckpt_path}; "
            "run the same command to resume")
        return
    m = validate()
    save(ckpt_path, m)
    log(f"done: step {step}, epoch {epoch}, {elapsed / 60:.1f} min; best F1 {best:.3f} in {out / 'best.pt'}")
    if a.export:
        from .export_detector import export
        export(out / "best.pt" if (out / "best.pt").is_file() else ckpt_path, a.export)


if __name__ == "__main__":
    main()
