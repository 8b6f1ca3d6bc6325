"""Video benchmark: tracked + fused events vs reading each frame alone, and throughput.

    python benchmarks/video.py [--data ../shared/data] [--engine NAME] [--clips N] [--json]
                               [--no-speed] [--live-seconds S]

Accuracy on nl-clips (dev split): a listed plate is *found* when an event has its exact text;
events per vehicle counts duplicates; wrong events match no listed plate. Per-frame baseline:
a plate counts as read if any frame reads it exactly; the per-frame majority text and the number
of distinct wrong texts show the noise fusion removes. Throughput: frames per second of the full
pipeline (decoding thread + engine + tracker) on all clips played one after another (2 s of grey
between clips) at 640×480 and upscaled to 1280×720, and the same 1280×720 video served as a live
30 fps camera (a loopback MJPEG server; latest frame wins) with its dropped frames and whether
every event of the complete (no-drop) run still appears live. Prints markdown; asserts
nothing. Time figures only mean something on an idle machine: the load average is printed.
"""
from __future__ import annotations

import argparse
import collections
import http.server
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from plateread.reader import DEFAULT_ENGINE, Reader
from plateread.text import normalize_plate
from plateread.video import PlateTracker, Watcher

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("PLATEREAD_DATA", REPO.parent / "shared" / "data"))


def clips(data: Path, limit: int | None) -> list[dict]:
    rows = [json.loads(line) for line in (data / "nl-clips" / "index.jsonl").read_text().splitlines() if line]
    rows = [r for r in rows if r.get("split") == "dev"]
    return rows[:limit] if limit else rows


def run_clip(reader: Reader, path: Path, fps: float) -> tuple[list, list[list[str]]]:
    """Events of the tracked pipeline and every frame's own reads, from one engine pass."""
    tracker = PlateTracker(reader, camera="bench")
    cap = cv2.VideoCapture(str(path))
    per_frame: list[list[str]] = []
    events = []
    i = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        t = i / fps
        dets = reader.detector.detect(frame)
        reads = tracker._recognize([d.crop for d in dets]) if dets else []
        per_frame.append([normalize_plate(r.text) for r, _ in reads if r.text])
        events += tracker.expire(t) + tracker.observe(frame, t, dets, reads)
        i += 1
    cap.release()
    return events + tracker.flush(), per_frame


def accuracy(reader: Reader, data: Path, limit: int | None) -> dict:
    rows = []
    for clip in clips(data, limit):
        labels = [normalize_plate(p["text"]) for p in clip["plates"] if p.get("text")]
        events, per_frame = run_clip(reader, data / "nl-clips" / clip["video"], clip.get("fps", 12.0))
        texts = [normalize_plate(e.plate) for e in events]
        counts = collections.Counter(t for f in per_frame for t in f)
        majority = counts.most_common(1)[0][0] if counts else ""
        rows.append({
            "clip": Path(clip["video"]).stem, "plates": len(labels), "frames": len(per_frame),
            "found": sum(lab in texts for lab in labels),
            "events": len(events), "wrong_events": sum(t not in labels for t in texts),
            "frame_any": sum(lab in counts for lab in labels),
            "frame_majority": int(majority in labels),
            "frame_reads": sum(counts.values()),
            "frame_wrong_distinct": sum(1 for t in counts if t not in labels),
            "event_texts": texts,
        })
    tot = {k: sum(r[k] for r in rows) for k in ("plates", "found", "events", "wrong_events",
                                                  "frame_any", "frame_majority", "frame_reads",
                                                  "frame_wrong_distinct", "frames")}
    return {"clips": rows, "total": tot}


def concat(srcs: list[Path], dst: Path, size: tuple[int, int], gap_s: float = 2.0) -> float:
    """Writes the clips one after another at ``size`` (MJPG AVI), each followed by ``gap_s`` of
    grey frames so that every vehicle's track ends before the next clip's vehicle arrives."""
    fps = cv2.VideoCapture(str(srcs[0])).get(cv2.CAP_PROP_FPS) or 12.0
    out = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    grey = np.full((size[1], size[0], 3), 90, np.uint8)
    for src in srcs:
        cap = cv2.VideoCapture(str(src))
        while True:
            ok, f = cap.read()
            if not ok:
                break
            out.write(f if (f.shape[1], f.shape[0]) == size else cv2.resize(f, size, interpolation=cv2.INTER_CUBIC))
        cap.release()
        for _ in range(int(gap_s * fps)):
            out.write(grey)
    out.release()
    return fps


def throughput(reader: Reader, path: Path) -> dict:
    w = Watcher(path, reader, camera="bench")
    t = time.perf_counter()
    events = list(w)
    dt = time.perf_counter() - t
    return {"frames": w.stats.frames, "seconds": round(dt, 3),
            "fps": round(w.stats.frames / dt, 1) if dt else 0.0,
            "events": sorted(e.plate for e in events)}


