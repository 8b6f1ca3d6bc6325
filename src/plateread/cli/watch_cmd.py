"""``plateread watch``: one JSON event per vehicle from a video, frame folder, stream or webcam."""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import re
import signal
import sys
import threading
from typing import Any

from .engine_options import add_engine_options, reader_from_args
from .reads_cmd import add_db_options, add_spool_option, open_store


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "watch", help="read plates from a video, frame folder, stream URL or webcam",
        description="Track plates across frames and print one JSON event per vehicle on stdout. "
                    "SOURCE: a video file, a folder of frames, an RTSP/HTTP URL or a webcam index. "
                    "Files are processed completely; live sources drop stale frames and reconnect. "
                    "SIGTERM / Ctrl-C flush every open track before exiting.")
    p.add_argument("source", metavar="SOURCE", help="video file, frame folder, URL or webcam index")
    p.add_argument("--camera", metavar="ID", help="camera id in the events (default: from SOURCE)")
    add_engine_options(p)
    g = p.add_argument_group("tracking")
    g.add_argument("--track-timeout", type=float, default=1.0, metavar="S",
                   help="end a track after S seconds of stream time unseen (default 1.0)")
    g.add_argument("--min-frames", type=int, default=2,
                   help="detections a track needs to become an event (default 2)")
    g.add_argument("--min-score", type=float, default=0.1,
                   help="fused score a track needs to become an event (default 0.1)")
    g.add_argument("--track-high", type=float, default=0.5,
                   help="detection score of the first association stage / new tracks (default 0.5)")
    g.add_argument("--track-low", type=float, default=0.1,
                   help="detections below this score are ignored (default 0.1)")
    s = p.add_argument_group("source")
    s.add_argument("--fps", type=float, help="frame rate for timestamps (frame folders: default 10; "
                                             "files: overrides the file's)")
    s.add_argument("--start-time", metavar="ISO",
                   help="UTC time of a file's first frame (default: when processing starts)")
    s.add_argument("--max-reconnects", type=int, metavar="N",
                   help="live sources: give up after N failed reconnects in a row (default: never)")
    s.add_argument("--timeout", type=float, default=5.0, metavar="S",
                   help="streams: open/read timeout in seconds (default 5)")
    o = p.add_argument_group("output")
    o.add_argument("--annotate", metavar="OUT.mp4", help="write a video with boxes, track ids, texts")
    o.add_argument("--store", action="store_true",
                   help="save each event in the store (through a local journal: a database outage loses nothing)")
    o.add_argument("--checkpoint", metavar="FILE",
                   help="live sources: keep the open tracks in FILE (each second), so a killed watcher's vehicles "
                        "in view are not lost at its next start (default with --store: in the spool folder)")
    o.add_argument("--no-checkpoint", action="store_true", help="keep no checkpoint of open tracks")
    o.add_argument("--status", action=argparse.BooleanOptionalAction, default=None,
                   help="live status line on stderr (default: when stderr is a terminal)")
    add_db_options(p)
    add_spool_option(p)
    p.set_defaults(func=run)


def _start_time(text: str | None) -> float | None:
    if not text:
        return None
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)).timestamp()


def _setup_logging() -> None:
    logger = logging.getLogger("plateread.video")
    if not logger.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("plateread: %(message)s"))
        logger.addHandler(h)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:80] or "camera"


def run(args: argparse.Namespace) -> int:
    from ..video.pipeline import StatusLine, Watcher
    from ..video.sources import default_camera_id

    _setup_logging()
    from ..store.spool import SpooledWriter

    reader = reader_from_args(args)
    store = open_store(args) if args.store else None
    writer = SpooledWriter(store, args.spool, "watch").start() if store is not None else None
    camera = args.camera or default_camera_id(args.source)
    checkpoint = None if args.no_checkpoint else args.checkpoint or (
        writer.journal.dir.parent / "tracks" / f"watch-{_file_safe(camera)}.json" if writer is not None else None)
    stop = threading.Event()
    signals: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        if signals and signum == signal.SIGINT:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        signals.append(signum)
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    watcher = Watcher(args.source, reader, camera=camera, track_timeout=args.track_timeout,
                      min_frames=args.min_frames, min_score=args.min_score, fps=args.fps,
                      start_time=_start_time(args.start_time), max_reconnects=args.max_reconnects,
                      timeout=args.timeout, annotate=args.annotate,
                      status=StatusLine(enabled=args.status), stop=stop,
                      high=args.track_high, low=args.track_low, checkpoint=checkpoint)
    try:
        for event in watcher:
            print(json.dumps(event.to_dict()), flush=True)
            if writer is not None:
                try:
                    writer.add_event(event)
                except Exception as exc:  # the event is on stdout; keep watching
                    logging.getLogger("plateread.video").error("store: %s: %s", type(exc).__name__, exc)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if writer is not None:
            writer.close(timeout=10.0)   # what is still journalled is stored at the next start
        if store is not None:
            store.close()
    src = watcher.source.stats
    if src.corrupt or watcher.source.dropped or watcher.stats.engine_errors:
        print(f"plateread: {watcher.stats.frames} frames, {watcher.stats.events} events, "
              f"{watcher.source.dropped} dropped, {src.corrupt} corrupt, "
              f"{watcher.stats.engine_errors} engine errors", file=sys.stderr)
    return 130 if signal.SIGINT in signals else 0
