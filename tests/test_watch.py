"""Video: tracker, fusion, sources (folder, AVI, loopback MJPEG stream), faults, the CLI."""
from __future__ import annotations

import http.server
import json
import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import fakes
from conftest import REPO
from plateread.formats import RegionDecoder
from plateread.reader import Reader
from plateread.types import Candidate
from plateread.video import Observation, PlateTracker, VideoSource, fuse, watch

H, W = 240, 320
PW, PH = 80, 24


def frame_with(plates: list[tuple[str, int, int]]) -> np.ndarray:
    """A dark frame with bright fake plates (text, x, y) the fake engine detects and reads."""
    img = np.full((H, W, 3), 30, np.uint8)
    for text, x, y in plates:
        img[y:y + PH, x:x + PW] = 255
        fakes.encode_text(img[y:y + PH, x:x + PW], text)
    return img


def two_plates(n: int = 8, gap: tuple[int, ...] = ()) -> list[np.ndarray]:
    """Plate AB123 moving right (10 px/frame), XY987 moving left; frames in ``gap`` are empty."""
    return [frame_with([] if i in gap else [("AB123", 10 + 10 * i, 30), ("XY987", 220 - 10 * i, 160)])
            for i in range(n)]


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader("fake")


def run_tracker(tracker: PlateTracker, frames: list[np.ndarray], fps: float = 10.0):
    events = []
    for i, f in enumerate(frames):
        events += tracker.update(f, i / fps)
    return events


# -- tracker -------------------------------------------------------------------------------
def test_two_moving_plates_make_two_events_with_their_times(reader):
    tracker = PlateTracker(reader, camera="gate")
    events = run_tracker(tracker, two_plates(8))
    assert events == []  # still open
    events = tracker.flush()
    assert sorted(e.plate for e in events) == ["AB123", "XY987"]
    for e in events:
        assert e.frames == 8 and e.camera == "gate"
        assert e.first_seen.timestamp() == pytest.approx(0.0)
        assert e.last_seen.timestamp() == pytest.approx(0.7)
        assert e.best_crop is not None and e.frame is not None
    assert len({e.track_id for e in events}) == 2


def test_track_survives_a_two_frame_miss(reader):
    tracker = PlateTracker(reader)
    events = run_tracker(tracker, two_plates(10, gap=(4, 5))) + tracker.flush()
    assert sorted((e.plate, e.frames) for e in events) == [("AB123", 8), ("XY987", 8)]


def test_track_ends_after_the_timeout(reader):
    tracker = PlateTracker(reader, track_timeout=0.5)
    frames = [frame_with([("AB123", 20 + 5 * i, 30)]) for i in range(4)] + [frame_with([])] * 6
    got = [(i, tracker.update(f, i / 10)) for i, f in enumerate(frames)]
    ended = [(i, ev) for i, evs in got for ev in evs]
    assert len(ended) == 1
    i, ev = ended[0]
    assert i == 9 and ev.plate == "AB123"  # last seen at 0.3 s; 0.9 - 0.3 > 0.5
    assert ev.last_seen.timestamp() == pytest.approx(0.3)
    assert tracker.flush() == []


def test_single_frame_false_detection_makes_no_event(reader):
    tracker = PlateTracker(reader)
    frames = [frame_with([])] * 3 + [frame_with([("ZZ99", 100, 100)])] + [frame_with([])] * 3
    assert run_tracker(tracker, frames) + tracker.flush() == []
    assert tracker.dropped_tracks == 1


def test_reappearing_after_timeout_is_a_new_vehicle(reader):
    tracker = PlateTracker(reader, track_timeout=0.3)
    frames = [frame_with([("AB123", 50, 50)])] * 3 + [frame_with([])] * 5 + [frame_with([("AB123", 50, 50)])] * 3
    events = run_tracker(tracker, frames) + tracker.flush()
    assert [e.plate for e in events] == ["AB123", "AB123"]


# -- fusion --------------------------------------------------------------------------------
def _obs(text: str) -> Observation:
    return Observation(text, 0.8, 1.0, (Candidate(text, 0.8), Candidate(text + "X", 0.1)))


def test_noisy_reads_fuse_to_the_consistent_text():
    fused = fuse([_obs("AB123")] * 5 + [_obs("A8123"), _obs("AB12")])
    assert fused.text == "AB123" and fused.candidates[0].plate == "AB123"
    assert 0 < fused.score < 1 and 0.5 < fused.agreement < 1


