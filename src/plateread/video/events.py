"""The record a camera pipeline emits once per vehicle (track), and that the store keeps."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..types import Box, Candidate


@dataclass(frozen=True, eq=False)
class VehicleEvent:
    """One vehicle's plate, fused over every frame its track was seen in.

    Times are timezone-aware UTC. ``best_crop`` is the plate crop of the best frame (BGR) and
    ``frame`` that whole frame with ``box`` in its pixels; both may be None when not kept.
    """

    event_id: str                 # uuid4 hex, unique per event
    camera: str                   # camera id given by the user (e.g. "gate-1")
    track_id: int
    plate: str                    # fused text, A–Z0–9
    score: float                  # 0–1
    first_seen: dt.datetime
    last_seen: dt.datetime
    frames: int                   # frames the plate was detected in
    box: Box                      # in the best frame
    candidates: tuple[Candidate, ...] = ()
    region: str | None = None
    region_score: float | None = None
    source: str = ""              # file path, URL or device the frames came from
    best_crop: np.ndarray | None = field(default=None, repr=False)
    frame: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VehicleEvent":
        """The event back from ``to_dict()`` (without its images)."""
        return cls(
            event_id=d["event_id"], camera=d["camera"], track_id=int(d["track_id"]), plate=d["plate"],
            score=float(d["score"]), first_seen=dt.datetime.fromisoformat(d["first_seen"]),
            last_seen=dt.datetime.fromisoformat(d["last_seen"]), frames=int(d["frames"]), box=Box(**d["box"]),
            candidates=tuple(Candidate(c["plate"], c["score"]) for c in d.get("candidates", ())),
            region=d.get("region"), region_score=d.get("region_score"), source=d.get("source", ""))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, without the images (the store saves those as files)."""
        return {
            "event_id": self.event_id,
            "camera": self.camera,
            "track_id": self.track_id,
            "plate": self.plate,
            "score": round(float(self.score), 4),
            "candidates": [c.to_dict() for c in self.candidates],
            "region": self.region,
            "region_score": None if self.region_score is None else round(float(self.region_score), 4),
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "frames": self.frames,
            "box": self.box.to_dict(),
            "source": self.source,
        }
