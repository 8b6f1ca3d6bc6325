"""The camera supervisor with real streams: isolation (one camera hanging, breaking or crashing
does not stop another), the watchdog's restarts, reloads that touch only what changed; and the
video options the cameras use (zone, minimum plate size, frame-rate cap)."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import camfakes
from plateread.cameras.config import CameraConfig, WatchdogConfig
from plateread.cameras.supervisor import Supervisor
from plateread.cameras.watchdog import Backoff
from plateread.reader import Reader
from plateread.video import Watcher


class Events:
    """The supervisor's sink: events per camera, with their arrival time."""

    def __init__(self) -> None:
        self.got: list[tuple[str, str, float]] = []
        self.lock = threading.Lock()

    def __call__(self, camera: str, event) -> None:
        with self.lock:
            self.got.append((camera, event.plate, time.monotonic()))

    def count(self, camera: str, after: float = 0.0) -> int:
        with self.lock:
            return sum(1 for c, _, t in self.got if c == camera and t > after)

    def wait(self, camera: str, n: int, after: float = 0.0, timeout: float = 15.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.count(camera, after) >= n:
                return True
            time.sleep(0.05)
        return False


@pytest.fixture
def streams():
    made = []

    def make(texts=("AB123", "CD456"), fps=10.0):
        cam = camfakes.MjpegCamera(camfakes.jpegs(camfakes.passing(texts, moving=6, gap=6)), fps=fps)
        made.append(cam)
        return cam

    yield make
    for cam in made:
        cam.close()


def cam(name: str, source, **kw) -> CameraConfig:
    return CameraConfig(name=name, source=source, track_timeout=0.4, **kw)


def test_a_hung_stream_does_not_stop_another_and_the_watchdog_restarts_it(streams):
    a, b = streams(), streams(("XY987",))
    events = Events()
    sup = Supervisor(lambda c: Reader("fake-blocks"), events,
                     WatchdogConfig(stall_s=1.5, restart_min_s=0.2, restart_max_s=1.0))
    sup.start([cam("a", a.url, timeout=30.0), cam("b", b.url, timeout=30.0)])
    try:
        assert events.wait("a", 1) and events.wait("b", 1), events.got
        b.hang()                                     # open connection, no frames: only the watchdog sees it
        t_hang = time.monotonic()
        assert events.wait("a", 3, after=t_hang), "camera a stopped while b hung"
        end = time.monotonic() + 10
        while sup.runners["b"].restarts < 1 and time.monotonic() < end:
            time.sleep(0.05)
        hb = {h.name: h for h in sup.health()}["b"]
        assert hb.restarts >= 1 and "stalled" in (hb.error or ""), hb
        assert {h.name: h for h in sup.health()}["a"].restarts == 0
        b.resume()
        assert events.wait("b", 1, after=time.monotonic(), timeout=20), "b did not come back after its restart"
        b.break_stream()                             # refused outright: the source reconnects, a goes on
        t_break = time.monotonic()
        assert events.wait("a", 2, after=t_break)
        assert sup.health()[0].online and sup.health()[0].name == "a"
    finally:
        sup.stop()
    assert all(h.state == "stopped" for h in sup.health()) if sup.runners else True


class HangOnce:
    """A detector that blocks on its 5th frame (the first reader only), like an engine stuck in
    a driver; later readers work."""

    release = threading.Event()

    def __init__(self, inner, hang: bool) -> None:
        self.inner, self.hang, self.calls = inner, hang, 0

    def detect(self, image, debug=None):
        self.calls += 1
        if self.hang and self.calls == 5:
            HangOnce.release.wait(30)
        return self.inner.detect(image)


def test_engine_hang_and_crash_are_restarted_with_backoff(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(camfakes.passing(["AB123"], moving=6, gap=6)):
        cv2.imwrite(str(folder / f"{i:03d}.png"), f)
    built = {"hang": 0, "crash": 0}

    def make_reader(c: CameraConfig) -> Reader:
        built[c.name] += 1
        if c.name == "crash" and built["crash"] <= 2:
            raise RuntimeError("model file unreadable")          # the first two starts fail
        r = Reader("fake-blocks")
        if c.name == "hang":
            r.detector = HangOnce(r.detector, hang=built["hang"] == 1)
        return r

    events = Events()
    sup = Supervisor(make_reader, events, WatchdogConfig(stall_s=1.0, restart_min_s=0.2, restart_max_s=0.4))
    kw = dict(fps=20.0, loop=True, realtime=True)
    sup.start([cam("hang", str(folder), **kw), cam("crash", str(folder), **kw)])
    try:
        assert events.wait("crash", 2, timeout=20), sup.health()
        assert events.wait("hang", 2, timeout=20), sup.health()
        h = {x.name: x for x in sup.health()}
        assert built["crash"] == 3 and "model file unreadable" in (h["crash"].error or "")
        assert built["hang"] >= 2 and "stalled" in (h["hang"].error or "")   # a fresh reader after the hang
    finally:
        HangOnce.release.set()
        sup.stop()


def test_reload_adds_and_removes_cameras_without_touching_the_others(streams):
    a, b = streams(), streams(("XY987",))
    events = Events()
    sup = Supervisor(lambda c: Reader("fake-blocks"), events, WatchdogConfig(stall_s=5))
    ca, cb = cam("a", a.url), cam("b", b.url)
    sup.start([ca])
    try:
        assert events.wait("a", 1)
        gen = sup.runners["a"]._gen
        report = sup.apply([ca, cb])
        assert (report.added, report.removed, report.unchanged) == (("b",), (), ("a",))
        t = time.monotonic()
        assert events.wait("b", 1) and events.wait("a", 1, after=t)
        report = sup.apply([cb])                                  # remove a
        assert report.removed == ("a",) and "a" not in sup.runners
        report = sup.apply([cam("b", b.url, max_fps=5.0)])        # a changed setting restarts only b
        assert report.restarted == ("b",)
        t = time.monotonic()
        assert events.wait("b", 1, after=t)
        assert sup.runners["b"].config.max_fps == 5.0
        assert gen.stop.is_set() and not gen.abandoned            # a was stopped cleanly, not abandoned
    finally:
        sup.stop()


def test_watchdog_backoff_doubles_and_caps():
    b = Backoff(1.0, 8.0)
    assert [b.delay(n) for n in range(6)] == [0.0, 1.0, 2.0, 4.0, 8.0, 8.0]


def test_stream_passwords_are_masked():
    from plateread.video.sources import redact
    assert redact("rtsp://admin:s3cr3t@10.0.0.5:554/stream1") == "rtsp://admin:***@10.0.0.5:554/stream1"
    assert redact("http://cam/mjpg") == "http://cam/mjpg" and redact(0) == "0"


# ---- the video options cameras use -----------------------------------------------------------

def _frames(folder: Path, n: int, plates) -> None:
    folder.mkdir()
    for i in range(n):
        img = np.full((camfakes.H, camfakes.W, 3), 30, np.uint8)
        for text, x, y in plates:
            camfakes.draw_plate(img, text, x + 4 * i, y)
        cv2.imwrite(str(folder / f"{i:03d}.png"), img)


def test_zone_min_plate_and_fps_cap(tmp_path):
    _frames(tmp_path / "f", 10, [("AB123", 10, 20), ("CD456", 10, 150)])     # plates are 70 × 24 px
    reader = Reader("fake-blocks")
    every = sorted(e.plate for e in Watcher(tmp_path / "f", reader, fps=10, start_time=0))
    assert every == ["AB123", "CD456"]
    lower_half = [(0, 120), (320, 120), (320, 240), (0, 240)]
    w = Watcher(tmp_path / "f", reader, fps=10, start_time=0, zone=lower_half, min_plate=(60, 20))
    assert [e.plate for e in w] == ["CD456"] and w.tracker.filtered == 10
    w = Watcher(tmp_path / "f", reader, fps=10, start_time=0, min_plate=(71, 0))
    assert list(w) == [] and w.tracker.filtered == 20
    w = Watcher(tmp_path / "f", reader, fps=10, start_time=0, max_fps=5)
    events = list(w)
    assert w.stats.frames == 5 and w.stats.skipped == 5 and len(events) == 2
    assert all(e.frames == 5 for e in events)


def test_realtime_file_plays_at_its_frame_rate(tmp_path):
    _frames(tmp_path / "f", 6, [("AB123", 10, 20)])
    t = time.monotonic()
    events = list(Watcher(tmp_path / "f", Reader("fake-blocks"), fps=20, realtime=True))
    assert 0.2 <= time.monotonic() - t < 3 and [e.plate for e in events] == ["AB123"]
