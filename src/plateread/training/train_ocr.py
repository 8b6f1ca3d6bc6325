"""Trains the CRNN plate reader from scratch (synthetic + real train crops), CTC loss.

    python -m plateread.training.train_ocr --data ../shared/data --out runs/ocr --minutes 80

The learning-rate schedule (warm-up + cosine) runs on the fraction of the budget used, by
steps (``--steps``) or wall time (``--minutes``), whichever is further along, so a time-boxed
run on a busy 2-core machine still anneals and ends cleanly. Auto-resumes from ``OUT/last.pt``;
at the end it exports ONNX + JSON (``--export``).
"""
from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

from .clock import step_seconds
from .data import (REAL_SETS, WILDCARD, MixedStream, clean_input, load_real, load_user_set, matches,
                   split_real, synthetic_set)
from .model import CRNN, DEFAULT_CHARSET, DEFAULT_WIDTHS, count_params
from .widen import widen


class _Stream(IterableDataset):
    def __init__(self, stream: MixedStream) -> None:
        self.stream = stream

    def __iter__(self):  # type: ignore[override]
        return iter(self.stream)


def _collate(charset: str):
    # "?" (a character greyed out upstream) gets the column after the last class; the loss
    # fills that column with "any character" (see with_wildcard), the model never outputs it
    index = {c: i + 1 for i, c in enumerate(charset)} | {WILDCARD: len(charset) + 1}

    def collate(batch: list[tuple[np.ndarray, str]]):
        x = torch.from_numpy(np.stack([b[0] for b in batch])).float().div_(255).unsqueeze(1)
        targets = torch.tensor([index[c] for _, t in batch for c in t], dtype=torch.long)
        lengths = torch.tensor([len(t) for _, t in batch], dtype=torch.long)
        return x, targets, lengths, [t for _, t in batch]
    return collate


def greedy(logp: torch.Tensor, charset: str) -> list[str]:
    best = logp.argmax(-1).numpy()
    out = []
    for row in best:
        prev, s = 0, []
        for k in row:
            if k != prev and k != 0:
                s.append(charset[k - 1])
            prev = k
        out.append("".join(s))
    return out


def with_wildcard(logp: torch.Tensor) -> torch.Tensor:
    """Appends a wildcard column: log P(any character) = logsumexp of the character columns
    (blank excluded), so a "?" target accepts every character and teaches nothing about the grey box."""
    return torch.cat([logp, torch.logsumexp(logp[..., 1:], -1, keepdim=True)], -1)


@torch.no_grad()
def predict(model: CRNN, x: np.ndarray, charset: str) -> list[str]:
    model.eval()
    preds: list[str] = []
    for i in range(0, len(x), 128):
        xb = torch.from_numpy(x[i:i + 128]).float().div_(255).unsqueeze(1)
        preds += greedy(model(xb), charset)
    model.train()
    return preds


def evaluate(model: CRNN, x: np.ndarray, texts: list[str], charset: str) -> float:
    preds = predict(model, x, charset)
    return float(np.mean([matches(p, t) for p, t in zip(preds, texts)])) if texts else float("nan")


def per_source(model: CRNN, x: np.ndarray, texts: list[str], sources: list[str], charset: str) -> dict[str, float]:
    preds = predict(model, x, charset)
    out: dict[str, list[bool]] = {}
    for p, t, s in zip(preds, texts, sources):
        out.setdefault(s, []).append(matches(p, t))
    return {s: float(np.mean(v)) for s, v in sorted(out.items())}


def init_from_onnx(model: CRNN, path: str, calib_items: list) -> float:
    """Starts from a shipped/exported ONNX model (BatchNorms rebuilt on real crops)."""
    from .from_onnx import load_onnx_weights
    x = np.stack([clean_input(it) for it in calib_items[:256]])
    return load_onnx_weights(model, path, torch.from_numpy(x).float().div_(255).unsqueeze(1))


