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


def draw_plate(img: np.ndarray, text: str, x: int, y: int) -> None:
    """A bright plate with one grey block per character (level = 20 + 5 × index): flat 10 px
    blocks keep their level through JPEG, unlike fakes' pixel code."""
    pw = 2 * MARGIN + BLOCK * max(len(text), 6)
    img[y:y + PH, x:x + pw] = 255
    for i, ch in enumerate(text):
        x0 = x + MARGIN + i * BLOCK
        img[y + 7:y + 17, x0:x0 + BLOCK] = 20 + 5 * CHARSET.index(ch)


def decode_blocks(crop: np.ndarray) -> str:
    g = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    h, w = g.shape[:2]
    cy, out = h // 2, []
    for i in range(12):
        cx = MARGIN + i * BLOCK + BLOCK // 2
        if cx + 2 > w - MARGIN:
            break
        v = float(g[cy - 2:cy + 2, cx - 2:cx + 2].mean())
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


class MjpegCamera:
    """A live camera on 127.0.0.1: plays ``frames`` at ``fps`` in a loop to every client.
    ``hang()`` keeps connections open but sends nothing; ``break_stream()`` closes them and
    refuses new ones until ``resume()``."""

    def __init__(self, frames: Sequence[bytes], fps: float = 10.0, port: int = 0) -> None:
        self.frames, self.fps = list(frames), fps
        self.hung = threading.Event()
        self.broken = threading.Event()
        self.sent = 0
        cam = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if cam.broken.is_set():
                    self.send_error(503)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=f")
                self.end_headers()
                start, i = time.monotonic(), 0
                try:
                    while not cam.broken.is_set():
                        if cam.hung.is_set():
                            time.sleep(0.05)
                            start, i = time.monotonic(), 0
                            continue
                        delay = start + i / cam.fps - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                        data = cam.frames[cam.sent % len(cam.frames)]
                        self.wfile.write(b"--f\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                         % len(data) + data + b"\r\n")
                        cam.sent += 1
                        i += 1
                except OSError:
                    pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cam.mjpg"

    def hang(self) -> None:
        self.hung.set()

    def break_stream(self) -> None:
        self.broken.set()

    def resume(self) -> None:
        self.hung.clear()
        self.broken.clear()

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
