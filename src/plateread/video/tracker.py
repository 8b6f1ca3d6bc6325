"""ByteTrack-style association of plate boxes across frames (geometry only).

Written here rather than taken from PyPI: the maintained ByteTrack packages pull in heavy stacks
(``trackers`` → supervision, matplotlib, PyAV and the non-headless opencv-python, which clashes
with opencv-python-headless) and the light ones are unmaintained and do not build. Plates also
need two things the stock trackers lack: a timeout in *stream seconds* (live sources drop
frames, so frame counts do not measure time) and tolerance for small, fast boxes.

Per frame: (1) tracks idle longer than ``timeout`` end; (2) every track predicts its box with a
constant-velocity alpha-beta filter (a steady-state Kalman filter: no covariance bookkeeping,
the gains fix how much a measurement corrects position and velocity); (3) high-score
detections are matched to all live tracks, then low-score detections to the tracks still
unmatched (ByteTrack's second stage keeps a track alive through a weak detection instead of
losing it); (4) unmatched high-score detections start tracks. Matching is an optimal assignment
(scipy's ``linear_sum_assignment``) on cost = 1 − buffered IoU − text bonus. The buffered IoU
enlarges both boxes around their centres before the overlap (C-BIoU): a plate moving more than
its own width per frame still overlaps its prediction, most of all for a new track whose speed
is not known yet.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..text import levenshtein
from ..types import Box


#: the shortest time over which a velocity is measured (a 50 fps frame interval)
MIN_DT = 0.02


@dataclass
class Track:
    id: int
    state: np.ndarray           # cx, cy, w, h (pixels)
    velocity: np.ndarray        # d(state)/dt, pixels per second
    first_time: float
    last_time: float
    hits: int = 1
    text: str = ""              # current best text, an optional association cue
    data: Any = None            # the caller's per-track payload

    def predict(self, t: float) -> np.ndarray:
        return self.state + self.velocity * max(0.0, t - self.last_time)

    def box(self, t: float | None = None) -> Box:
        cx, cy, w, h = self.predict(t) if t is not None else self.state
        return Box(round(cx - w / 2), round(cy - h / 2), round(cx + w / 2), round(cy + h / 2))


def _xywh(b: Box) -> np.ndarray:
    return np.array([(b.xmin + b.xmax) / 2, (b.ymin + b.ymax) / 2, b.width, b.height], float)


def buffered_iou(a: np.ndarray, b: np.ndarray, buffer: float) -> np.ndarray:
    """IoU of [N,4] × [M,4] cx,cy,w,h boxes after growing each side by ``buffer`` × its size."""
    sa, sb = a[:, 2:] * (1 + 2 * buffer), b[:, 2:] * (1 + 2 * buffer)
    lo = np.maximum(a[:, None, :2] - sa[:, None] / 2, b[None, :, :2] - sb[None] / 2)
    hi = np.minimum(a[:, None, :2] + sa[:, None] / 2, b[None, :, :2] + sb[None] / 2)
    inter = np.clip(hi - lo, 0, None).prod(-1)
    union = sa.prod(-1)[:, None] + sb.prod(-1)[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def text_similarity(a: str, b: str) -> float:
    """1 − normalised Levenshtein distance (0 when either is empty)."""
    if not a or not b:
        return 0.0
    return 1.0 - levenshtein(a, b) / max(len(a), len(b))


class ByteTracker:
    """Associates boxes frame by frame; see the module docstring for the rule.

    ``high``: score of a first-stage detection (and of one that may start a track); ``low``:
    below it detections are ignored. ``min_iou``: buffered IoU a match needs. ``timeout``:
    seconds without a detection after which a track ends. ``alpha`` / ``beta``: position and
    velocity gains. ``text_weight``: cost bonus for a detection whose text matches the track's.
    """

    def __init__(self, *, high: float = 0.5, low: float = 0.1, min_iou: float = 0.1,
                 timeout: float = 1.0, buffer: float = 0.3, new_buffer: float = 1.0,
                 alpha: float = 0.7, beta: float = 0.3, text_weight: float = 0.15) -> None:
        self.high, self.low, self.min_iou, self.timeout = high, low, min_iou, timeout
        self.buffer, self.new_buffer, self.alpha, self.beta = buffer, new_buffer, alpha, beta
        self.text_weight = text_weight
        self.tracks: list[Track] = []
        self._next_id = 1

    def expire(self, t: float) -> list[Track]:
        """Removes and returns the tracks not seen for more than ``timeout`` seconds at ``t``."""
        ended = [tr for tr in self.tracks if t - tr.last_time > self.timeout]
        if ended:
            self.tracks = [tr for tr in self.tracks if t - tr.last_time <= self.timeout]
        return ended

    def flush(self) -> list[Track]:
        ended, self.tracks = self.tracks, []
        return ended

    def _match(self, tracks: list[Track], dets: list[int], boxes: np.ndarray,
               texts: Sequence[str], t: float) -> list[tuple[Track, int]]:
        if not tracks or not dets:
            return []
        d = boxes[dets]
        # against the prediction or where the track was last seen, whichever overlaps more: live
        # frame times are decode times, and a backlog decoded at once (after a stall) makes a
        # velocity from frames a millisecond apart that throws the prediction off
        rows = []
        for tr in tracks:
            buf = self.new_buffer if tr.hits < 2 else self.buffer
            rows.append(np.maximum(buffered_iou(tr.predict(t)[None], d, buf),
                                   buffered_iou(tr.state[None], d, buf)))
        iou = np.vstack(rows)
        cost = 1.0 - iou
        if self.text_weight:
            for i, tr in enumerate(tracks):
                for j, k in enumerate(dets):
                    cost[i, j] -= self.text_weight * text_similarity(tr.text, texts[k])
        rows, cols = linear_sum_assignment(cost)
        return [(tracks[r], dets[c]) for r, c in zip(rows, cols) if iou[r, c] >= self.min_iou]

    def _correct(self, tr: Track, z: np.ndarray, t: float) -> None:
        dt = t - tr.last_time
        pred = tr.predict(t)
        resid = z - pred
        # velocities over at least MIN_DT: two frames decoded back to back are not 1 ms apart
        # in the world, and a displacement over 1 ms is a speed a hundred times too high
        dv = max(dt, MIN_DT)
        if tr.hits == 1:  # second sighting: the velocity is the displacement
            tr.velocity = (z - tr.state) / dv
            tr.state = z
        else:
            tr.state = pred + self.alpha * resid
            tr.velocity = tr.velocity + self.beta * resid / dv
        tr.last_time = t
        tr.hits += 1

    def update(self, boxes: Sequence[Box], scores: Sequence[float], t: float,
               texts: Sequence[str] | None = None) -> tuple[list[Track | None], list[Track]]:
        """Associates one frame's detections. Returns (the track of each detection or None for
        an ignored one, the tracks that ended at this frame's time)."""
        ended = self.expire(t)
        texts = list(texts) if texts is not None else [""] * len(boxes)
        xywh = np.stack([_xywh(b) for b in boxes]) if len(boxes) else np.zeros((0, 4))
        high = [i for i, s in enumerate(scores) if s >= self.high]
        low = [i for i, s in enumerate(scores) if self.low <= s < self.high]
        out: list[Track | None] = [None] * len(boxes)
        first = self._match(self.tracks, high, xywh, texts, t)
        taken = {id(tr) for tr, _ in first}
        rest = [tr for tr in self.tracks if id(tr) not in taken]
        second = self._match(rest, low, xywh, texts, t)
        for tr, k in first + second:
            self._correct(tr, xywh[k], t)
            out[k] = tr
        matched_high = {k for _, k in first}
        for k in high:
            if k not in matched_high:
                tr = Track(self._next_id, xywh[k].copy(), np.zeros(4), t, t)
                self._next_id += 1
                self.tracks.append(tr)
                out[k] = tr
        return out, ended
