"""Camera faults against real loopback MJPEG servers (tests/camfakes.py), no mocked servers: a
camera that sends garbage, changes resolution mid-stream, stalls, or goes away and comes back;
and one faulty camera beside a good one under the supervisor.

Each camera plays a script once (``loop=False``) and the script only advances while a client
reads it, so every test knows exactly which vehicles it must get: the assertions are on event
plates, in order, and on the source's counters.
"""
from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

import camfakes
from camfakes import Burst, Hangup, Stall, garbage
from plateread.cameras.config import CameraConfig, WatchdogConfig
from plateread.cameras.supervisor import Supervisor
from plateread.reader import Reader
from plateread.video import Watcher

FPS = 20.0
#: short track timeout, quick reconnects, and a buffer deep enough that a busy machine drops no
#: frame (frame dropping is test_watch's subject, not this file's)
LIVE = dict(track_timeout=0.4, timeout=3.0, backoff=(0.1, 0.5), live_buffer=64)


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader("fake-blocks")


@pytest.fixture
def cameras():
    made: list[camfakes.MjpegCamera] = []

    def make(script, fps: float = FPS) -> camfakes.MjpegCamera:
        cam = camfakes.MjpegCamera(script, fps=fps, loop=False)
        made.append(cam)
        return cam

    yield make
    for cam in made:
        cam.close()


def scene(text: str | None = None, x: int = 20, size: tuple[int, int] = (camfakes.W, camfakes.H),
          y: int = 100, scale: float = 1.0) -> bytes:
    """One JPEG frame of ``size`` (w, h), with a plate at (x, y) × ``scale`` if ``text``."""
    img = np.full((size[1], size[0], 3), 30, np.uint8)
    if text:
        camfakes.draw_plate(img, text, round(x * scale), round(y * scale), scale)
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


def vehicle(text: str, moving: int = 6, **kw) -> list[bytes]:
    """A plate crossing the view in ``moving`` frames."""
    return [scene(text, 20 + 20 * i, **kw) for i in range(moving)]


def empty(n: int, **kw) -> list[bytes]:
    return [scene(**kw)] * n


