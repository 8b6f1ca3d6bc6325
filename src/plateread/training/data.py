"""Real training crops and the synthetic/real mixture fed to the OCR trainer.

Only ``train`` splits are read. A tenth of the real plates is held out for validation by a hash
of the plate text, so the many repeats of one plate (br-crops) never straddle the split.
"""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ..evaluation.dataset import iter_labelled_crops
from ..imaging import is_image_file
from ..text import normalize_plate
from .augment import real_sample, synth_sample, to_input
from .render import PlateRenderer

# set -> (sampling weight within the real part, kind); two-line in-crops are upweighted.
# "masked": crops whose labels hold "?" for characters greyed out upstream (uc3m-lp-crops); the
# trainer's CTC loss takes "?" as a wildcard, so the model never learns to emit it.
REAL_SETS: dict[str, tuple[float, str]] = {
    "openalpr-us-crops": (0.22, "crops"), "br-crops": (0.14, "crops"), "cn-crops": (0.10, "crops"),
    "in-crops": (0.10, "crops"), "openalpr-us": (0.12, "photos"), "openalpr-br": (0.10, "photos"),
    "uc3m-lp-crops": (0.22, "masked"),
}
WILDCARD = "?"


def matches(pred: str, label: str) -> bool:
    """Exact match, "?" in the label matching any one character (the visible-positions rule)."""
    return len(pred) == len(label) and all(t == WILDCARD or p == t for p, t in zip(pred, label))


@dataclass
class RealItem:
    image: np.ndarray  # BGR; the crop, or a region of a photo around the box
    box: tuple[float, float, float, float] | None  # plate box inside image (photos only)
    text: str
    source: str


def is_holdout(text: str, percent: int = 10) -> bool:
    return int(hashlib.md5(text.encode(), usedforsecurity=False).hexdigest(), 16) % 100 < percent