def live(reader: Reader, path: Path, clip_fps: float, seconds_cap: float) -> dict:
    """Serves ``path`` as a 30 fps MJPEG camera on 127.0.0.1 (each clip frame repeated so the
    motion stays real-time) and watches it like a live camera."""
    cap = cv2.VideoCapture(str(path))
    src = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        src.append(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    cap.release()
    n30 = int(len(src) / clip_fps * 30)
    parts = [src[min(len(src) - 1, int(i * clip_fps / 30))] for i in range(n30)]

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=f")
            self.end_headers()
            start = time.perf_counter()
            try:
                for i, data in enumerate(parts):
                    delay = start + i / 30 - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    self.wfile.write(b"--f\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                     % len(data) + data + b"\r\n")
            except OSError:
                pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    stop = threading.Event()
    w = Watcher(f"http://127.0.0.1:{srv.server_address[1]}/", reader, camera="live",
                max_reconnects=0, stop=stop)
    timer = threading.Timer(seconds_cap, stop.set)
    timer.start()
    t = time.perf_counter()
    events = list(w)
    dt = time.perf_counter() - t
    timer.cancel()
    srv.shutdown()
    srv.server_close()
    return {"sent": len(parts), "received": w.source.stats.frames, "processed": w.stats.frames,
            "dropped": w.source.dropped, "seconds": round(dt, 2),
            "events": sorted(e.plate for e in events)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--engine", default=DEFAULT_ENGINE)
    ap.add_argument("--detector-model", help="another detector ONNX (default: the shipped one)")
    ap.add_argument("--ocr-model", help="another first OCR model (default: the shipped one)")
    ap.add_argument("--second-ocr-model", help="another second OCR model ('none': without)")
    ap.add_argument("--clips", type=int, help="only the first N clips")
    ap.add_argument("--no-speed", action="store_true", help="skip the throughput runs")
    ap.add_argument("--live-seconds", type=float, default=300.0, help="cap on the live run")
    ap.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    args = ap.parse_args()
    if not (args.data / "nl-clips" / "index.jsonl").exists():
        print(f"no nl-clips under {args.data}", file=sys.stderr)
        return 1
    models = {"detector_model": args.detector_model, "ocr_model": args.ocr_model, "second_model": args.second_ocr_model}
    reader = Reader(args.engine, **{k: v for k, v in models.items() if v})
    load = os.getloadavg()
    report: dict = {"engine": args.engine, "cpus": os.cpu_count(),
                    "load_before": [round(x, 2) for x in load]}
    report["accuracy"] = accuracy(reader, args.data, args.clips)
    if not args.no_speed:
        paths = [args.data / "nl-clips" / c["video"] for c in clips(args.data, args.clips)]
        with tempfile.TemporaryDirectory() as tmp:
            small, big = Path(tmp) / "all480.avi", Path(tmp) / "all720.avi"
            concat(paths, small, (640, 480))
            fps = concat(paths, big, (1280, 720))
            report["speed"] = {"640x480": throughput(reader, small), "1280x720": throughput(reader, big)}
            lv = live(reader, big, fps, args.live_seconds)
            complete = collections.Counter(report["speed"]["1280x720"]["events"])
            lost = complete - collections.Counter(lv["events"])
            lv["complete_events"] = sum(complete.values())
            lv["lost"] = sorted(lost.elements())
            lv["all_vehicles"] = not lost
            report["live_30fps_1280x720"] = lv
    report["load_after"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    tot = report["accuracy"]["total"]
    print(f"# Video benchmark — engine `{args.engine}`, {report['cpus']} CPUs, "
          f"load avg before {report['load_before']} / after {report['load_after']}\n")
    print("| clip | plates | frames | tracked: found | events | wrong events | per-frame: any frame | "
          "majority right | reads | distinct wrong texts | event texts |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in report["accuracy"]["clips"]:
        print(f"| {r['clip']} | {r['plates']} | {r['frames']} | {r['found']} | {r['events']} | "
              f"{r['wrong_events']} | {r['frame_any']} | {r['frame_majority']} | {r['frame_reads']} | "
              f"{r['frame_wrong_distinct']} | {' '.join(r['event_texts'])} |")
    n = max(1, tot["plates"])
    print(f"| **total** | {tot['plates']} | {tot['frames']} | {tot['found']} ({tot['found'] / n:.0%}) | "
          f"{tot['events']} ({tot['events'] / n:.2f}/vehicle) | {tot['wrong_events']} | "
          f"{tot['frame_any']} ({tot['frame_any'] / n:.0%}) | {tot['frame_majority']} | "
          f"{tot['frame_reads']} | {tot['frame_wrong_distinct']} | |\n")
    if "speed" in report:
        print("| input | frames | seconds | frames/s | events |\n|---|---|---|---|---|")
        for k, v in report["speed"].items():
            print(f"| {k} file | {v['frames']} | {v['seconds']} | {v['fps']} | {' '.join(v['events'])} |")
        lv = report["live_30fps_1280x720"]
        print(f"\nLive 1280×720 @ 30 fps (loopback MJPEG, the same concatenated clips): sent {lv['sent']}, "
              f"received {lv['received']}, processed {lv['processed']}, dropped {lv['dropped']}, "
              f"{lv['seconds']} s; {len(lv['events'])} events live vs {lv['complete_events']} in the complete "
              f"run; event texts of the complete run missing live: {' '.join(lv['lost']) or 'none'}; "
              f"every vehicle of the complete run still has an event: {lv['all_vehicles']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
