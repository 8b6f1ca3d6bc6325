"""Test parts for the camera service: plates whose text survives JPEG (for live MJPEG cameras),
a live MJPEG camera on loopback that can hang and break, a webhook receiver that fails its first
deliveries, and a Mosquitto broker. Registers the engine ``fake-blocks`` (fakes' detector + a
recognizer reading the block code)."""
from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

import fakes  # noqa: F401  (the fake detector)
from plateread import registry
from plateread.types import Candidate, Recognition

CHARSET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
BLOCK, MARGIN, PH = 10, 5, 24
H, W = 240, 320


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def draw_plate(img: np.ndarray, text: str, x: int, y: int, scale: float = 1.0) -> None:
    """A bright plate with one grey block per character (level = 20 + 5 × index): flat 10 px
    blocks keep their level through JPEG, unlike fakes' pixel code. ``scale`` draws it bigger or
    smaller (the same plate seen at another resolution)."""
    s = lambda v: round(v * scale)  # noqa: E731
    pw = 2 * MARGIN + BLOCK * max(len(text), 6)
    img[y:y + s(PH), x:x + s(pw)] = 255
    for i, ch in enumerate(text):
        x0 = x + s(MARGIN + i * BLOCK)
        img[y + s(7):y + s(17), x0:x0 + s(BLOCK)] = 20 + 5 * CHARSET.index(ch)


def decode_blocks(crop: np.ndarray) -> str:
    g = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    h, w = g.shape[:2]
    scale = h / PH if abs(h / PH - 1) > 0.2 else 1.0   # a plate drawn (or resized) at another scale
    cy, out = h // 2, []
    r = max(1, round(2 * scale))
    for i in range(12):
        cx = round((MARGIN + i * BLOCK + BLOCK / 2) * scale)
        if cx + r > w - MARGIN * scale:
            break
        v = float(g[cy - r:cy + r, cx - r:cx + r].mean())
        if v > 205:
            break
        out.append(CHARSET[min(len(CHARSET) - 1, max(0, round((v - 20) / 5)))])
    return "".join(out)


class BlockRecognizer:
    name = "blocks"

    def __init__(self, **_: object) -> None:
        pass

    def recognize(self, crops: Sequence[np.ndarray], debug=None) -> list[Recognition]:
        out = []
        for crop in crops:
            text = decode_blocks(crop) or "FAKE1"
            out.append(Recognition(text, 0.8, (Candidate(text, 0.8),), (0.8,) * len(text)))
        return out


registry.register_recognizer("blocks", "camfakes:BlockRecognizer")
registry.register_engine("fake-blocks", "fake", "blocks", "test stand-in for JPEG streams")


def passing(texts: Sequence[str], moving: int = 8, gap: int = 8) -> list[np.ndarray]:
    """Frames of vehicles passing one after another: each plate crosses in ``moving`` frames,
    then ``gap`` empty frames (its track ends) before the next."""
    frames = []
    for text in texts:
        for i in range(moving):
            img = np.full((H, W, 3), 30, np.uint8)
            draw_plate(img, text, 20 + 20 * i, 100)
            frames.append(img)
        frames += [np.full((H, W, 3), 30, np.uint8) for _ in range(gap)]
    return frames


def jpegs(frames: Sequence[np.ndarray], quality: int = 95) -> list[bytes]:
    return [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes() for f in frames]


@dataclass(frozen=True)
class Part:
    """One multipart part of any bytes and content type (garbage, for fault tests)."""

    data: bytes
    content_type: str = "image/jpeg"


@dataclass(frozen=True)
class Stall:
    """In a camera's script: nothing is sent for ``seconds`` (connections stay open), then the
    script goes on — on whichever connection is the newest by then."""

    seconds: float


@dataclass(frozen=True)
class Burst:
    """In a camera's script: ``parts`` sent back to back, unpaced (a backlog flushed after a
    stall, as a camera or the network does)."""

    parts: tuple[bytes, ...]


@dataclass(frozen=True)
class Hangup:
    """In a camera's script: the camera closes the connection (a reboot, a settings change);
    the script goes on on the next one."""