def _masked_items(set_dir: Path, charset: str, name: str) -> list[RealItem]:
    """Crops whose ``text`` keeps "?" at greyed-out characters (index read raw: the shared
    loader normalises "?" away)."""
    items = []
    with (set_dir / "index.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if row.get("split") != "train":
                continue
            for plate in row.get("plates", []):
                text = (plate.get("text") or "").upper()
                if not text or any(c not in charset and c != WILDCARD for c in text):
                    continue
                img = cv2.imread(str(set_dir / row["image"]), cv2.IMREAD_COLOR)
                if img is not None:
                    items.append(RealItem(img, None, text, name))
    return items


def load_user_set(path: str | Path, charset: str) -> list[RealItem]:
    """A user's labelled plates: a set folder with ``index.jsonl`` (crops, or photos with boxes,
    as in shared/data; every split but ``test``), or a folder of crops named by their text
    (``AB123CD.jpg``, ``AB123CD_2.png``: the part before the first "_")."""
    root = Path(path)
    name = f"user:{root.name}"
    items: list[RealItem] = []
    if (root / "index.jsonl").is_file():
        for split in ("train", "dev", ""):
            for sample, plate in iter_labelled_crops(root, split):
                text = plate.text or ""
                if not text or any(c not in charset for c in text):
                    continue
                img = cv2.imread(str(sample.path), cv2.IMREAD_COLOR)
                if img is None:
                    continue
                items.append(_around_box(img, plate.box, text, name) if plate.box is not None
                             else RealItem(img, None, text, name))
        return items
    for f in sorted(root.rglob("*")):
        if not f.is_file() or not is_image_file(f):
            continue
        text = normalize_plate(f.stem.split("_")[0])
        if not text or any(c not in charset for c in text):
            continue
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is not None:
            items.append(RealItem(img, None, text, name))
    if not items:
        raise ValueError(f"{root}: no labelled plates (an index.jsonl with texts, or crops named by text)")
    return items


def _around_box(img: np.ndarray, b, text: str, name: str) -> RealItem:
    mx, my = int(b.width * 0.6) + 4, int(b.height * 0.6) + 4
    x0, y0 = max(0, int(b.xmin) - mx), max(0, int(b.ymin) - my)
    x1, y1 = min(img.shape[1], int(b.xmax) + mx), min(img.shape[0], int(b.ymax) + my)
    return RealItem(img[y0:y1, x0:x1].copy(), (b.xmin - x0, b.ymin - y0, b.xmax - x0, b.ymax - y0), text, name)


def load_real(data_root: str | Path, charset: str, sets: list[str] | None = None) -> list[RealItem]:
    """Every labelled real train plate, photos reduced to a margin around the box."""
    items: list[RealItem] = []
    root = Path(data_root)
    for name, (_, kind) in REAL_SETS.items():
        if sets is not None and name not in sets:
            continue
        if not (root / name / "index.jsonl").is_file():
            print(f"warning: {root / name} missing, skipped")
            continue
        if kind == "masked":
            items += _masked_items(root / name, charset, name)
            continue
        cache: dict[Path, np.ndarray | None] = {}
        for sample, plate in iter_labelled_crops(root / name, "train"):
            text = plate.text or ""
            if not text or any(c not in charset for c in text):
                continue
            if sample.path not in cache:
                cache.clear()
                cache[sample.path] = cv2.imread(str(sample.path), cv2.IMREAD_COLOR)
            img = cache[sample.path]
            if img is None:
                continue
            if kind == "crops":
                if name == "cn-crops":  # the Chinese province character is cut away
                    img = img[:, int(round(img.shape[1] / 7)):]
                items.append(RealItem(img.copy(), None, text, name))
            elif plate.box is not None:
                items.append(_around_box(img, plate.box, text, name))
    return items


def split_real(items: list[RealItem]) -> tuple[list[RealItem], list[RealItem]]:
    train = [it for it in items if not is_holdout(it.text)]
    val = [it for it in items if is_holdout(it.text)]
    return train, val


def clean_input(it: RealItem) -> np.ndarray:
    """Validation input: the labelled crop/box as is, no augmentation."""
    if it.box is None:
        return to_input(it.image)
    x0, y0, x1, y1 = (int(round(v)) for v in it.box)
    return to_input(it.image[y0:y1, x0:x1])


def synthetic_set(fonts: str | Path, n: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """A fixed, seeded set of augmented synthetic plates (validation)."""
    ren, rng = PlateRenderer(fonts, seed=seed), random.Random(seed)
    imgs, texts = [], []
    for _ in range(n):
        r = ren.render()
        imgs.append(synth_sample(rng, r.image))
        texts.append(r.text)
    return np.stack(imgs), texts


class MixedStream:
    """Endless stream of (input uint8 [H,W], label): synthetic plus ``real_frac`` real crops.

    A plain iterable so it runs in a DataLoader worker (rendering off the training process)."""

    def __init__(self, real: list[RealItem], fonts: str | Path, seed: int,
                 real_frac: float = 0.45, weights: dict[str, float] | None = None) -> None:
        self.real, self.fonts, self.seed, self.real_frac = real, fonts, seed, real_frac
        by_src: dict[str, list[RealItem]] = {}
        for it in real:
            by_src.setdefault(it.source, []).append(it)
        self.by_src = by_src
        w = {k: v[0] for k, v in REAL_SETS.items()} | (weights or {})
        self.src_w = [w.get(s, 0.25) for s in by_src]

    def __iter__(self) -> Iterator[tuple[np.ndarray, str]]:
        try:
            import torch.utils.data as tud
            info = tud.get_worker_info()
            wid = info.id if info is not None else 0
        except ImportError:
            wid = 0
        cv2.setNumThreads(1)
        rng = random.Random(self.seed * 1000 + wid)
        ren = PlateRenderer(self.fonts, seed=self.seed * 1000 + wid + 7)
        srcs = list(self.by_src)
        while True:
            if srcs and rng.random() < self.real_frac:
                src = rng.choices(srcs, weights=self.src_w)[0]
                it = rng.choice(self.by_src[src])
                yield real_sample(rng, it.image, it.box), it.text
            else:
                r = ren.render()
                yield synth_sample(rng, r.image), r.text
