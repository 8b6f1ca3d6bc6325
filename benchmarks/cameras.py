"""Cameras as a service: four recorded clips played live at once through `plateread serve --config`.

    python benchmarks/cameras.py [--data ../shared/data] [--cameras 4] [--clips N] [--engine NAME]
                                 [--no-alone] [--json]

The nl-clips dev split (640×480, 12 fps) is dealt round-robin to four cameras; each camera's clips
are joined with 2 s of grey between them and served as a live MJPEG stream on 127.0.0.1 at the
clips' frame rate, played once. A real server subprocess runs the four cameras, with every listed
plate on the watchlist, a webhook receiver and a Mosquitto broker (Debian's) as alert targets.
Reported: events of the four-at-once run against (a) each clip read alone from its file (complete,
no frame lost) and (b) each camera's stream served alone; frames sent / received / processed /
dropped per camera; CPU per camera (its engine and decoding threads) and of the whole server; and
the time from a plate leaving the view (the event's last_seen: the wall-clock time its last frame
was decoded) to its alert at the webhook and at the broker, p50 / p95. That time includes the
tracker's 1 s track timeout: a vehicle counts as gone only when unseen that long. Prints markdown.
"""
from __future__ import annotations

import argparse
import collections
import http.server
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from camfakes import Broker, Subscriber, WebhookReceiver, free_port  # noqa: E402  (the tests' real servers)
from report import DEFAULT_DATA, REPO  # noqa: E402
from serve_load import process_cpu_s  # noqa: E402

from plateread.reader import DEFAULT_ENGINE, Reader  # noqa: E402
from plateread.text import normalize_plate  # noqa: E402
from plateread.video import Watcher  # noqa: E402

GAP_S = 2.0
SECRET = "bench"


def dev_clips(data: Path, limit: int | None) -> list[dict]:
    rows = [json.loads(x) for x in (data / "nl-clips" / "index.jsonl").read_text().splitlines() if x]
    rows = [r for r in rows if r.get("split") == "dev"]
    return rows[:limit] if limit else rows