def test_a_single_confident_outlier_does_not_win():
    reads = [Observation("AB123", 0.6, 0.6, (Candidate("AB123", 1.0),))] * 4
    outlier = Observation("A8I23", 1.0, 1.0, (Candidate("A8I23", 1.0),))
    assert fuse(reads + [outlier]).text == "AB123"


def test_per_character_votes_and_region_settle_a_z_7_lookalike():
    def dists(text: str, alt: dict[str, float]):
        return tuple(alt if i == 2 else {c: 1.0} for i, c in enumerate(text))
    # each frame's best path says 7 (0.6) over Z (0.4); no frame reads the plate right
    reads = [Observation("XS7B23", 0.5, 1.0, (Candidate("XS7B23", 1.0),), dists("XS7B23", {"7": 0.6, "Z": 0.4}))
             for _ in range(4)]
    assert fuse(reads).text == "XS7B23"  # no formats: the per-position argmax
    fused = fuse(reads, RegionDecoder("nl"))
    assert (fused.text, fused.region) == ("XSZB23", "nl")
    # two different half-wrong reads still combine position by position
    a = Observation("XSNB28", 0.5, 1.0, (Candidate("XSNB28", 1.0),),
                    tuple({c: 1.0} for c in "XSNB2") + ({"8": 0.45, "3": 0.55},))
    b = Observation("X5NB23", 0.5, 1.0, (Candidate("X5NB23", 1.0),),
                    ({"X": 1.0}, {"5": 0.45, "S": 0.55}) + tuple({c: 1.0} for c in "NB23"))
    assert fuse([a, b]).text == "XSNB23"


# -- sources -------------------------------------------------------------------------------
def _write_pngs(folder: Path, frames: list[np.ndarray]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"frame{i}.png"), f)


def test_folder_of_png_frames_with_a_corrupt_one(tmp_path, reader):
    _write_pngs(tmp_path / "frames", two_plates(8))
    (tmp_path / "frames" / "frame3.png").write_bytes(b"\x89PNG broken")
    w = iter(watch(tmp_path / "frames", reader, fps=10, start_time=0))
    events = list(w)
    assert sorted((e.plate, e.frames) for e in events) == [("AB123", 7), ("XY987", 7)]
    assert {e.camera for e in events} == {"frames"}
    assert events[0].last_seen.timestamp() == pytest.approx(0.7)


def test_mjpg_avi_file(tmp_path, reader):
    path = str(tmp_path / "clip.avi")
    out = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    assert out.isOpened()
    for f in two_plates(10):
        out.write(f)
    out.release()
    from plateread.video import Watcher
    w = Watcher(path, reader, min_score=0.0, start_time=0)
    events = list(w)
    # JPEG garbles the encoded text (the fake reads noise), but tracks and times hold
    assert len(events) == 2 and all(e.frames == 10 for e in events)
    assert w.source.stats.frames == 10 and w.source.dropped == 0
    assert max(e.last_seen.timestamp() for e in events) == pytest.approx(0.9)


class _Mjpeg(http.server.BaseHTTPRequestHandler):
    frames: list[bytes] = []
    delay = 0.05

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        try:
            for data in self.frames:
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                 % len(data) + data + b"\r\n")
                time.sleep(self.delay)
        except OSError:
            pass


def _serve(frames: list[bytes], delay: float = 0.05, port: int = 0):
    handler = type("H", (_Mjpeg,), {"frames": frames, "delay": delay})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def _jpegs(frames: list[np.ndarray]) -> list[bytes]:
    return [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes() for f in frames]


def test_stream_reconnects_after_a_drop_and_skips_corrupt_frames(reader, caplog):
    part = _jpegs([frame_with([("AB123", 100, 100)])] * 6)
    srv = _serve(part[:3] + [b"\xff\xd8 not a jpeg"] + part[3:])
    port = srv.server_address[1]
    src = VideoSource(f"http://127.0.0.1:{port}/cam.mjpg", backoff=(0.1, 0.4), timeout=2.0,
                      max_reconnects=20)
    caplog.set_level(logging.WARNING, logger="plateread.video")
    got, restarted = [], None
    deadline = time.monotonic() + 20
    try:
        for frame in src.frames(idle=0.1):
            if frame is not None:
                got.append(frame)
            if len(got) >= 6 and srv is not None:  # first connection done: server goes away
                srv.shutdown(); srv.server_close(); srv = None
                time.sleep(0.5)
                restarted = _serve(part, port=port)
            if len(got) >= 10 or time.monotonic() > deadline:
                break
    finally:
        src.stop(); src.join()
        for s in (srv, restarted):
            if s is not None:
                s.shutdown(); s.server_close()
    assert len(got) >= 10, (len(got), src.stats)
    assert src.stats.corrupt >= 1 and src.stats.reconnects >= 1 and src.stats.gaps
    assert "lost at" in caplog.text and "back at" in caplog.text and "gap" in caplog.text
    assert all(abs(f.time - time.time()) < 60 for f in got)  # live: wall-clock timestamps


