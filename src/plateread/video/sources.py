"""Frame sources: video files, frame folders, stream URLs and webcams, decoded in a thread.

Files and folders are *complete* sources: every frame is processed, the decoder waits when the
bounded buffer is full (back-pressure). Live sources (URLs, webcams) are *latest-wins*: a frame
nobody took yet is replaced by the newer one and counted as dropped, so a slow engine reads the
present, not a growing backlog. Live streams that fail are reopened with capped exponential
backoff and each gap is logged.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from ..imaging import ImageError, as_bgr

log = logging.getLogger("plateread.video")

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
#: Consecutive failed reads after which a capture counts as ended (file) or lost (stream). One
#: undecodable frame makes OpenCV's read() fail once and the next read succeeds, so a few
#: retries tell a corrupt frame from the end of the stream.
MAX_BAD_READS = 5


@dataclass(frozen=True, eq=False)
class Frame:
    image: np.ndarray  # BGR uint8
    index: int         # position in the source (live: frames received, dropped ones included)
    time: float        # seconds since the epoch, UTC (files: start_time + position)


@dataclass
class SourceStats:
    frames: int = 0        # frames decoded and handed on
    dropped: int = 0       # live frames replaced by newer ones before being processed
    corrupt: int = 0       # undecodable / wrong-shape frames skipped
    reconnects: int = 0    # reconnect attempts, failed ones included (gaps: the outages themselves)
    gaps: list[tuple[float, float]] = field(default_factory=list)  # (lost at, back at) epoch s


def parse_source(source: str | int | os.PathLike) -> tuple[str, str | int]:
    """(kind, target): kind is 'camera', 'stream', 'folder' or 'file'."""
    if isinstance(source, int):
        return "camera", source
    s = os.fspath(source)
    if s.isdigit():
        return "camera", int(s)
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", s):
        return "stream", s
    if os.path.isdir(s):
        return "folder", s
    if not os.path.isfile(s):
        raise FileNotFoundError(f"no such video file, folder, URL or camera: {s}")
    return "file", s


def redact(source: str | int | os.PathLike) -> str:
    """A source for display and storage: a URL's password never leaves the process."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", str(source))


def default_camera_id(source: str | int | os.PathLike) -> str:
    """A readable camera id when the user gave none: file stem, folder name, host+path, webcamN."""
    s = str(source) if isinstance(source, int) else os.fspath(source)
    if s.isdigit():
        return f"webcam{s}"
    if "://" in s:
        rest = s.split("://", 1)[1].split("@")[-1]
        return re.sub(r"[^A-Za-z0-9._-]+", "-", rest).strip("-") or "stream"
    p = Path(s.rstrip("/\\"))
    return (p.name if p.is_dir() else p.stem) or "camera"


def valid_image(img: object) -> np.ndarray | None:
    """The frame as 3-channel BGR uint8, or None if it is not a usable image."""
    if not isinstance(img, np.ndarray) or img.size == 0 or img.dtype != np.uint8:
        return None
    try:
        return as_bgr(img)  # the same channel rules as a photo given to ``read``
    except ImageError:
        return None


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


class _Buffer:
    """Bounded frame hand-over between the decoder thread and the consumer."""

    def __init__(self, size: int, latest_wins: bool) -> None:
        self._items: deque[Frame] = deque()
        self._cv = threading.Condition()
        self.size, self.latest_wins = max(1, size), latest_wins
        self.closed = False
        self.dropped = 0

    def put(self, item: Frame, stop: threading.Event) -> None:
        with self._cv:
            while not self.latest_wins and len(self._items) >= self.size and not stop.is_set():
                self._cv.wait(0.1)
            while len(self._items) >= self.size:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cv.notify_all()

    def get(self, timeout: float | None) -> Frame | None:
        """Next frame; None on timeout or when closed and empty (check ``exhausted``)."""
        with self._cv:
            if not self._items and not self.closed:
                self._cv.wait(timeout)
            if self._items:
                item = self._items.popleft()
                self._cv.notify_all()
                return item
            return None

    @property
    def exhausted(self) -> bool:
        with self._cv:
            return self.closed and not self._items

    def close(self) -> None:
        with self._cv:
            self.closed = True
            self._cv.notify_all()


