"""Reading the labelled sets (``index.jsonl``) described in ``shared/data/README.md``."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from functools import lru_cache
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


@lru_cache(maxsize=1)
def label_fixes() -> dict[str, dict[str, tuple[str, str, str]]]:
    """Audited corrections of upstream labels: set name -> image -> (upstream, fixed, evidence)."""
    path = Path(__file__).with_name("label_fixes.json")
    fixes = json.loads(path.read_text(encoding="utf-8"))["fixes"]
    return {s: {img: tuple(v) for img, v in rows.items()} for s, rows in fixes.items()}


def _fixed_text(set_name: str, image: str, split: str, text: str) -> str:
    """The audited label of a train/dev plate whose upstream text the image contradicts (see
    label_fixes.json); test labels are never changed, so test figures stay comparable."""
    if split == "test":
        return text
    fix = label_fixes().get(set_name, {}).get(image)
    return fix[1] if fix is not None and fix[0] == text else text


def load_index(set_dir: str | Path, split: str | None = None) -> list[Sample]:
    """Loads a set's index, optionally one split only ('train', 'test', 'dev'); train and dev
    labels carry the audited fixes of ``label_fixes.json``."""
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
                    text=(_fixed_text(set_dir.name, name, row.get("split", ""), normalize_plate(p["text"]))
                          if p.get("text") is not None else None),
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
