"""Drawing reads onto images: annotated copies and contact sheets."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from .types import PlateRead

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_GREEN = (60, 200, 60)
_RED = (40, 40, 230)


def _label(canvas: np.ndarray, text: str, x: int, y: int, color: tuple[int, int, int], scale: float) -> None:
    """Text on a filled tag, kept inside the image."""
    thickness = max(1, round(scale * 2))
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thickness)
    h, w = canvas.shape[:2]
    x = int(min(max(0, x), max(0, w - tw - 6)))
    y = int(y - th - base - 6 if y - th - base - 6 >= 0 else y)
    cv2.rectangle(canvas, (x, y), (x + tw + 6, y + th + base + 6), color, -1)
    cv2.putText(canvas, text, (x + 3, y + th + 3), _FONT, scale, (255, 255, 255), thickness, cv2.LINE_AA)


def annotate(image: np.ndarray, reads: Sequence[PlateRead], show_score: bool = True) -> np.ndarray:
    """A copy of ``image`` with each plate boxed and labelled with its text (and score)."""
    canvas = image.copy()
    scale = max(0.5, min(image.shape[:2]) / 700)
    for r in reads:
        b = r.box
        cv2.rectangle(canvas, (b.xmin, b.ymin), (b.xmax, b.ymax), _GREEN, max(2, round(scale * 2)))
        if r.corners:  # the plate's own outline, which the OCR crop was rectified from
            quad = np.array(r.corners, np.float32).round().astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(canvas, [quad], True, (0, 200, 255), max(1, round(scale)), cv2.LINE_AA)
        text = f"{r.plate} {r.score:.2f}" if show_score else r.plate
        _label(canvas, text, b.xmin, b.ymin, _GREEN, scale)
    return canvas


def contact_sheet(
    tiles: Sequence[tuple[np.ndarray, str, str]], columns: int = 4, tile_size: tuple[int, int] = (240, 110)
) -> np.ndarray:
    """Grid of crops, each captioned with two lines (e.g. 'read: X' and 'label: Y')."""
    tw, th = tile_size
    caption_h = 40
    rows = max(1, -(-len(tiles) // columns))
    sheet = np.full((rows * (th + caption_h), columns * tw, 3), 255, np.uint8)
    for i, (crop, line1, line2) in enumerate(tiles):
        r, c = divmod(i, columns)
        y, x = r * (th + caption_h), c * tw
        ch, cw = crop.shape[:2]
        s = min((tw - 4) / max(cw, 1), (th - 4) / max(ch, 1))
        resized = cv2.resize(crop, (max(1, int(cw * s)), max(1, int(ch * s))))
        if resized.ndim == 2:
            resized = cv2.cvtColor(resized, cv2.COLOR_GRAY2BGR)
        rh, rw = resized.shape[:2]
        oy, ox = y + (th - rh) // 2, x + (tw - rw) // 2
        sheet[oy:oy + rh, ox:ox + rw] = resized
        cv2.putText(sheet, line1[:30], (x + 4, y + th + 15), _FONT, 0.45, _RED, 1, cv2.LINE_AA)
        cv2.putText(sheet, line2[:30], (x + 4, y + th + 33), _FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return sheet