def wait_for(cond, timeout: float = 30.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return bool(cond())


class Run:
    """A Watcher iterated in a thread: its events with their arrival time (time.monotonic())."""

    def __init__(self, source: str, reader: Reader, **options) -> None:
        self.stop = threading.Event()
        self.watcher = Watcher(source, reader, stop=self.stop, **{**LIVE, **options})
        self.arrivals: list[tuple[float, object]] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for event in self.watcher:
                self.arrivals.append((time.monotonic(), event))
        except BaseException as exc:  # the test reports it
            self.error = exc

    @property
    def plates(self) -> list[str]:
        return [e.plate for _, e in self.arrivals]

    def at(self, plate: str) -> float:
        """When the (last) event of ``plate`` came."""
        return [t for t, e in self.arrivals if e.plate == plate][-1]

    def finish(self) -> list[str]:
        """Stops the watcher (open tracks flushed) and checks it was alive until told to stop."""
        assert self.thread.is_alive() and self.error is None, f"the watcher died: {self.error!r}"
        self.stop.set()
        self.thread.join(15)
        assert not self.thread.is_alive() and self.error is None, self.error
        return self.plates

    @property
    def stats(self):
        return self.watcher.source.stats

    def vehicles(self, moving: int = 6) -> list[str]:
        """The plates read, in order, a vehicle whose track split into consecutive events
        counted once. A busy machine can decode a few frames back to back, and the tracker may
        then split a track (test_a_backlog_burst_does_not_split_a_vehicle): that is the tracker's
        matter, not the fault's under test. A split shares out the plate's frames; a vehicle read
        twice from the same frames (a replay) is not excused."""
        out: list[str] = []
        frames: dict[str, int] = {}
        for _, e in self.arrivals:
            if not out or out[-1] != e.plate:
                out.append(e.plate)
            frames[e.plate] = frames.get(e.plate, 0) + e.frames
        assert all(n <= moving for n in frames.values()), (frames, [(e.plate, e.frames) for _, e in self.arrivals],
                                                           self.stats)
        return out


# ---- garbage -------------------------------------------------------------------------------------

def test_garbage_parts_between_good_frames_are_skipped_and_every_vehicle_is_read(cameras, reader):
    a, b, c, d = vehicle("AB123"), vehicle("CD456"), vehicle("EF789"), vehicle("GH012")
    cam = cameras([
        *a[:3], garbage("random", 1), *a[3:], *empty(6),              # undecodable parts mid-track
        *b[:2], garbage("soi", 2), *b[2:4], garbage("random", 3), *b[4:], *empty(3),
        garbage("random", 4), garbage("random", 5), *empty(4),       # two in a row, between vehicles
        *c[:3], garbage("truncated", like=c[3]), *c[4:], *empty(4),  # half a JPEG: decoded half-grey
        # FFmpeg's MJPEG demuxer gives up a connection on a part that is not image/jpeg (and
        # OpenCV's decoder then stays drained): the source must reconnect. The frames in flight
        # are lost with the connection, hence the long gap before the next vehicle.
        garbage("text"), *empty(24),
        *d, *empty(6),
    ])
    run = Run(cam.url, reader)
    try:
        wait_for(lambda: len(run.vehicles()) >= 4)
    finally:
        run.finish()
    assert run.vehicles() == ["AB123", "CD456", "EF789", "GH012"], (run.plates, run.stats, cam.log)
    s = run.stats
    assert s.corrupt >= 5, s                                        # 4 random + 1 junk after a JPEG start
    assert (s.reconnects >= 1 and s.gaps) or s.corrupt >= 6, s      # the text part: a reconnect (or skipped)
    assert run.watcher.stats.engine_errors == 0


def test_a_stream_of_only_garbage_for_a_while_recovers(cameras, reader):
    burst = [garbage("random" if i % 3 else "soi", 10 + i) for i in range(24)]   # 1.2 s of nothing usable
    # the frames in flight when the source gives up a connection are lost with it: a gap
    cam = cameras([*vehicle("AB123"), *empty(6), *burst, garbage("text"), *burst[:10],
                   *empty(24), *vehicle("CD456"), *empty(6), *vehicle("EF789"), *empty(6)])
    run = Run(cam.url, reader)
    try:
        wait_for(lambda: len(run.vehicles()) >= 3)
    finally:
        run.finish()                                  # (asserts the watcher was still alive)
    assert run.vehicles() == ["AB123", "CD456", "EF789"], (run.plates, run.stats, cam.log)
    s = run.stats
    # a run of MAX_BAD_READS undecodable parts reads as a lost stream: the source reconnects
    # (each new connection first meets more garbage) until good frames come again. Those parts
    # are not counted as corrupt: a lost stream is all the source can tell.
    assert (s.reconnects >= 1 and s.gaps) or s.corrupt >= 24, s
    assert s.frames >= 3 * 6, s


# ---- resolution ----------------------------------------------------------------------------------

def test_resolution_change_mid_stream(cameras, reader):
    """640x360 → 1280x720 → 480x270 (the plate drawn to each scale, as a camera would see it),
    with one vehicle crossing while the resolution changes."""
    sizes = {1.0: (640, 360), 2.0: (1280, 720), 0.75: (480, 270)}

    def at(scale: float, text: str | None = None, i: int = 0) -> bytes:
        return scene(text, 40 + 30 * i, size=sizes[scale], y=150, scale=scale)

    script = ([at(1.0, "AB123", i) for i in range(6)] + [at(1.0)] * 6
              + [at(1.0, "CD456", i) for i in range(3)] + [at(2.0, "CD456", i) for i in range(3, 6)]
              + [at(2.0)] * 6 + [at(2.0, "EF789", i) for i in range(6)] + [at(2.0)] * 3
              + [at(0.75)] * 3 + [at(0.75, "GH012", i) for i in range(6)] + [at(0.75)] * 6)
    shapes: set[tuple[int, ...]] = set()
    inner = reader.detector

    class Seen:                                     # records the frame sizes the engine gets
        def detect(self, image, debug=None):
            shapes.add(image.shape)
            return inner.detect(image)

    cam = cameras(script)
    run = Run(cam.url, Reader("fake-blocks", detector=Seen()))
    try:
        wait_for(lambda: len(run.vehicles()) >= 4)
    finally:
        run.finish()
    events = [e for _, e in run.arrivals]
    assert run.vehicles() == ["AB123", "CD456", "EF789", "GH012"], (run.plates, run.stats, cam.log)
    assert run.stats.corrupt == 0 and run.watcher.stats.engine_errors == 0
    for e in events:                                # every box lies in the frame it was read in
        h, w = e.frame.shape[:2]
        assert 0 <= e.box.xmin < e.box.xmax <= w and 0 <= e.box.ymin < e.box.ymax <= h, (e.plate, e.box, (w, h))
    if len(shapes) == 1:
        # OpenCV's FFmpeg reader (5.0 here) scales every frame to the size the stream opened
        # with: one coordinate system, so the crossing vehicle is one track with all its frames.
        # (A build that hands frames on at their own size is the next test's case.)
        assert shapes == {(360, 640, 3)}
        crossing = [e for e in events if e.plate == "CD456"]
        assert sum(e.frames for e in crossing) == 6, [(e.plate, e.frames) for e in events]


def test_a_camera_back_at_another_resolution_does_not_carry_tracks_over(cameras, reader):
    """The camera drops the connection and is back at once at 1280x720 (a reboot into new
    settings): the new stream opens at its new size, so here the frame size does change for the
    tracker. A car waiting at 640x360 and another one at the same pixels of the 1280x720 picture
    (another place) are two vehicles, not one track across two coordinate systems."""
    waiting = [scene("AB123", 240, size=(640, 360), y=150)] * 4
    other = [scene("CD456", 120, size=(1280, 720), y=75, scale=2.0)] * 4      # at (240, 150) too
    cam = cameras([*waiting, Hangup(), *other, *empty(2, size=(1280, 720))])
    run = Run(cam.url, reader, track_timeout=3.0)     # the reconnect is well within a track's life
    try:
        assert wait_for(lambda: cam.done and run.watcher.stats.frames >= 10), run.stats
    finally:
        run.finish()                                   # ends the open tracks
    assert run.stats.gaps and run.stats.frames == 10, run.stats
    got = [(e.plate, e.frames) for _, e in run.arrivals]
    assert got == [("AB123", 4), ("CD456", 4)]


# ---- stalls --------------------------------------------------------------------------------------

@pytest.mark.parametrize("stall, timeout", [(3.0, 6.0), (3.0, 1.0)], ids=["under-read-timeout", "over-read-timeout"])
def test_a_stall_ends_open_tracks_by_the_clock_and_the_stream_goes_on(cameras, reader, stall, timeout):
    """The camera stops sending (connection open) right after a plate's last frame: its track
    ends during the stall, by the wall clock; a stall longer than the read timeout is a lost
    stream and a reconnect, a shorter one is waited out on the same connection."""
    cam = cameras([*vehicle("AB123"), *empty(6), *vehicle("CD456"), Stall(stall), *empty(6),
                   *vehicle("EF789"), *empty(6)])
    run = Run(cam.url, reader, timeout=timeout)
    try:
        wait_for(lambda: len(run.vehicles()) >= 3, timeout=30 + stall)
    finally:
        run.finish()
    assert run.vehicles() == ["AB123", "CD456", "EF789"], (run.plates, run.stats, cam.log)
    assert len(cam.stalls) == 1
    start, end = cam.stalls[0]
    assert start < run.at("CD456") < end, "the open track ended only when frames came again"
    if stall < timeout:
        assert run.stats.reconnects == 0 and not run.stats.gaps, run.stats
    else:
        assert run.stats.reconnects >= 1 and len(run.stats.gaps) == 1, run.stats
        lost, back = run.stats.gaps[0]
        assert 0 < back - lost < stall + 10


def test_a_backlog_burst_does_not_split_a_vehicle(cameras, reader):
    """The camera stalls for a moment mid-vehicle, then flushes its backlog at once: the source
    stamps those frames a millisecond apart, as it decodes them. The vehicle is still one."""
    frames = vehicle("AB123", moving=8)
    cam = cameras([*frames[:2], Stall(0.25), Burst(tuple(frames[2:5])), *frames[5:], *empty(6)])
    run = Run(cam.url, reader)
    try:
        wait_for(lambda: run.watcher.stats.frames >= 14 and run.watcher.tracker.open_tracks == 0)
    finally:
        run.finish()
    got = [(e.plate, e.frames) for _, e in run.arrivals]
    assert {p for p, _ in got} == {"AB123"} and 6 <= sum(n for _, n in got) <= 8, (got, cam.log)
    assert got == [("AB123", 8)]


# ---- the server goes away and comes back ---------------------------------------------------------

def test_the_camera_server_goes_away_and_comes_back_on_the_same_port(cameras, reader):
    # the server dies while CD456 is still in view: its track must end during the outage
    cam = cameras([*vehicle("AB123"), *empty(6), *vehicle("CD456")])
    run = Run(cam.url, reader)
    try:
        assert wait_for(lambda: cam.done), "the camera did not play its script"
        cam.go_away()
        down = time.monotonic()
        wait_for(lambda: len(run.vehicles()) >= 2)
        wait_for(lambda: time.monotonic() - down > 1.0 and run.stats.reconnects >= 2)   # refused, a few times
        up = time.monotonic()
        cam.come_back([*empty(2), *vehicle("EF789"), *empty(6), *vehicle("GH012"), *empty(6)])
        wait_for(lambda: len(run.vehicles()) >= 4)
    finally:
        run.finish()
    assert run.vehicles() == ["AB123", "CD456", "EF789", "GH012"], (run.plates, run.stats, cam.log)
    assert run.at("CD456") < up, "what was seen before the outage waited for the camera to return"
    s = run.stats
    assert s.reconnects >= 2 and s.gaps, s
    lost, back = s.gaps[0]
    assert back > lost and run.watcher.source.error is None


# ---- the supervisor: one faulty camera beside a good one -----------------------------------------

class Sink:
    def __init__(self) -> None:
        self.got: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()

    def __call__(self, camera: str, event) -> None:
        with self.lock:
            self.got.append((camera, event.plate, event.frames))

    def vehicles(self, camera: str) -> list[str]:
        """As Run.vehicles: a track split into consecutive events counts once, if it shares out
        the plate's frames."""
        with self.lock:
            got = [(p, n) for c, p, n in self.got if c == camera]
        out: list[str] = []
        frames: dict[str, int] = {}
        for plate, n in got:
            if not out or out[-1] != plate:
                out.append(plate)
            frames[plate] = frames.get(plate, 0) + n
        assert all(n <= 6 for n in frames.values()), (camera, got)
        return out


def test_a_faulty_camera_beside_a_good_one(cameras):
    good_plates = ["AB123", "CD456", "EF789", "GH012", "JK345"]
    # the good camera goes on sending (empty frames) until the end: no read timeout, no reconnect
    good = cameras([s for p in good_plates for s in (*vehicle(p), *empty(6))] + empty(1200))
    bad = cameras([*vehicle("XY987")[:3], garbage("random", 1), *vehicle("XY987")[3:], *empty(4),
                   garbage("random", 2), garbage("soi", 3), *empty(4),
                   garbage("text"), *empty(24),                       # the demuxer gives up: a reconnect
                   *vehicle("ZZ111"), *empty(6),
                   *[garbage("random", 10 + i) for i in range(20)],   # nothing usable for a while
                   *empty(24), *vehicle("QQ222"), *empty(6)])
    sink = Sink()
    sup = Supervisor(lambda c: Reader("fake-blocks"), sink,
                     WatchdogConfig(stall_s=20.0, restart_min_s=0.2, restart_max_s=1.0))
    kw = dict(track_timeout=0.4, timeout=2.0, buffer=64)
    sup.start([CameraConfig(name="good", source=good.url, **kw), CameraConfig(name="bad", source=bad.url, **kw)])
    try:
        wait_for(lambda: len(sink.vehicles("bad")) >= 3, timeout=60)
        wait_for(lambda: len(sink.vehicles("good")) >= len(good_plates), timeout=60)
        health = {h.name: h for h in sup.health()}
        events = {name: len([c for c, *_ in sink.got if c == name]) for name in health}
    finally:
        sup.stop()
    assert sink.vehicles("good") == good_plates, sink.got
    assert sink.vehicles("bad") == ["XY987", "ZZ111", "QQ222"], sink.got
    g, b = health["good"], health["bad"]
    assert (g.corrupt, g.reconnects, g.restarts, g.engine_errors) == (0, 0, 0, 0), g
    assert g.events == events["good"] and g.state == "running"
    assert b.corrupt >= 3 and b.reconnects >= 2 and b.restarts == 0, b   # the source coped; no watchdog restart
    assert b.events == events["bad"] and b.state == "running" and b.frames_in > 0
