"""Where pipeline stages drop their intermediate images for inspection."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import cv2
import numpy as np


def _check_gui() -> None:
    """Fails early and clearly where windows cannot be shown (no display, headless OpenCV)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise RuntimeError("--show needs a display (DISPLAY is not set); use --debug DIR to write the stages instead")
    try:
        cv2.namedWindow("plateread")
        cv2.destroyWindow("plateread")
    except cv2.error:
        raise RuntimeError(
            "--show needs OpenCV with GUI support (pip install opencv-python rather than "
            "opencv-python-headless); use --debug DIR to write the stages instead"
        ) from None


class DebugSink:
    """Collects named stage images; writes them to a folder and/or shows them in windows.

    Stages are numbered in the order they arrive so a folder listing reads as the pipeline.
    """

    def __init__(self, folder: str | Path | None = None, show: bool = False, prefix: str = "") -> None:
        self.folder = Path(folder) if folder is not None else None
        self.show = show
        self.prefix = prefix
        self.stages: dict[str, np.ndarray] = {}
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
        if show:
            _check_gui()

    def child(self, prefix: str) -> "DebugSink":
        """A sink writing into the same folder with a per-image name prefix."""
        sink = DebugSink(self.folder, self.show, prefix)
        return sink

    def add(self, name: str, image: np.ndarray) -> None:
        index = len(self.stages) + 1
        key = f"{index:02d}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}"
        self.stages[key] = image
        if self.folder is not None:
            stem = f"{self.prefix}_{key}" if self.prefix else key
            cv2.imwrite(str(self.folder / f"{stem}.png"), image)
        if self.show:
            cv2.imshow(f"{self.prefix} {name}".strip(), image)

    def wait(self) -> None:
        """Blocks on a key press when windows are shown."""
        if self.show and self.stages:
            cv2.waitKey(0)
            cv2.destroyAllWindows()
