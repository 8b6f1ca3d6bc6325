"""Real training crops and the synthetic/real mixture fed to the OCR trainer.

Only ``train`` splits are read. A tenth of the real plates is held out for validation by a hash
of the plate text, so the many repeats of one plate (br-crops) never straddle the split.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ..evaluation.dataset import iter_labelled_crops
from .augment import real_sample, synth_sample, to_input
from .render import PlateRenderer

# set -> (sampling weight within the real part, kind); two-line in-crops are upweighted
REAL_SETS: dict[str, tuple[float, str]] = {
    "openalpr-us-crops": (0.28, "crops"), "br-crops": (0.18, "crops"), "cn-crops": (0.14, "crops"),
    "in-crops": (0.12, "crops"), "openalpr-us": (0.16, "photos"), "openalpr-br": (0.12, "photos"),
}


@dataclass
class RealItem:
    image: np.ndarray  # BGR; the crop, or a region of a photo around the box
    box: tuple[float, float, float, float] | None  # plate box inside image (photos only)
    text: str
    source: str


def is_holdout(text: str, percent: int = 10) -> bool:
    return int(hashlib.md5(text.encode()).hexdigest(), 16) % 100 < percent


def load_real(data_root: str | Path, charset: str) -> list[RealItem]:
    """Every labelled real train plate, photos reduced to a margin around the box."""
    items: list[RealItem] = []
    root = Path(data_root)
    for name, (_, kind) in REAL_SETS.items():
        if not (root / name / "index.jsonl").is_file():
            print(f"warning: {root / name} missing, skipped")
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
                b = plate.box
                mx, my = int(b.width * 0.6) + 4, int(b.height * 0.6) + 4
                x0, y0 = max(0, b.xmin - mx), max(0, b.ymin - my)
                x1, y1 = min(img.shape[1], b.xmax + mx), min(img.shape[0], b.ymax + my)
                region = img[y0:y1, x0:x1].copy()
                items.append(RealItem(region, (b.xmin - x0, b.ymin - y0, b.xmax - x0,
                                               b.ymax - y0), text, name))
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
                 real_frac: float = 0.45) -> None:
        self.real, self.fonts, self.seed, self.real_frac = real, fonts, seed, real_frac
        by_src: dict[str, list[RealItem]] = {}
        for it in real:
            by_src.setdefault(it.source, []).append(it)
        self.by_src = by_src
        self.src_w = [REAL_SETS[s][0] for s in by_src]

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