def test_live_source_drops_stale_frames(reader):
    srv = _serve(_jpegs([frame_with([("AB123", 100, 100)])] * 20), delay=0.01)
    src = VideoSource(f"http://127.0.0.1:{srv.server_address[1]}/", max_reconnects=0, timeout=2.0)
    try:
        frames = []
        for f in src.frames(idle=0.1):
            if f is not None:
                frames.append(f)
                time.sleep(0.08)  # a slow engine
            if src._buffer.exhausted or len(frames) > 30:
                break
    finally:
        src.stop(); src.join(); srv.shutdown(); srv.server_close()
    assert src.dropped > 0 and len(frames) + src.dropped <= src.stats.frames + 1


def test_sigterm_flushes_open_tracks(tmp_path):
    # an endless, slow live stream: the plate never leaves, so only the flush can emit it
    frames = _jpegs([frame_with([("AB123", 100, 100)])]) * 400
    srv = _serve(frames, delay=0.05)
    code = ("import sys; sys.path.insert(0, 'tests'); import fakes; "
            "from plateread.cli.main import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.Popen([sys.executable, "-c", code, "watch", "--engine", "fake", "--camera", "c1",
                             f"http://127.0.0.1:{srv.server_address[1]}/s.mjpg"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3.0)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
        srv.shutdown(); srv.server_close()
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert len(events) == 1 and events[0]["camera"] == "c1" and events[0]["frames"] >= 2
    assert events[0]["first_seen"] > "2000"  # wall clock for live sources


def test_engine_error_on_a_frame_is_logged_and_the_stream_continues(tmp_path, caplog):
    class Flaky(fakes.FakeDetector):
        calls = 0

        def detect(self, image, debug=None):
            Flaky.calls += 1
            if Flaky.calls == 3:
                raise RuntimeError("boom")
            return super().detect(image, debug)

    _write_pngs(tmp_path / "f", [frame_with([("AB123", 50, 50)])] * 6)
    caplog.set_level(logging.WARNING, logger="plateread.video")
    events = list(watch(tmp_path / "f", Reader("fake", detector=Flaky())))
    assert [(e.plate, e.frames) for e in events] == [("AB123", 5)] and "boom" in caplog.text


# -- CLI -----------------------------------------------------------------------------------
def test_watch_cli_on_a_folder(tmp_path, capsys):
    from plateread.cli.main import main
    _write_pngs(tmp_path / "cam", two_plates(6))
    annotated = tmp_path / "out.mp4"
    code = main(["watch", "--engine", "fake", "--fps", "5", "--annotate", str(annotated),
                 "--start-time", "2024-05-01T12:00:00Z", str(tmp_path / "cam")])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    events = [json.loads(line) for line in out.splitlines()]
    assert sorted(e["plate"] for e in events) == ["AB123", "XY987"]
    assert events[0]["first_seen"] == "2024-05-01T12:00:00+00:00"
    assert events[0]["last_seen"] == "2024-05-01T12:00:01+00:00"
    cap = cv2.VideoCapture(str(annotated))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    cap.release()


def test_watch_store_option(tmp_path, capsys):
    store_mod = pytest.importorskip("plateread.store", reason="plateread.store not written yet")
    from plateread.cli.main import main
    _write_pngs(tmp_path / "cam", two_plates(4))
    code = main(["watch", "--engine", "fake", "--store", "--db", f"sqlite:///{tmp_path / 'ev.db'}",
                 "--media", str(tmp_path / "media"), str(tmp_path / "cam")])
    assert code == 0 and len(capsys.readouterr().out.splitlines()) == 2
    assert store_mod is not None


def test_watch_help():
    out = subprocess.run([sys.executable, "-m", "plateread.cli.main", "watch", "--help"],
                         capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert "usage: plateread watch" in out and "--track-timeout" in out


def test_file_times_default_to_processing_start(tmp_path, reader):
    """Stored events from files must sort and expire (retention) like live ones, not at 1970."""
    import time as _time

    _write_pngs(tmp_path / "frames", two_plates(4))
    before = _time.time()
    events = list(watch(tmp_path / "frames", reader, fps=10))
    assert events and all(before - 1 <= e.first_seen.timestamp() <= _time.time() + 1 for e in events)
