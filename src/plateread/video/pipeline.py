"""From frames to vehicle events: detect + read each frame, track, fuse, emit once per track."""
from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence, TextIO

import cv2
import numpy as np

from ..annotate import _label
from ..types import Box, Detection, Recognition
from .events import VehicleEvent
from .fusion import CharDist, Observation, ctc_char_dists, fuse
from .checkpoint import TrackCheckpoint
from .sources import Frame, VideoSource, default_camera_id, redact
from .tracker import ByteTracker, Track
from ..text import levenshtein

log = logging.getLogger("plateread.video")

Timestamp = float | dt.datetime


def _seconds(t: Timestamp) -> float:
    return t.timestamp() if isinstance(t, dt.datetime) else float(t)


def _utc(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc)


def _conf(score: float) -> float:
    """The read score as a vote factor, floored: a recognizer that reports no confidence
    (Tesseract gives 0) must still vote, and a confident read counts up to 10× a blind one."""
    return 0.1 + 0.9 * min(1.0, max(0.0, float(score)))


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian at a fixed 32 px height, so big and small crops compare."""
    g = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    if g.size == 0:
        return 0.0
    g = cv2.resize(g, (max(1, round(g.shape[1] * 32 / g.shape[0])), 32))
    return float(cv2.Laplacian(g, cv2.CV_32F).var())


@dataclass
class _Read:
    time: float
    box: Box
    det_score: float
    rec: Recognition
    dists: tuple[CharDist, ...] | None
    height: int
    sharp: float


@dataclass
class _PlateTrack:
    """What a geometric track accumulates: its reads and the best frame so far. The event id is
    fixed when the track starts, so a checkpointed track and its final event are one record."""

    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    recovered: VehicleEvent | None = None   # the same vehicle as checkpointed before a restart
    reads: list[_Read] = field(default_factory=list)
    votes: dict[str, float] = field(default_factory=dict)  # running text vote, for display
    best_q: float = -1.0
    best_box: Box | None = None
    best_crop: np.ndarray | None = None
    best_frame: np.ndarray | None = None

    @property
    def text(self) -> str:
        return max(self.votes, key=self.votes.__getitem__) if self.votes else ""


class PlateTracker:
    """Feeds frames through a reader's detector + recognizer and returns ended tracks as events.

    Usable frame by frame from a service: ``update(frame, timestamp)`` returns the events of
    tracks that ended by that time, ``expire(now)`` closes tracks while no frames come, and
    ``flush()`` ends everything (shutdown). Timestamps are epoch seconds or aware datetimes.
    A track becomes an event only with ``min_frames`` detections and a fused score of at least
    ``min_score``; ``keep_images`` keeps the best crop and frame in the event. ``zone`` (a polygon
    in frame pixels) keeps only detections whose box centre lies inside it, and ``min_plate``
    (width, height in pixels) drops smaller boxes, both before the OCR runs (a camera that sees a
    road beyond its gate should not read, or alert on, the traffic out there).
    """

    def __init__(self, reader: Any = None, *, detector: Any = None, recognizer: Any = None,
                 camera: str = "camera", source: str = "", track_timeout: float = 1.0,
                 min_frames: int = 2, min_score: float = 0.1, keep_images: bool = True,
                 region_decoder: Any = None, zone: Sequence[tuple[float, float]] | None = None,
                 min_plate: tuple[int, int] = (0, 0), **tracker_options: Any) -> None:
        self.detector = detector if detector is not None else getattr(reader, "detector", None)
        self.recognizer = recognizer if recognizer is not None else getattr(reader, "recognizer", None)
        self.camera, self.source = camera, source
        self.min_frames, self.min_score, self.keep_images = min_frames, min_score, keep_images
        self.region_decoder = region_decoder if region_decoder is not None else \
            getattr(self.recognizer, "region_decoder", None)
        self.tracker = ByteTracker(timeout=track_timeout, **tracker_options)
        if zone is not None and len(zone) < 3:
            raise ValueError("a detection zone needs at least 3 points")
        self.zone = None if zone is None else np.asarray(zone, np.float32).reshape(-1, 1, 2)
        self.min_plate = (int(min_plate[0]), int(min_plate[1]))
        self.events = 0
        self.dropped_tracks = 0
        self.filtered = 0               # detections outside the zone or below the minimum size
        self.visible: list[Track] = []  # tracks matched in the last frame (for drawing)
        self._size: tuple[int, int] | None = None   # (h, w) of the last frame observed
        self._recovered: dict[str, tuple[VehicleEvent, float]] = {}   # event id → (event, deadline)

    @property
    def open_tracks(self) -> int:
        return len(self.tracker.tracks)

    def _recognize(self, crops: list[np.ndarray]) -> list[tuple[Recognition, tuple | None]]:
        rec = self.recognizer
        if hasattr(rec, "recognize_probs") and hasattr(rec, "decode"):
            fps = rec.recognize_probs(crops)
            return [(rec.decode(fp), ctc_char_dists(fp.probs, fp.charset, fp.blank)) for fp in fps]
        return [(r, None) for r in rec.recognize(crops)]

    def update(self, frame: np.ndarray, timestamp: Timestamp) -> list[VehicleEvent]:
        """Detects and reads ``frame`` and associates it; returns the events ended by now."""
        t = _seconds(timestamp)
        ended = self.expire(t)  # even if the engine fails below, stale tracks end on time
        detections = self.keep(self.detector.detect(frame))
        reads = self._recognize([d.crop for d in detections]) if detections else []
        return ended + self.observe(frame, t, detections, reads)

    def keep(self, detections: Sequence[Detection]) -> list[Detection]:
        """The detections inside the zone and at least ``min_plate`` in size."""
        min_w, min_h = self.min_plate
        out = [d for d in detections if d.box.width >= min_w and d.box.height >= min_h and (
            self.zone is None or cv2.pointPolygonTest(
                self.zone, ((d.box.xmin + d.box.xmax) / 2, (d.box.ymin + d.box.ymax) / 2), False) >= 0)]
        self.filtered += len(detections) - len(out)
        return out

    def observe(self, frame: np.ndarray | None, timestamp: Timestamp,
                detections: Sequence[Detection],
                reads: Sequence[tuple[Recognition, tuple | None]]) -> list[VehicleEvent]:
        """Associates detections and their reads (Recognition, per-position char dists or None)
        made by the caller's own engine."""
        t = _seconds(timestamp)
        resized: list[Track] = []
        if frame is not None:
            if self._size is not None and frame.shape[:2] != self._size:
                # A new frame size is a new coordinate system (a camera back at another
                # resolution): a box before it and one after it are not comparable, so the open
                # tracks end here rather than take up whatever is now at their old pixels.
                resized = self.tracker.flush()
            self._size = frame.shape[:2]
        tracks, ended = self.tracker.update([d.box for d in detections],
                                            [d.score for d in detections], t,
                                            [r.text for r, _ in reads])
        ended = resized + ended
        self.visible = []
        for det, (rec, dists), tr in zip(detections, reads, tracks):
            if tr is None:
                continue
            self.visible.append(tr)
            pt: _PlateTrack = tr.data if tr.data is not None else _PlateTrack()
            tr.data = pt
            sharp = sharpness(det.crop)
            r = _Read(t, det.box, float(det.score), rec, dists, det.box.height, sharp)
            pt.reads.append(r)
            if rec.text:
                pt.votes[rec.text] = pt.votes.get(rec.text, 0.0) + det.score * rec.score
                tr.text = pt.text
                self._adopt(tr, pt)
            q = det.score * _conf(rec.score) * np.sqrt(max(1, det.box.height) * max(sharp, 1e-6)) \
                if rec.text else -0.5
            if q > pt.best_q:
                pt.best_q, pt.best_box = q, det.box
                if self.keep_images:
                    pt.best_crop = det.crop.copy()
                    pt.best_frame = frame.copy() if frame is not None else None
        return self._finish(ended) + self._release(t)

    def expire(self, timestamp: Timestamp) -> list[VehicleEvent]:
        t = _seconds(timestamp)
        return self._finish(self.tracker.expire(t)) + self._release(t)

    def flush(self) -> list[VehicleEvent]:
        """Ends every open track (shutdown): nothing seen is lost."""
        self.visible = []
        return self._finish(self.tracker.flush()) + self._release(None)

    # ---- checkpoints: open tracks survive a killed process ------------------------------------

    def provisional(self) -> list[VehicleEvent]:
        """The event each open track would make if it ended now (without images): what a
        checkpoint keeps, so that a SIGKILL loses only what the next start cannot see."""
        return [ev for tr in self.tracker.tracks if (ev := self._event(tr, images=False)) is not None]

    def recover(self, events: Sequence[VehicleEvent], now: Timestamp, grace: float = 2.0) -> None:
        """Takes back a checkpoint's events after a restart. A vehicle still in view within the
        track timeout + ``grace`` seconds continues its recovered event (same id, first sighting
        and frames added); any other is emitted as it was checkpointed."""
        deadline = _seconds(now) + self.tracker.timeout + grace
        for ev in events:
            self._recovered[ev.event_id] = (ev, deadline)

    def _adopt(self, tr: Track, pt: _PlateTrack) -> None:
        if pt.recovered is not None or not self._recovered or not pt.text:
            return
        for eid, (ev, _) in self._recovered.items():
            if levenshtein(ev.plate, pt.text, 1) <= (1 if len(ev.plate) >= 5 else 0):
                pt.event_id, pt.recovered = eid, ev
                del self._recovered[eid]
                return

    def _release(self, t: float | None) -> list[VehicleEvent]:
        """Recovered events whose vehicle did not come back by their deadline (all at shutdown)."""
        due = [eid for eid, (_, deadline) in self._recovered.items() if t is None or t > deadline]
        out = [self._recovered.pop(eid)[0] for eid in due]
        self.events += len(out)
        return out

    def _finish(self, tracks: list[Track]) -> list[VehicleEvent]:
        out = []
        for tr in tracks:
            ev = self._event(tr)
            if ev is None and tr.data is not None and tr.data.recovered is not None:
                ev = tr.data.recovered    # its few frames since the restart add nothing, but it was a vehicle
            if ev is None:
                self.dropped_tracks += 1
            else:
                self.events += 1
                out.append(ev)
        return out

    def _event(self, tr: Track, images: bool = True) -> VehicleEvent | None:
        pt: _PlateTrack | None = tr.data
        if pt is None or len(pt.reads) < self.min_frames:
            return None
        max_h = max(r.height for r in pt.reads) or 1
        max_s = max(r.sharp for r in pt.reads) or 1.0
        obs = [Observation(r.rec.text, r.rec.score,
                           r.det_score * _conf(r.rec.score)
                           * float(np.sqrt(r.height / max_h * r.sharp / max(max_s, 1e-6))),
                           r.rec.candidates, r.dists) for r in pt.reads if r.rec.text]
        fused = fuse(obs, self.region_decoder)
        if not fused.text or fused.score < self.min_score:
            return None
        first, frames = _utc(pt.reads[0].time), len(pt.reads)
        if pt.recovered is not None:   # seen before a restart as well
            first, frames = min(first, pt.recovered.first_seen), frames + pt.recovered.frames
        return VehicleEvent(
            event_id=pt.event_id, camera=self.camera, track_id=tr.id, plate=fused.text,
            score=fused.score, first_seen=first, last_seen=_utc(pt.reads[-1].time),
            frames=frames, box=pt.best_box or pt.reads[-1].box, candidates=fused.candidates,
            region=fused.region, region_score=fused.region_score, source=self.source,
            best_crop=pt.best_crop if images else None, frame=pt.best_frame if images else None)

    def draw(self, frame: np.ndarray) -> np.ndarray:
        """A copy of ``frame`` with the tracks seen in it: box, track id, current best text."""
        canvas = frame.copy()
        scale = max(0.5, min(frame.shape[:2]) / 700)
        for tr in self.visible:
            b = tr.box()
            color = (60, 200, 60) if tr.text else (0, 200, 255)
            cv2.rectangle(canvas, (b.xmin, b.ymin), (b.xmax, b.ymax), color, max(2, round(scale * 2)))
            _label(canvas, f"#{tr.id} {tr.text}".strip(), b.xmin, b.ymin, color, scale)
        return canvas


