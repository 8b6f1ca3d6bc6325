"""Reading the labelled sets (``index.jsonl``) described in ``shared/data/README.md``."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..text import normalize_plate
from ..types import Box


@dataclass(frozen=True)
class LabelledPlate:
    text: str | None  # normalised (A–Z0–9); None where unknown
    box: Box | None
    lines: int = 1
    text_raw: str | None = None


@dataclass(frozen=True)
class Sample:
    path: Path  # absolute path of the image (or video)
    name: str   # as written in the index
    split: str
    width: int
    height: int
    plates: tuple[LabelledPlate, ...]
    region: str | None = None


def load_index(set_dir: str | Path, split: str | None = None) -> list[Sample]:
    """Loads a set's index, optionally one split only ('train', 'test', 'dev')."""
    set_dir = Path(set_dir)
    index = set_dir / "index.jsonl"
    if not index.is_file():
        raise FileNotFoundError(f"no index.jsonl in {set_dir}")
    samples = []
    with index.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{index}:{lineno}: bad JSON: {exc}") from None
            if split is not None and row.get("split") != split:
                continue
            name = row.get("image") or row.get("video")
            plates = tuple(
                LabelledPlate(
                    text=normalize_plate(p["text"]) if p.get("text") is not None else None,
                    box=Box.from_xywh(*p["box"]) if p.get("box") is not None else None,
                    lines=int(p.get("lines", 1)),
                    text_raw=p.get("text_raw"),
                )
                for p in row.get("plates", [])
            )
            samples.append(
                Sample(set_dir / name, name, row.get("split", ""), int(row.get("width", 0)),
                       int(row.get("height", 0)), plates, row.get("region"))
            )
    return samples


def iter_labelled_crops(
    set_dir: str | Path, split: str | None = None
) -> Iterator[tuple[Sample, LabelledPlate]]:
    """Every plate with known text in a split; crop sets have box None (the image is the crop)."""
    for sample in load_index(set_dir, split):
        for plate in sample.plates:
            if plate.text:
                yield sample, plate