class VideoSource:
    """Frames of a file, folder, URL or webcam, decoded by a background thread.

    ``fps`` overrides the file's frame rate (folders: default 10) for timestamps; ``start_time``
    (epoch seconds) is the time of a file's first frame — 0 by default, so event times of a
    recording read as positions in it. ``max_reconnects``: None = unlimited for live sources.
    ``realtime`` paces a file or folder at its frame rate (a recorded clip standing in for a
    camera) instead of decoding as fast as the consumer takes frames. ``live_buffer`` frames of a
    live source may wait (default 1: only the latest); a few absorb a slow frame's burst when
    several cameras share the cores, at the cost of reading up to that many frames late.
    """

    def __init__(self, source: str | int | os.PathLike, *, fps: float | None = None,
                 start_time: float = 0.0, live: bool | None = None, queue_size: int = 8,
                 max_reconnects: int | None = None, backoff: tuple[float, float] = (0.5, 10.0),
                 timeout: float = 5.0, realtime: bool = False, live_buffer: int = 1,
                 clock: Callable[[], float] = time.time) -> None:
        self.kind, self.target = parse_source(source)
        self.name = str(source)
        self.live = self.kind in ("stream", "camera") if live is None else live
        self.fps_override, self.start_time = fps, float(start_time)
        self.max_reconnects = max_reconnects
        self.backoff, self.timeout, self.clock = backoff, float(timeout), clock
        self.realtime = realtime and not self.live
        self._t0: float | None = None
        self.fps: float | None = fps if self.kind != "folder" else (fps or 10.0)
        self.stats = SourceStats()
        self._buffer = _Buffer(live_buffer if self.live else queue_size, latest_wins=self.live)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    # -- consumer side ---------------------------------------------------------------------
    def start(self) -> "VideoSource":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="plateread-decode", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stops decoding; frames already buffered can still be taken with ``frames()``."""
        self._stop.set()

    def join(self, timeout: float = 2.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def frames(self, idle: float | None = None) -> Iterator[Frame | None]:
        """Frames until the source ends; with ``idle``, yields None after that many seconds
        without a frame (so a live pipeline can still close tracks while the camera is down)."""
        self.start()
        while True:
            item = self._buffer.get(idle if idle is not None else 0.2)
            if item is not None:
                yield item
            elif self._buffer.exhausted:
                return
            elif idle is not None:
                yield None

    def buffered(self) -> Iterator[Frame]:
        """The frames decoded but not yet taken (after ``stop``: what is already in hand)."""
        while (frame := self._buffer.get(0)) is not None:
            yield frame

    @property
    def dropped(self) -> int:
        return self._buffer.dropped

    @property
    def thread(self) -> threading.Thread | None:
        """The decoder thread (a supervisor reads its CPU time)."""
        return self._thread

    # -- decoder thread --------------------------------------------------------------------
    def _pace(self, index: int) -> None:
        """Realtime playback: wait until frame ``index`` is due at the source's frame rate."""
        if not self.realtime:
            return
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        self._stop.wait(max(0.0, self._t0 + index / (self.fps or 25.0) - now))

    def _emit(self, img: object, index: int, t: float | None = None) -> None:
        self._pace(index)
        good = valid_image(img)
        if good is None:
            self.stats.corrupt += 1
            return
        if t is None:
            t = self.clock() if self.live else self.start_time + index / (self.fps or 25.0)
        self.stats.frames += 1
        self._buffer.put(Frame(good, index, t), self._stop)
        self.stats.dropped = self._buffer.dropped

    def _run(self) -> None:
        try:
            if self.kind == "folder":
                self._run_folder()
            else:
                self._run_capture()
        except Exception as exc:  # reported by the pipeline; the consumer must not hang
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("source %s failed: %s", self.name, self.error)
        finally:
            self._buffer.close()

    def _run_folder(self) -> None:
        names = sorted((n for n in os.listdir(self.target)
                        if Path(n).suffix.lower() in IMAGE_EXTS), key=_natural_key)
        for i, n in enumerate(names):
            if self._stop.is_set():
                return
            self._emit(cv2.imread(os.path.join(str(self.target), n), cv2.IMREAD_COLOR), i)

    def _open(self) -> cv2.VideoCapture | None:
        if self.kind == "camera":
            cap = cv2.VideoCapture(int(self.target))
        elif self.kind == "stream":
            ms = int(self.timeout * 1000)
            cap = cv2.VideoCapture(str(self.target), cv2.CAP_FFMPEG,
                                   [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms,
                                    cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
        else:
            cap = cv2.VideoCapture(str(self.target))
        if not cap.isOpened():
            cap.release()
            return None
        if self.fps_override is None:
            fps = cap.get(cv2.CAP_PROP_FPS)
            self.fps = fps if fps and np.isfinite(fps) and 0 < fps < 1000 else self.fps
        return cap

    def _run_capture(self) -> None:
        cap = self._open()
        if cap is None and not self.live:
            raise RuntimeError(f"cannot open video {self.name}")
        index = 0
        attempts = 0
        lost_at: float | None = None if cap is not None else self.clock()
        while not self._stop.is_set():
            if cap is None:  # reconnect with capped exponential backoff
                if self.max_reconnects is not None and attempts >= self.max_reconnects:
                    log.error("stream %s: giving up after %d reconnect attempt(s)", self.name, attempts)
                    return
                delay = min(self.backoff[1], self.backoff[0] * 2 ** min(attempts, 30))
                if self._stop.wait(delay):
                    return
                attempts += 1
                self.stats.reconnects += 1
                cap = self._open()
                if cap is None:
                    continue
                back = self.clock()
                assert lost_at is not None
                self.stats.gaps.append((lost_at, back))
                log.warning("stream %s back at %s after a %.1f s gap (lost at %s, %d attempt(s))",
                            self.name, _iso(back), back - lost_at, _iso(lost_at), attempts)
                attempts, lost_at = 0, None
            bad = 0
            img = None
            while bad < MAX_BAD_READS and not self._stop.is_set():
                ok, img = cap.read()
                if ok:
                    break
                bad += 1
            if self._stop.is_set():
                break
            if bad >= MAX_BAD_READS:  # end of file, or the stream is gone
                cap.release()
                cap = None
                if not self.live:
                    return
                lost_at = self.clock()
                log.warning("stream %s lost at %s; reconnecting", self.name, _iso(lost_at))
                continue
            if bad:  # failed reads followed by a good one: undecodable frames
                self.stats.corrupt += bad
                index += bad
            self._emit(img, index)
            index += 1
        if cap is not None:
            cap.release()


def _iso(t: float) -> str:
    import datetime as dt
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="milliseconds")
