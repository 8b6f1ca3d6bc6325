"""A second look at unsure reads: other crops of the same plate, read and fused.

One crop decides a lot: a rectification that clips the first character, a box that takes in
a screw or a dealer frame's letter. When the first reading is unsure, the plate is cut again
with other margins (the rectified quad grown more, the plain box tight and loose) and the
readings are fused the way video fuses frames (``video.fusion``: a vote over candidate texts,
then per character), so a character only one crop got wrong is outvoted. Only reads under the
bound pay for it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .imaging import crop_padded
from .types import Box, Candidate, Detection, Recognition

#: Reads scored below this get a second look (Reader(second_look=...) overrides; None: never).
DEFAULT_BOUND = 0.6


def _inset(box: Box, fx: float, fy: float) -> Box:
    dx, dy = round(box.width * fx), round(box.height * fy)
    return Box(box.xmin + dx, box.ymin + dy, box.xmax - dx, box.ymax - dy)


def alternate_crops(image: np.ndarray, det: Detection) -> list[np.ndarray]:
    """Two other cuts of ``det``'s plate: a looser one and a tighter one. A box that already is
    the whole image (a plate crop) cannot grow: it is cut inward twice instead, which drops a
    frame's letter or a screw at the edges."""
    crops: list[np.ndarray] = []
    h, w = image.shape[:2]
    whole = det.box.xmin <= 0 and det.box.ymin <= 0 and det.box.xmax >= w and det.box.ymax >= h
    if det.corners is not None:
        from .engines.learned.detector import rectify

        crops.append(rectify(image, np.array(det.corners, np.float32), margin=(0.10, 0.18)))
        crops.append(crop_padded(image, det.box, 0.03, 0.06))
    elif whole:
        crops.append(crop_padded(image, _inset(det.box, 0.03, 0.06), 0.0, 0.0))
        crops.append(crop_padded(image, _inset(det.box, 0.07, 0.0), 0.0, 0.0))
    else:
        crops.append(crop_padded(image, det.box, 0.15, 0.2))
        crops.append(crop_padded(image, _inset(det.box, 0.03, 0.0), 0.0, 0.02))
    return [c for c in crops if c.size and min(c.shape[:2]) >= 4]


def fuse_recognitions(recs: Sequence[Recognition], region_decoder=None) -> Recognition:
    """One reading from several of the same plate; the first (the original crop) breaks ties."""
    from .video.fusion import Observation, fuse

    obs = [Observation(r.text, r.score, weight=1.0 + (0.05 if i == 0 else 0.0), candidates=r.candidates
                       or (Candidate(r.text, 1.0),))
           for i, r in enumerate(recs) if r.text]
    if not obs:
        return recs[0]
    f = fuse(obs, region_decoder)
    if not f.text:
        return recs[0]
    first = recs[0]
    char_scores = first.char_scores if f.text == first.text else ()
    return Recognition(f.text, float(f.score), tuple(f.candidates), char_scores,
                       f.region if f.region is not None else first.region,
                       f.region_score if f.region_score is not None else first.region_score)