class StatusLine:
    """One self-overwriting line on a terminal; silent when the stream is not a terminal."""

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None,
                 every: float = 0.5) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.every, self._last, self._shown = every, 0.0, False

    def update(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if self.enabled and (force or now - self._last >= self.every):
            self._last, self._shown = now, True
            self.stream.write("\r\033[K" + text)
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\n")
            self.stream.flush()


@dataclass
class WatchStats:
    frames: int = 0
    events: int = 0
    engine_errors: int = 0
    skipped: int = 0                # frames left out by the frame-rate cap
    started: float = field(default_factory=time.monotonic)
    #: time.monotonic() when the last frame came from the source: a supervisor's heartbeat
    last_frame: float = field(default_factory=time.monotonic)

    def fps(self) -> float:
        return self.frames / max(1e-6, time.monotonic() - self.started)


class Watcher:
    """A whole camera pipeline: source thread → PlateTracker → events (iterate it).

    ``stop`` (a threading.Event) ends it gracefully: decoding stops, buffered frames are
    processed, every open track is flushed as an event, the annotated video is closed.
    ``max_fps`` processes at most that many frames per second of stream time (the others are
    counted as skipped); ``realtime`` plays a file or folder at its frame rate, like a camera.
    """

    def __init__(self, source: str | int | os.PathLike, reader: Any, *, camera: str | None = None,
                 track_timeout: float = 1.0, min_frames: int = 2, min_score: float = 0.1,
                 fps: float | None = None, start_time: Timestamp | None = None, live: bool | None = None,
                 max_reconnects: int | None = None, backoff: tuple[float, float] = (0.5, 10.0),
                 timeout: float = 5.0, queue_size: int = 8, annotate: str | None = None,
                 status: StatusLine | None = None, stop: threading.Event | None = None,
                 keep_images: bool = True, max_fps: float | None = None, realtime: bool = False,
                 live_buffer: int = 1, checkpoint: str | os.PathLike | None = None, checkpoint_s: float = 1.0,
                 **tracker_options: Any) -> None:
        # Files default to 'now' + position, so their events sort and expire (retention) like live ones.
        start = time.time() if start_time is None else _seconds(start_time)
        self.source = VideoSource(source, fps=fps, start_time=start, live=live,
                                  queue_size=queue_size, max_reconnects=max_reconnects,
                                  backoff=backoff, timeout=timeout, realtime=realtime,
                                  live_buffer=live_buffer)
        if max_fps is not None and max_fps <= 0:
            raise ValueError("max_fps must be positive")
        self.min_interval = 1.0 / max_fps if max_fps else 0.0
        self._last_t = -float("inf")
        self.tracker = PlateTracker(reader, camera=camera or default_camera_id(source),
                                    source=redact(source), track_timeout=track_timeout,
                                    min_frames=min_frames, min_score=min_score,
                                    keep_images=keep_images, **tracker_options)
        self.annotate_path, self.status = annotate, status
        self.checkpoint = TrackCheckpoint(checkpoint) if checkpoint is not None else None
        self.checkpoint_s = checkpoint_s
        self._checkpointed = -float("inf")
        self.stop = stop or threading.Event()
        self.stats = WatchStats()
        self._writer: cv2.VideoWriter | None = None

    def _status(self, force: bool = False) -> None:
        if self.status is not None:
            s = self.source.stats
            self.status.update(f"{self.stats.fps():5.1f} fps | frames {self.stats.frames} | "
                               f"open tracks {self.tracker.open_tracks} | events {self.stats.events}"
                               f" | dropped {self.source.dropped} | corrupt {s.corrupt}", force)

    def _write(self, frame: np.ndarray) -> None:
        if self.annotate_path is None:
            return
        if self._writer is None:
            h, w = frame.shape[:2]
            fps = self.source.fps or 10.0
            self._writer = cv2.VideoWriter(self.annotate_path, cv2.VideoWriter_fourcc(*"mp4v"),
                                           fps, (w, h))
            if not self._writer.isOpened():
                raise RuntimeError(f"cannot write the annotated video {self.annotate_path}")
        self._writer.write(self.tracker.draw(frame))

    def _process(self, frame: Frame) -> list[VehicleEvent]:
        self.stats.last_frame = time.monotonic()
        if self.min_interval and frame.time - self._last_t < self.min_interval * 0.999:
            self.stats.skipped += 1
            return self.tracker.expire(frame.time)
        self._last_t = frame.time
        self.stats.frames += 1
        try:
            events = self.tracker.update(frame.image, frame.time)
        except Exception as exc:  # one bad frame must not end a camera
            self.stats.engine_errors += 1
            log.warning("frame %d: engine error %s: %s", frame.index, type(exc).__name__, exc)
            events = self.tracker.expire(frame.time)
            self.tracker.visible = []
        self._write(frame.image)
        return events

    def _save_checkpoint(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.checkpoint is None or not self.source.live or (not force and now - self._checkpointed < self.checkpoint_s):
            return
        self._checkpointed = now
        try:
            self.checkpoint.save(self.tracker.provisional())
        except OSError as exc:   # a full disk must not stop the camera
            log.warning("checkpoint %s: %s", self.checkpoint.path, exc)

    def __iter__(self) -> Iterator[VehicleEvent]:
        src = self.source
        try:
            if self.checkpoint is not None and src.live:
                recovered = self.checkpoint.load()
                if recovered:
                    log.warning("%s: %d vehicle(s) in view when the last run ended; continuing them",
                                self.tracker.camera, len(recovered))
                    self.tracker.recover(recovered, time.time())
            src.start()
            for frame in src.frames(idle=0.25):
                if frame is None:  # idle; a live source's tracks end by the wall clock
                    events = self.tracker.expire(time.time()) if src.live else []
                else:
                    events = self._process(frame)
                self.stats.events += len(events)
                yield from events
                self._save_checkpoint(force=bool(events))   # an ended track leaves the checkpoint at once
                self._status()
                if self.stop.is_set():
                    break
            src.stop()
            for frame in src.buffered():  # the frames already in hand
                events = self._process(frame)
                self.stats.events += len(events)
                yield from events
            events = self.tracker.flush()
            self.stats.events += len(events)
            yield from events
            if self.checkpoint is not None:
                self.checkpoint.clear()   # everything was handed on
            if src.error:
                raise RuntimeError(src.error)
        finally:
            src.stop()
            src.join(1.0)
            if self._writer is not None:
                self._writer.release()
                self._writer = None
            self._status(force=True)
            if self.status is not None:
                self.status.close()


def watch(source: str | int | os.PathLike, reader: Any, **options: Any) -> Iterator[VehicleEvent]:
    """Events of one camera or video, one per vehicle; options as for ``Watcher``."""
    return iter(Watcher(source, reader, **options))