def garbage(kind: str, seed: int = 0, like: bytes | None = None) -> Part:
    """A bad part: 'random' bytes under image/jpeg, a 'truncated' JPEG (half of ``like``), a
    'soi' JPEG start marker followed by junk, or a 'text' part (wrong content type)."""
    rng = np.random.default_rng(seed)
    if kind == "random":
        return Part(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    if kind == "truncated":
        assert like is not None
        return Part(like[:len(like) // 2])
    if kind == "soi":
        return Part(b"\xff\xd8\xff\xe0" + rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
    if kind == "text":
        return Part(b"camera status: ok\r\n", "text/plain")
    raise ValueError(kind)


def _part(part: Part) -> bytes:
    return (b"--f\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (part.content_type.encode(), len(part.data))
            + part.data + b"\r\n")


class MjpegCamera:
    """A live camera on 127.0.0.1 playing a script at ``fps``: JPEG bytes, ``Part``s (any
    content), ``Stall``s, ``Burst``s and ``Hangup``s. ``loop``: the script starts again at its
    end; else the camera keeps its connections open and sends nothing more. The script advances
    only while a client reads it (the newest connection; an older one is closed when a newer one
    comes), so a reconnecting watcher misses nothing but what was in flight. ``log`` says when
    connections opened and ended (for a failing test's message).

    ``hang()`` keeps connections open but sends nothing; ``break_stream()`` closes them and
    refuses new ones until ``resume()``; ``go_away()`` closes the server itself (connections
    refused) and ``come_back()`` starts it again on the same port, optionally with a new script.
    """

    def __init__(self, frames: Sequence[bytes | Part | Stall | Burst | Hangup], fps: float = 10.0, port: int = 0,
                 loop: bool = True) -> None:
        self.frames, self.fps, self.loop = list(frames), fps, loop
        self.hung = threading.Event()
        self.broken = threading.Event()
        self.lock = threading.Lock()
        self.sent = 0                     # script position
        self.connections = 0              # connections accepted so far (the newest is served)
        self.stalls: list[tuple[float, float]] = []   # (start, end) of each Stall, time.monotonic()
        self.log: list[tuple[float, int, str, int]] = []  # (time.monotonic(), connection, what, position)
        self._stall: tuple[int, float] | None = None  # (script position, end) of the one running
        cam = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if cam.broken.is_set():
                    self.send_error(503)
                    return
                with cam.lock:
                    cam.connections += 1
                    me = cam.connections
                    cam.log.append((time.monotonic(), me, "open", cam.sent))
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=f")
                self.end_headers()
                live = lambda: not cam.broken.is_set() and me == cam.connections  # noqa: E731
                start, i = time.monotonic(), 0
                try:
                    while live():
                        pos, item = cam._at()
                        if cam.hung.is_set() or item is None:
                            time.sleep(0.05)
                            start, i = time.monotonic(), 0
                            continue
                        if isinstance(item, Stall):
                            cam._stall_at(pos, item)
                            start, i = time.monotonic(), 0
                            continue
                        if isinstance(item, Burst):
                            self.wfile.write(b"".join(_part(Part(p)) for p in item.parts))
                            with cam.lock:
                                cam.sent = max(cam.sent, pos + 1)
                            start, i = time.monotonic(), 0
                            continue
                        if isinstance(item, Hangup):
                            with cam.lock:
                                cam.sent = max(cam.sent, pos + 1)
                            cam.log.append((time.monotonic(), me, "hung up", pos + 1))
                            return
                        delay = start + i / cam.fps - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                        if not live():
                            break
                        self.wfile.write(_part(item if isinstance(item, Part) else Part(item)))
                        with cam.lock:
                            cam.sent = max(cam.sent, pos + 1)
                        i += 1
                except OSError as exc:
                    cam.log.append((time.monotonic(), me, f"closed by the client ({exc})", cam.sent))
                else:
                    cam.log.append((time.monotonic(), me, "ended", cam.sent))

        self._handler = Handler
        self.server = self._serve(port)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/cam.mjpg"

    def _serve(self, port: int) -> http.server.ThreadingHTTPServer:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), self._handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def _at(self) -> tuple[int, bytes | Part | Stall | Burst | Hangup | None]:
        with self.lock:
            pos = self.sent
            if not self.loop and pos >= len(self.frames):
                return pos, None
            return pos, self.frames[pos % len(self.frames)]

    def _stall_at(self, pos: int, stall: Stall) -> None:
        """Waits out the stall at script position ``pos`` (the same one for every connection)."""
        with self.lock:
            if self._stall is None or self._stall[0] != pos:
                self._stall = (pos, time.monotonic() + stall.seconds)
            end = self._stall[1]
        while time.monotonic() < end and not self.broken.is_set():
            time.sleep(0.02)
        with self.lock:
            if self.sent == pos and not self.broken.is_set():
                self.sent = pos + 1
                self.stalls.append((end - stall.seconds, time.monotonic()))

    @property
    def done(self) -> bool:
        """A script played once (``loop=False``) has been sent to the end."""
        with self.lock:
            return not self.loop and self.sent >= len(self.frames)

    def hang(self) -> None:
        self.hung.set()

    def break_stream(self) -> None:
        self.broken.set()

    def resume(self) -> None:
        self.hung.clear()
        self.broken.clear()

    def go_away(self) -> None:
        """The camera's server goes down: connections closed, new ones refused."""
        self.broken.set()
        with self.lock:
            self.connections += 1         # no open connection survives a come_back()
        self.server.shutdown()
        self.server.server_close()

    def come_back(self, frames: Sequence[bytes | Part | Stall | Burst | Hangup] | None = None) -> None:
        """The server is up again on the same port (with a new script, if given)."""
        with self.lock:
            if frames is not None:
                self.frames, self.sent, self._stall = list(frames), 0, None
        self.broken.clear()
        self.server = self._serve(self.port)

    def close(self) -> None:
        self.broken.set()
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Delivery:
    key: str
    timestamp: str
    signature: str
    body: bytes
    at: float

    @property
    def payload(self) -> dict:
        return json.loads(self.body)


class WebhookReceiver:
    """A real HTTP receiver on 127.0.0.1 that answers 503 to its first ``fail_first`` POSTs."""

    def __init__(self, fail_first: int = 0, status: int = 503) -> None:
        self.fail_first, self.status = fail_first, status
        self.attempts = 0
        self.received: list[Delivery] = []
        self.lock = threading.Lock()
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with rec.lock:
                    rec.attempts += 1
                    fail = rec.attempts <= rec.fail_first
                    if not fail:
                        rec.received.append(Delivery(self.headers.get("Idempotency-Key", ""),
                                                     self.headers.get("X-Plateread-Timestamp", ""),
                                                     self.headers.get("X-Plateread-Signature", ""), body,
                                                     time.time()))
                self.send_response(rec.status if fail else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def keys(self) -> list[str]:
        with self.lock:
            return [d.key for d in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


MOSQUITTO = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if os.path.exists(p)), None)


class Broker:
    """Debian's Mosquitto on a free loopback port, anonymous, no persistence."""

    def __init__(self, tmp: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        tmp.mkdir(parents=True, exist_ok=True)
        conf = tmp / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.log = open(tmp / "mosquitto.log", "w")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=self.log, stderr=subprocess.STDOUT)
        end = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                if self.proc.poll() is not None:      # someone else holds the port
                    raise OSError("mosquitto exited")
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > end:
                    raise RuntimeError(f"mosquitto did not start: {(tmp / 'mosquitto.log').read_text()}") from None
                time.sleep(0.05)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@dataclass
class Subscriber:
    """A paho client recording every message on ``#`` (retained ones included)."""

    port: int
    messages: list[tuple[str, bytes, bool, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        import paho.mqtt.client as mqtt

        self.ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *a: (c.subscribe("#", qos=1), self.ready.set())
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload, bool(m.retain), time.time()))
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        assert self.ready.wait(10), "the test subscriber could not connect"
        time.sleep(0.2)

    def on(self, topic: str) -> list[tuple[str, bytes, bool, float]]:
        return [m for m in list(self.messages) if m[0] == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def service_toml(port: int, db: Path, cameras: dict[str, str], *, hook: str | None = None, secret: str = "s3",
                 mqtt_port: int | None = None, watchlist: Sequence[tuple[str, int, str]] = (),
                 track_timeout: float = 0.4, stall_s: float | None = None) -> str:
    """A `serve --config` file for tests and benchmarks: the fake-blocks engine, one worker, a
    SQLite store at ``db``, fast alert retries, optional webhook / MQTT targets, ``watchlist``
    entries (plate, fuzzy, label) and ``cameras`` (name -> stream URL)."""
    parts = [f"""
[server]
port = {port}
workers = 1
log_level = "warning"
[store]
db = "{db}"
media = "{db.parent / 'media'}"
[engine]
name = "fake-blocks"
""", f"[watchdog]\nstall_s = {stall_s}\n" if stall_s is not None else "",
             "[alerts]\nretry_min_s = 0.2\nretry_max_s = 1.0\n"]
    if hook is not None:
        parts.append(f'[[alerts.webhook]]\nname = "ops"\nurl = "{hook}"\nsecret = "{secret}"\n')
    if mqtt_port is not None:
        parts.append(f'[alerts.mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\n')
    parts += [f'[[watchlist]]\nplate = "{p}"\nfuzzy = {f}\nlabel = "{label}"\n' for p, f, label in watchlist]
    parts += [f'[[camera]]\nname = "{n}"\nsource = "{u}"\ntrack_timeout = {track_timeout}\n' for n, u in cameras.items()]
    return "".join(parts)