def lr_at(p: float, peak: float, warm: float = 0.03) -> float:
    if p < warm:
        return peak * (0.1 + 0.9 * p / warm)
    q = min(1.0, (p - warm) / (1 - warm))
    return peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * q)))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data", help="data root (shared/data)")
    ap.add_argument("--fonts", default=None, help="fonts dir (default DATA/fonts)")
    ap.add_argument("--out", default="runs/ocr")
    ap.add_argument("--minutes", type=float, default=80.0, help="wall-time budget of training")
    ap.add_argument("--steps", type=int, default=0, help="step budget (0: time only)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--real-frac", type=float, default=0.45)
    ap.add_argument("--hidden", type=int, default=96, help="LSTM units per direction")
    ap.add_argument("--widths", default=",".join(map(str, DEFAULT_WIDTHS)),
                    help="CNN channels of the five stages; with --hidden, larger than the --init "
                         "checkpoint's: the model is widened from it (plateread.training.widen); an ONNX --init "
                         "keeps its own widths and hidden size")
    ap.add_argument("--charset", default=DEFAULT_CHARSET)
    ap.add_argument("--eval-every", type=int, default=400, help="steps between validations")
    ap.add_argument("--ckpt-minutes", type=float, default=4.0)
    ap.add_argument("--synth-val", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-resume", action="store_true", help="start fresh even if OUT/last.pt exists")
    ap.add_argument("--init", metavar="CKPT",
                    help="fine-tune: start from this checkpoint's (.pt) or ONNX model's (.onnx, e.g. the "
                         "shipped one) weights with a fresh optimiser and schedule (ignored when OUT/last.pt "
                         "resumes the fine-tuning run itself)")
    ap.add_argument("--sets", default=None,
                    help=f"comma-separated built-in real sets to mix in (default all: {','.join(REAL_SETS)}; "
                         "'none' for only --extra data)")
    ap.add_argument("--extra", action="append", default=[], metavar="DIR",
                    help="your own labelled plates: a folder with index.jsonl, or of crops named by their text "
                         "(repeatable); 10%% of its plates (by text hash) are held out for validation")
    ap.add_argument("--extra-weight", type=float, default=1.0,
                    help="sampling weight of each --extra set among the real sets")
    ap.add_argument("--export", default="src/plateread/models/ocr.onnx",
                    help="ONNX written at the end ('' to skip)")
    a = ap.parse_args(argv)
    fonts = a.fonts or str(Path(a.data) / "fonts")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(a.threads)
    cv2.setNumThreads(1)  # cv2's pool does not survive fork into the loader worker
    torch.manual_seed(a.seed)
    random.seed(a.seed)
    np.random.seed(a.seed)
    tty = sys.stderr.isatty()

    def log(msg: str) -> None:
        print(time.strftime("%H:%M:%S"), msg, flush=True)

    charset = a.charset
    sets = None if a.sets is None else [n for n in a.sets.split(",") if n and n != "none"]
    real = load_real(a.data, charset, sets) if sets != [] else []
    for path in a.extra:
        real += load_user_set(path, charset)
    if not real and a.real_frac > 0:
        ap.error("no real plates to train on (check --data, --sets and --extra)")
    train_real, val_real = split_real(real)
    widths = tuple(int(v) for v in a.widths.split(","))
    if a.init and a.init.endswith(".onnx"):  # an exported model fine-tunes at its own size
        from .from_onnx import crnn_config
        shape = crnn_config(a.init)
        widths, a.hidden = tuple(shape["widths"]), shape["hidden"]
    config = {"hidden": a.hidden, "widths": list(widths)}
    model = CRNN(len(charset) + 1, hidden=a.hidden, widths=widths).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    step, elapsed, best = 0, 0.0, -1.0
    ckpt_path = out / "last.pt"
    if ckpt_path.is_file() and not a.no_resume:
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)  # our own training's checkpoint # nosec B614
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, elapsed, best = ck["step"], ck["elapsed"], ck.get("best", -1.0)
        log(f"resumed from {ckpt_path} at step {step}, {elapsed / 60:.1f} min done")
    elif a.init and a.init.endswith(".onnx"):
        diff = init_from_onnx(model, a.init, train_real or val_real)
        log(f"fine-tuning from {a.init} (torch vs onnxruntime after loading: {diff:.1e})")
    elif a.init:
        ck = torch.load(a.init, map_location="cpu", weights_only=False)  # our own training's checkpoint # nosec B614
        if ck.get("charset", charset) != charset:
            ap.error(f"--init {a.init} has another charset than this run")
        small = CRNN.from_config(len(charset) + 1, ck.get("config", {}))
        if (small.rnn.hidden_size, small.widths) == (a.hidden, widths):
            model.load_state_dict(ck["model"])
            log(f"fine-tuning from {a.init} (its step {ck.get('step')})")
        else:
            small.load_state_dict(ck["model"])  # only the widening needs the smaller model's weights
            try:
                widen(small, model)
            except ValueError as exc:
                ap.error(f"--init {a.init}: {exc}")
            log(f"widened from {a.init} (its step {ck.get('step')}; hidden {small.rnn.hidden_size} -> {a.hidden}, "
                f"CNN {list(small.widths)} -> {list(widths)})")
    log(f"model: {count_params(model):,} params, charset {len(charset)}")

    log(f"real crops: {len(train_real)} train, {len(val_real)} held out")
    vx_real = np.stack([clean_input(it) for it in val_real]) if val_real else np.zeros((0, 64, 192), np.uint8)
    vt_real = [it.text for it in val_real]
    vs_real = [it.source for it in val_real]
    vx_syn, vt_syn = synthetic_set(fonts, a.synth_val, seed=12345)
    stream = MixedStream(train_real, fonts, seed=a.seed * 7919 + step, real_frac=a.real_frac,
                         weights={f"user:{Path(p).name}": a.extra_weight for p in a.extra})
    loader = DataLoader(_Stream(stream), batch_size=a.batch, num_workers=a.workers,
                        multiprocessing_context="fork" if a.workers > 0 else None,
                        collate_fn=_collate(charset), persistent_workers=a.workers > 0,
                        prefetch_factor=4 if a.workers > 0 else None)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    budget_s = a.minutes * 60

    def progress() -> float:
        p = elapsed / budget_s if budget_s > 0 else 0.0
        return max(p, step / a.steps) if a.steps else p

    def save(path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "elapsed": elapsed, "best": best, "charset": charset,
                    "config": {**config, "height": model.height, "width": model.width},
                    "command": " ".join(["python -m plateread.training.train_ocr"] + sys.argv[1:])},
                   tmp)
        os.replace(tmp, path)

    if a.init and step == 0:  # the starting point, to compare the fine-tune against
        log(f"eval before fine-tuning: real held-out exact {evaluate(model, vx_real, vt_real, charset):.3f}; "
            + " ".join(f"{k} {v:.3f}" for k, v in per_source(model, vx_real, vt_real, vs_real, charset).items()))
    bar = None
    if tty:
        from tqdm import tqdm
        bar = tqdm(total=100, unit="%", bar_format="{l_bar}{bar}| {n:.1f}/{total}% [{elapsed}<{remaining}]")
    model.train()
    t_last, t_ckpt, seen, t_rate = time.time(), time.time(), 0, time.time()
    loss_avg = None
    for x, targets, lengths, _ in loader:
        if progress() >= 1.0:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(progress(), a.lr)
        logp = with_wildcard(model(x.contiguous(memory_format=torch.channels_last)))  # channels_last: ~1.4x on CPU
        frames = torch.full((x.shape[0],), logp.shape[1], dtype=torch.long)
        loss = ctc(logp.permute(1, 0, 2), targets, frames, lengths)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        step += 1
        seen += x.shape[0]
        now = time.time()
        elapsed += step_seconds(now, t_last)
        t_last = now
        loss_avg = loss.item() if loss_avg is None else 0.98 * loss_avg + 0.02 * loss.item()
        if bar is not None:
            bar.n = min(100.0, 100 * progress())
            bar.set_postfix(step=step, loss=f"{loss_avg:.3f}", refresh=False)
            bar.refresh()
        elif step % 50 == 0:
            rate = seen / max(1e-6, now - t_rate)
            log(f"step {step} {100 * progress():.1f}% loss {loss_avg:.3f} "
                f"lr {opt.param_groups[0]['lr']:.2e} {rate:.0f} samples/s")
            seen, t_rate = 0, now
        if step % a.eval_every == 0:
            acc_r = evaluate(model, vx_real, vt_real, charset)
            acc_s = evaluate(model, vx_syn, vt_syn, charset)
            srcs = per_source(model, vx_real, vt_real, vs_real, charset)
            log(f"eval step {step}: real held-out exact {acc_r:.3f} ({len(vt_real)}), "
                f"synthetic exact {acc_s:.3f} ({len(vt_syn)}); "
                + " ".join(f"{k} {v:.3f}" for k, v in srcs.items()))
            if acc_r > best:
                best = acc_r
                save(out / "best.pt")
            t_last = time.time()  # evaluation time is not training time
        if now - t_ckpt > a.ckpt_minutes * 60:
            save(ckpt_path)
            t_ckpt = time.time()
    if bar is not None:
        bar.close()
    acc_r = evaluate(model, vx_real, vt_real, charset)
    acc_s = evaluate(model, vx_syn, vt_syn, charset)
    log(f"final step {step}: real held-out exact {acc_r:.3f}, synthetic exact {acc_s:.3f}")
    save(ckpt_path)
    if acc_r > best:
        best = acc_r
        save(out / "best.pt")
    log(f"saved {ckpt_path} (best held-out {best:.3f} in {out / 'best.pt'})")
    if a.export:
        from .export_ocr import export
        export(ckpt_path, a.export)


if __name__ == "__main__":
    main()
