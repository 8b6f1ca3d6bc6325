"""The two seams of the pipeline: something that finds plates and something that reads them."""
from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from .debug import DebugSink
from .types import Detection, Recognition


@runtime_checkable
class Detector(Protocol):
    """Finds plates in a BGR image, best first."""

    name: str

    def detect(self, image: np.ndarray, debug: DebugSink | None = None) -> list[Detection]: ...


@runtime_checkable
class Recognizer(Protocol):
    """Reads a batch of BGR plate crops; returns one Recognition per crop, in order."""

    name: str

    def recognize(
        self, crops: Sequence[np.ndarray], debug: DebugSink | None = None
    ) -> list[Recognition]: ...