def stream_frames(paths: list[Path]) -> tuple[list[bytes], float]:
    """The clips one after another as JPEGs, each followed by GAP_S of grey."""
    out: list[bytes] = []
    fps = cv2.VideoCapture(str(paths[0])).get(cv2.CAP_PROP_FPS) or 12.0
    grey = None
    for p in paths:
        cap = cv2.VideoCapture(str(p))
        while True:
            ok, f = cap.read()
            if not ok:
                break
            out.append(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
            grey = grey or cv2.imencode(".jpg", np.full_like(f, 90), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
        cap.release()
        out += [grey] * int(GAP_S * fps)
    return out, fps


class OnceCamera:
    """Plays its frames once, at ``fps``, to the first client; later clients get 503."""

    def __init__(self, frames: list[bytes], fps: float) -> None:
        self.frames, self.fps, self.sent = frames, fps, 0
        self.started = self.finished = None
        cam = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if cam.started is not None:
                    self.send_error(503)
                    return
                cam.started = time.monotonic()
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=f")
                self.end_headers()
                try:
                    for i, data in enumerate(cam.frames):
                        delay = cam.started + i / cam.fps - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                        self.wfile.write(b"--f\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                         % len(data) + data + b"\r\n")
                        cam.sent += 1
                except OSError:
                    pass
                cam.finished = time.monotonic()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/live.mjpg"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve(tmp: Path, cams: dict[str, OnceCamera], engine: str, watch: list[str], hook: str, mqtt_port: int,
          tail_s: float, buffer: int = 1) -> dict:
    """Runs `plateread serve --config` over ``cams`` until every stream was played, plus ``tail_s``."""
    port, db = free_port(), tmp / f"run{len(list(tmp.glob('run*')))}"
    db.mkdir()
    cameras = "".join(f'\n[[camera]]\nname = "{n}"\nsource = "{c.url}"\nbuffer = {buffer}\n'
                      for n, c in cams.items())
    watchlist = "".join(f'\n[[watchlist]]\nplate = "{p}"\n' for p in watch)
    conf = db / "plateread.toml"
    conf.write_text(f"""[server]\nport = {port}\nworkers = 1\nlog_level = "warning"\n
[store]\ndb = "{db / 'reads.db'}"\n[engine]\nname = "{engine}"\n[watchdog]\nstall_s = 60\n
[alerts]\nretry_min_s = 0.2\nretry_max_s = 2\n[[alerts.webhook]]\nname = "bench"\nurl = "{hook}"\nsecret = "{SECRET}"
[alerts.mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\n{watchlist}{cameras}""")
    log = open(db / "server.log", "w")
    env = {**os.environ, "XDG_DATA_HOME": str(db / "xdg")}
    proc = subprocess.Popen([sys.executable, "-m", "plateread", "serve", "--config", str(conf)], stdout=log,
                            stderr=subprocess.STDOUT, env=env, cwd=REPO)
    import httpx

    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            if proc.poll() is not None:
                raise RuntimeError((db / "server.log").read_text()) from None
        time.sleep(0.2)
    token = re.search(r"^\s{4}([0-9a-f]{40})$", (db / "server.log").read_text(), re.M).group(1)
    cpu0, t0 = process_cpu_s(proc.pid), time.monotonic()
    while any(c.finished is None for c in cams.values()):
        time.sleep(0.2)
    time.sleep(tail_s)
    wall, cpu = time.monotonic() - t0, process_cpu_s(proc.pid) - cpu0
    health = {c["name"]: c["health"] for c in httpx.get(url + "/api/cameras", timeout=10,
                                                        headers={"Authorization": f"Token {token}"}).json()
              if c["health"]}
    proc.terminate()
    proc.wait(60)
    log.close()
    from plateread.store import Store

    with Store.open(f"sqlite:///{db / 'reads.db'}", db / "media") as store:
        reads = store.query(limit=None, kind="event")
    events = collections.defaultdict(list)
    for r in reads:
        events[r.camera].append(r.plate)
    # a vehicle split into two events: the same text on the same camera within 3 s (gap between them)
    splits = []
    by = collections.defaultdict(list)
    for r in sorted(reads, key=lambda r: r.first_seen):
        prev = by[(r.camera, r.plate)]
        if prev and (r.first_seen - prev[-1].last_seen).total_seconds() < 3.0:
            splits.append((r.camera, r.plate, round((r.first_seen - prev[-1].last_seen).total_seconds(), 2),
                           prev[-1].frames, r.frames))
        prev.append(r)
    return {"health": health, "events": dict(events), "wall_s": wall, "server_cpu_s": cpu, "splits": splits}


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--engine", default=DEFAULT_ENGINE)
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--clips", type=int, help="only the first N dev clips")
    ap.add_argument("--no-alone", action="store_true", help="skip serving each camera's stream alone")
    ap.add_argument("--buffer", type=int, default=4, help="the cameras' live buffer, frames (default 4, the "
                    "service's default)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", type=Path, metavar="DIR", help="keep the servers' configs, logs and stores here")
    args = ap.parse_args()
    if not (args.data / "nl-clips" / "index.jsonl").exists():
        print(f"no nl-clips under {args.data}", file=sys.stderr)
        return 1
    clips = dev_clips(args.data, args.clips)
    groups = {f"cam{i + 1}": clips[i::args.cameras] for i in range(args.cameras)}
    listed = sorted({normalize_plate(p["text"]) for c in clips for p in c["plates"] if p.get("text")})
    report: dict = {"engine": args.engine, "load_before": [round(x, 2) for x in os.getloadavg()],
                    "clips": len(clips), "cameras": {}}

    reader = Reader(args.engine)                   # (a) every clip alone, from its file: nothing dropped
    file_events: dict[str, list[str]] = {}
    for name, group in groups.items():
        file_events[name] = [e.plate for c in group
                             for e in Watcher(args.data / "nl-clips" / c["video"], reader, camera=name)]
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=args.keep))
        streams = {n: stream_frames([args.data / "nl-clips" / c["video"] for c in g]) for n, g in groups.items()}
        rec, broker = WebhookReceiver(), Broker(tmp / "mqtt")
        sub = Subscriber(broker.port)
        try:
            alone: dict[str, dict] = {}
            if not args.no_alone:                  # (b) each camera's stream alone
                for name, (frames, fps) in streams.items():
                    cam = OnceCamera(frames, fps)
                    alone[name] = serve(tmp, {name: cam}, args.engine, listed, rec.url, broker.port, 3.0,
                                        args.buffer)
                    cam.close()
            rec.received.clear()
            sub.messages.clear()
            cams = {n: OnceCamera(f, fps) for n, (f, fps) in streams.items()}
            together = serve(tmp, cams, args.engine, listed, rec.url, broker.port, 3.0, args.buffer)
            sent = {n: c.sent for n, c in cams.items()}
            for c in cams.values():
                c.close()
            time.sleep(1.0)
        finally:
            rec.close()
            sub.close()
            broker.close()
    hooks = [(d.payload, d.at) for d in rec.received]
    hook_lat = [t - _ts(p["last_seen"]) for p, t in hooks if p.get("type") == "watchlist_hit"]
    mqtt_lat = [t - _ts(json.loads(m)["last_seen"]) for _topic, m, _retained, t in sub.on("plateread/alerts")]
    for name in groups:
        h = together["health"].get(name, {})
        tog = sorted(together["events"].get(name, []))
        base = sorted(file_events[name])
        lost = collections.Counter(base) - collections.Counter(tog)
        extra = collections.Counter(tog) - collections.Counter(base)
        labels = [normalize_plate(p["text"]) for c in groups[name] for p in c["plates"] if p.get("text")]
        report["cameras"][name] = {
            "clips": len(groups[name]), "listed": len(labels), "sent": sent[name], "received": h.get("frames_in"),
            "processed": h.get("frames_processed"), "dropped": h.get("dropped"), "cpu_s": h.get("cpu_s"),
            "events_file": base, "events_alone": sorted(alone.get(name, {}).get("events", {}).get(name, [])),
            "events_together": tog, "lost_vs_file": sorted(lost.elements()),
            "extra_vs_file": sorted(extra.elements()),
            "found_together": sum(lab in tog for lab in labels), "found_file": sum(lab in base for lab in labels),
            "alone_dropped": alone.get(name, {}).get("health", {}).get(name, {}).get("dropped")}
    report["together"] = {"wall_s": round(together["wall_s"], 1), "server_cpu_s": round(together["server_cpu_s"], 1)}
    report["latency"] = {"webhook": {"n": len(hook_lat), "p50": pct(hook_lat, 0.5), "p95": pct(hook_lat, 0.95)},
                         "mqtt": {"n": len(mqtt_lat), "p50": pct(mqtt_lat, 0.5), "p95": pct(mqtt_lat, 0.95)}}
    report["load_after"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"Engine `{args.engine}`, {report['clips']} nl-clips dev clips (640×480, 12 fps) on "
          f"{args.cameras} cameras, live buffer {args.buffer} frame(s); load average before {report['load_before']}, "
          f"after {report['load_after']}.\n")
    print("| camera | clips | listed plates | frames sent | received | processed | dropped | CPU s (% of a core) "
          "| events: file alone | stream alone | all at once | listed found (file / together) | lost vs file "
          "| extra vs file |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    wall = together["wall_s"]
    for name, c in report["cameras"].items():
        cpu = f"{c['cpu_s']:.1f} ({100 * c['cpu_s'] / wall:.0f}%)" if c["cpu_s"] is not None else "–"
        alone_n = len(c["events_alone"]) if not args.no_alone else "–"
        print(f"| {name} | {c['clips']} | {c['listed']} | {c['sent']} | {c['received']} | {c['processed']} | "
              f"{c['dropped']} | {cpu} | {len(c['events_file'])} | {alone_n} | {len(c['events_together'])} | "
              f"{c['found_file']} / {c['found_together']} | {' '.join(c['lost_vs_file']) or 'none'} | "
              f"{' '.join(c['extra_vs_file']) or 'none'} |")
    tot = lambda k: sum(len(c[k]) for c in report["cameras"].values())  # noqa: E731
    print(f"| **all** | {report['clips']} | {sum(c['listed'] for c in report['cameras'].values())} | "
          f"{sum(c['sent'] for c in report['cameras'].values())} | "
          f"{sum(c['received'] or 0 for c in report['cameras'].values())} | "
          f"{sum(c['processed'] or 0 for c in report['cameras'].values())} | "
          f"{sum(c['dropped'] or 0 for c in report['cameras'].values())} | "
          f"server {together['server_cpu_s']:.1f} s in {wall:.0f} s ({100 * together['server_cpu_s'] / wall:.0f}%) | "
          f"{tot('events_file')} | {tot('events_alone') if not args.no_alone else '–'} | {tot('events_together')} | "
          f"{sum(c['found_file'] for c in report['cameras'].values())} / "
          f"{sum(c['found_together'] for c in report['cameras'].values())} | | |\n")
    if together["splits"]:
        print("Vehicles split into two events in the run at once (camera, text, gap s between them, frames "
              "of each): " + "; ".join(f"{c} {p} {g} s ({a} + {b} frames)" for c, p, g, a, b in together["splits"])
              + ".\n")
    if not args.no_alone:
        print("Dropped frames with each stream served alone: "
              + ", ".join(f"{n} {c['alone_dropped']}" for n, c in report["cameras"].items()) + ".\n")
    print("| plate left the view → alert | alerts | p50 s | p95 s |\n|---|---:|---:|---:|")
    for k, v in report["latency"].items():
        f = lambda x: f"{x:.2f}" if x is not None else "–"  # noqa: E731
        print(f"| {k} | {v['n']} | {f(v['p50'])} | {f(v['p95'])} |")
    return 0


def _ts(iso: str) -> float:
    import datetime as dt
    return dt.datetime.fromisoformat(iso).timestamp()


if __name__ == "__main__":
    sys.exit(main())
