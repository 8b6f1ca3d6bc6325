"""Running a Reader over a labelled split and collecting scored outcomes."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import cv2

from ..annotate import contact_sheet
from ..imaging import crop_padded, load_image
from ..progress import progress
from ..reader import Reader
from ..types import Box
from .dataset import load_index
from .metrics import ImageOutcome, score_image


def evaluate(reader: Reader, set_dir: str | Path, split: str | None = "test",
             show_progress: bool | None = None, limit: int | None = None) -> Iterator[ImageOutcome]:
    """Reads every labelled image of the split; yields one scored outcome per image."""
    samples = [s for s in load_index(set_dir, split) if s.plates]
    if limit is not None:
        samples = samples[:limit]
    if not samples:
        raise ValueError(f"no labelled images in {set_dir} for split {split!r}")
    for sample in progress(samples, total=len(samples), desc=Path(set_dir).name, enabled=show_progress):
        result = reader.read_safe(sample.path, name=sample.name)
        yield score_image(sample, result)


def write_error_sheet(outcomes: list[ImageOutcome], path: str | Path, max_tiles: int = 60) -> int:
    """Contact sheet of labelled plates read wrongly: crop, what was read, the label."""
    tiles = []
    for o in outcomes:
        wrong = [p for p in zip(o.sample.plates, o.plates) if p[1].label and not p[1].correct]
        if not wrong:
            continue
        try:
            image = load_image(o.sample.path)
        except Exception:
            continue
        for label, outcome in wrong:
            box = label.box or Box(0, 0, image.shape[1], image.shape[0])
            tiles.append((crop_padded(image, box, 0.25, 0.25), f"read: {outcome.read or '(none)'}",
                          f"label: {outcome.label}"))
            if len(tiles) >= max_tiles:
                break
        if len(tiles) >= max_tiles:
            break
    if tiles:
        cv2.imwrite(str(path), contact_sheet(tiles))
    return len(tiles)
