"""SIGKILL of a watcher: how many seconds of vehicles are lost, with and without track checkpoints.

    python benchmarks/kill_watch.py [--data ../shared/data] [--kills 8] [--clips N] [--engine NAME]
                                    [--restart-s 0] [--seed 1] [--json]

The nl-clips dev split is joined into one live MJPEG camera on 127.0.0.1 (2 s of grey between
clips) that plays in wall-clock time whether anyone watches or not, as a real camera does.
`plateread watch URL --store` runs on it; --kills times, spread over the stream with a seeded
jitter, it is SIGKILLed and started again after --restart-s (systemd's Restart=always,
RestartSec=0). The same kill times are replayed twice: with the default track checkpoint and
with --no-checkpoint. Reference: the plates that each clip's file gives when read alone, with no
frame lost. Reported per mode: reference vehicles stored / lost / stored twice, the events the
store holds and, per kill, the blind time from the kill to the restarted watcher's first frame
(model loading included), which bounds what any restart can lose. Asserts nothing.
"""
from __future__ import annotations

import argparse
import collections
import http.server
import json
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cameras import dev_clips, stream_frames  # noqa: E402
from report import DEFAULT_DATA, REPO  # noqa: E402

from plateread.reader import DEFAULT_ENGINE, Reader  # noqa: E402
from plateread.store import Store  # noqa: E402
from plateread.video import Watcher  # noqa: E402


class WallClockCamera:
    """Frame i is on air from start + i / fps, for every client connected then; a client that
    connects late starts at the current frame. Keeps the time of each new connection."""

    def __init__(self, frames: list[bytes], fps: float) -> None:
        self.frames, self.fps = frames, fps
        self.start = time.monotonic()
        self.connects: list[float] = []
        cam = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                cam.connects.append(time.monotonic())
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=f")
                self.end_headers()
                last = -1
                try:
                    while True:
                        i = int((time.monotonic() - cam.start) * cam.fps)
                        if i >= len(cam.frames):
                            time.sleep(0.2)      # off air: the connection stays, silent
                            continue
                        if i != last:
                            data = cam.frames[i]
                            self.wfile.write(b"--f\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                             % len(data) + data + b"\r\n")
                            last = i
                        time.sleep(max(0.0, cam.start + (i + 1) / cam.fps - time.monotonic()))
                except OSError:
                    pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/live.mjpg"

    @property
    def duration(self) -> float:
        return len(self.frames) / self.fps

    def restart(self) -> None:
        self.start, self.connects = time.monotonic(), []

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run_mode(cam: WallClockCamera, kills: list[float], engine: str, restart_s: float, checkpoint: bool,
             tmp: Path) -> dict:
    db = f"sqlite:///{tmp / 'reads.db'}"
    cmd = [sys.executable, "-m", "plateread", "watch", cam.url, "--engine", engine, "--camera", "gate", "--store",
           "--db", db, "--media", str(tmp / "media"), "--spool", str(tmp / "spool")]
    if not checkpoint:
        cmd.append("--no-checkpoint")
    logs = open(tmp / "watch.log", "w")

    def spawn() -> subprocess.Popen:
        return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=logs)

    Store.open(db, tmp / "media").close()
    proc = spawn()
    deadline = time.monotonic() + 120
    while not cam.connects and time.monotonic() < deadline:
        time.sleep(0.05)
    cam.restart()                     # the stream starts once the first watcher is connected
    blind = []
    for at in kills:
        time.sleep(max(0.0, cam.start + at - time.monotonic()))
        proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        proc.wait()
        n = len(cam.connects)
        time.sleep(restart_s)
        proc = spawn()
        while len(cam.connects) == n and time.monotonic() < killed + 120:
            time.sleep(0.02)
        # the first frame reaches it at the next frame boundary after connecting
        blind.append(cam.connects[-1] - killed + 1.0 / cam.fps)
    time.sleep(max(0.0, cam.start + cam.duration + 3.0 - time.monotonic()))
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
    logs.close()
    with Store.open(db, tmp / "media") as store:
        reads = store.query(limit=None)
    return {"events": [r.plate for r in reads], "event_ids": len({r.event_id for r in reads}),
            "blind_s": blind, "checkpoint": checkpoint}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--engine", default=DEFAULT_ENGINE)
    ap.add_argument("--clips", type=int, help="only the first N dev clips")
    ap.add_argument("--kills", type=int, default=8)
    ap.add_argument("--restart-s", type=float, default=0.0, help="wait before restarting (default 0)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not (args.data / "nl-clips" / "index.jsonl").exists():
        print(f"no nl-clips under {args.data}", file=sys.stderr)
        return 1
    clips = dev_clips(args.data, args.clips)
    paths = [args.data / "nl-clips" / c["video"] for c in clips]
    reader = Reader(args.engine)
    reference = collections.Counter(e.plate for p in paths for e in Watcher(p, reader))
    frames, fps = stream_frames(paths)
    cam = WallClockCamera(frames, fps)
    rng = random.Random(args.seed)
    span = cam.duration / (args.kills + 1)
    kills = [span * (k + 1) + rng.uniform(-0.4, 0.4) * span for k in range(args.kills)]
    out = {"engine": args.engine, "clips": len(clips), "stream_s": round(cam.duration, 1), "kills": args.kills,
           "restart_s": args.restart_s, "reference_vehicles": sum(reference.values()), "modes": {}}
    try:
        for checkpoint in (True, False):
            with tempfile.TemporaryDirectory() as d:
                r = run_mode(cam, kills, args.engine, args.restart_s, checkpoint, Path(d))
            got = collections.Counter(r["events"])
            lost = reference - got
            twice = {p: n - reference[p] for p, n in got.items() if p in reference and n > reference[p]}
            name = "checkpoint" if checkpoint else "no checkpoint"
            out["modes"][name] = {
                "stored": sum((reference & got).values()), "lost": sorted(lost.elements()),
                "stored_twice": twice, "events_in_store": len(r["events"]),
                "blind_s": [round(b, 2) for b in r["blind_s"]]}
    finally:
        cam.close()
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"{out['clips']} nl-clips dev clips as one live camera ({out['stream_s']} s at {fps:g} fps), engine "
          f"{out['engine']}; {out['kills']} SIGKILLs, restart after {out['restart_s']:g} s. Reference: "
          f"{out['reference_vehicles']} vehicles (each clip's file read alone).\n")
    print("| mode | reference vehicles stored | lost | stored twice | events in store | blind s per kill (p50 / max) |")
    print("|---|---|---|---|---|---|")
    for name, m in out["modes"].items():
        b = sorted(m["blind_s"])
        print(f"| {name} | {m['stored']} / {out['reference_vehicles']} | {len(m['lost'])} "
              f"({', '.join(m['lost']) or '-'}) | {sum(m['stored_twice'].values())} | {m['events_in_store']} | "
              f"{b[len(b) // 2]:.2f} / {b[-1]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
