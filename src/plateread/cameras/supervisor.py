"""One watcher per camera, each in its own threads, none able to stop another.

A camera's watcher (``video.Watcher``: source thread, tracker, fusion) runs in a thread of its
own; an exception ends only that camera, and the watchdog starts it again with backoff. A
watcher that hangs is abandoned and replaced (see ``watchdog``). ``apply`` takes a new list of
cameras (a reload): new names start, missing ones stop (their open tracks flushed), changed ones
restart, and unchanged ones are not touched at all.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..video.events import VehicleEvent
from ..video.pipeline import Watcher
from ..video.sources import redact
from .config import CameraConfig, WatchdogConfig
from .watchdog import Backoff, Watchdog

log = logging.getLogger("plateread.cameras")
COUNTERS = ("frames_in", "frames_processed", "dropped", "skipped", "corrupt", "reconnects", "engine_errors")

ReaderFactory = Callable[[CameraConfig], Any]
EventSink = Callable[[str, VehicleEvent], None]


def _utc(t: float | None) -> dt.datetime | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.timezone.utc)


@dataclass(frozen=True)
class CameraHealth:
    """What the API, the dashboard and /metrics show for one camera (counters since start,
    across its restarts)."""

    name: str
    source: str
    state: str                   # starting, running, waiting (to restart), finished, stopped
    online: bool                 # running and a frame arrived in the last few seconds
    frames_in: int = 0           # frames the source decoded
    frames_processed: int = 0    # frames the engine read
    dropped: int = 0             # live frames replaced by newer ones (the engine was busy)
    skipped: int = 0             # frames left out by max_fps
    corrupt: int = 0
    reconnects: int = 0          # stream reconnect attempts (by the source; failed ones included)
    restarts: int = 0            # watcher restarts by the watchdog after a crash or a stall
    loops: int = 0               # files and folders played again from the start (loop = true)
    engine_errors: int = 0
    events: int = 0
    dropped_events: int = 0      # late events of an abandoned (hung) watcher
    cpu_s: float = 0.0           # CPU time of the camera's threads (engine + decoding)
    last_frame_at: dt.datetime | None = None
    last_event_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("last_frame_at", "last_event_at", "started_at"):
            d[k] = d[k].isoformat() if d[k] else None
        d["cpu_s"] = round(self.cpu_s, 2)
        return d


@dataclass(eq=False)
class _Generation:
    """One run of a camera's watcher; a restart is a new generation."""

    number: int
    stop: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.monotonic)
    watcher: Watcher | None = None
    reader: Any = None
    thread: threading.Thread | None = None
    error: str | None = None
    done: bool = False
    abandoned: bool = False
    reaped: bool = False
    cpu: dict[int, float] = field(default_factory=dict)   # thread ident -> CPU seconds seen


def _thread_cpu(ident: int | None) -> float | None:
    if ident is None:
        return None
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(ident))
    except (OSError, AttributeError, ValueError):
        return None


class CameraRunner:
    """One camera: launches its watcher generations; the watchdog decides when."""

    def __init__(self, config: CameraConfig, make_reader: ReaderFactory, sink: EventSink,
                 online_s: float = 5.0, checkpoint: Path | None = None) -> None:
        self.config, self.make_reader, self.sink, self.online_s = config, make_reader, sink, online_s
        self.checkpoint = checkpoint   # open tracks, so a killed process loses no vehicle in view
        self.name = config.name
        self.state = "starting"
        self.failures = 0
        self.restarts = 0
        self.loops = 0
        self._looping = False
        self.events = 0
        self.dropped_events = 0
        self.error: str | None = None
        self.last_event_at: float | None = None
        self._totals = dict.fromkeys(COUNTERS, 0)
        self._cpu_done = 0.0
        self._gen: _Generation | None = None
        self._number = 0
        self._next_start: float | None = None
        self._lock = threading.Lock()
        self.started_at: float | None = None

    # ---- lifecycle (called by the supervisor and the watchdog) -----------------------------------

    def launch(self) -> None:
        with self._lock:
            if self.state == "stopped":
                return
            if self._gen is not None:
                if self._looping:
                    self.loops += 1
                else:
                    self.restarts += 1
                self._looping = False
            self._number += 1
            prev = self._gen
            gen = _Generation(self._number)
            # a reader is reused unless the last watcher is still inside it (hung): then a fresh one
            if prev is not None and prev.done:
                gen.reader = prev.reader
            self._gen, self._next_start, self.state = gen, None, "running"
            self.started_at = self.started_at or time.time()
        gen.thread = threading.Thread(target=self._run, args=(gen,), name=f"plateread-cam-{self.name}", daemon=True)
        gen.thread.start()

    def _run(self, gen: _Generation) -> None:
        cfg = self.config
        try:
            if gen.reader is None:
                gen.reader = self.make_reader(cfg)
            gen.watcher = Watcher(
                cfg.source, gen.reader, camera=cfg.name, track_timeout=cfg.track_timeout,
                min_frames=cfg.min_frames, min_score=cfg.min_score, fps=cfg.fps, timeout=cfg.timeout,
                stop=gen.stop, max_fps=cfg.max_fps, realtime=cfg.realtime, zone=cfg.zone, min_plate=cfg.min_plate,
                live_buffer=cfg.buffer, checkpoint=self.checkpoint)
            for event in gen.watcher:
                if gen.abandoned:
                    self.dropped_events += 1
                    continue
                self.events += 1
                self.last_event_at = time.time()
                try:
                    self.sink(cfg.name, event)
                except Exception:
                    log.exception("camera %s: event %s could not be handled", cfg.name, event.event_id)
        except Exception as exc:
            gen.error = f"{type(exc).__name__}: {exc}"
            if not gen.abandoned:
                log.error("camera %s: watcher failed: %s", cfg.name, gen.error)
        finally:
            gen.cpu[threading.get_ident()] = time.thread_time()
            gen.done = True

    def sample(self) -> None:
        """Reads the CPU clocks of the current watcher's threads (they vanish when they end)."""
        gen = self._gen
        if gen is None or gen.done:
            return
        src = gen.watcher.source.thread if gen.watcher is not None else None
        for t in (gen.thread, src):
            ident = getattr(t, "ident", None)
            value = _thread_cpu(ident)
            if ident is not None and value is not None:
                gen.cpu[ident] = value

    def _fold(self, gen: _Generation) -> None:
        """Adds a finished generation's counters to the camera's totals."""
        if gen.reaped:
            return
        gen.reaped = True
        for k, v in self._counters(gen).items():
            self._totals[k] += v
        self._cpu_done += sum(gen.cpu.values())

    @staticmethod
    def _counters(gen: _Generation) -> dict[str, int]:
        w = gen.watcher
        if w is None:
            return dict.fromkeys(COUNTERS, 0)
        s = w.source.stats
        return {"frames_in": s.frames, "frames_processed": w.stats.frames, "dropped": w.source.dropped,
                "skipped": w.stats.skipped, "corrupt": s.corrupt, "reconnects": s.reconnects,
                "engine_errors": w.stats.engine_errors}

    def reap(self) -> str | None:
        """'failed' or 'ended' once for a watcher that stopped by itself; 'running' while one runs."""
        gen = self._gen
        if gen is None or self.state in ("stopped", "finished", "waiting"):
            return None
        if not gen.done:
            return "running"
        if gen.reaped:
            return None
        self._fold(gen)
        if gen.error:
            self.failures += 1
            self.error = gen.error
            return "failed"
        return "ended"

    def idle_s(self, now: float) -> float:
        """Seconds since this generation's last frame (or its start, before the first)."""
        gen = self._gen
        if gen is None:
            return 0.0
        last = gen.started
        if gen.watcher is not None:
            last = max(last, gen.watcher.stats.last_frame)
        return now - last

    def uptime_s(self, now: float) -> float:
        return now - self._gen.started if self._gen is not None else 0.0

    def abandon(self, reason: str) -> None:
        """Gives up a stalled watcher: it is told to stop, its source closed, and its late events
        dropped. If it has not ended by the next launch (hung in its engine), the next watcher
        gets a new reader."""
        gen = self._gen
        if gen is None:
            return
        gen.abandoned = True
        gen.stop.set()
        if gen.watcher is not None:
            gen.watcher.source.stop()
        self._fold(gen)
        self.failures += 1
        self.error = reason

    def schedule(self, at: float, *, loop: bool = False) -> None:
        """Starts the next watcher at monotonic time ``at`` (``loop``: a file played again, not a restart)."""
        with self._lock:
            if self.state != "stopped":
                self.state, self._next_start, self._looping = "waiting", at, loop

    def due(self, now: float) -> bool:
        return self.state == "waiting" and self._next_start is not None and now >= self._next_start

    def finish(self) -> None:
        self.state = "finished"

    def stop(self) -> threading.Thread | None:
        """Ends the camera: the watcher flushes its open tracks as events. Returns its thread."""
        with self._lock:
            self.state = "stopped"
            gen = self._gen
        if gen is None:
            return None
        gen.stop.set()
        return gen.thread

    # ---- health --------------------------------------------------------------------------------

    def health(self) -> CameraHealth:
        gen = self._gen
        totals = dict(self._totals)
        cpu = self._cpu_done
        last_frame = None
        if gen is not None and not gen.reaped:
            for k, v in self._counters(gen).items():
                totals[k] += v
            cpu += sum(gen.cpu.values())
        if gen is not None and gen.watcher is not None and gen.watcher.stats.frames + gen.watcher.stats.skipped:
            last_frame = time.time() - (time.monotonic() - gen.watcher.stats.last_frame)
        online = (self.state == "running" and gen is not None and not gen.done and last_frame is not None
                  and time.time() - last_frame < self.online_s)
        return CameraHealth(
            name=self.name, source=redact(self.config.source), state=self.state, online=online, **totals,
            restarts=self.restarts, loops=self.loops, events=self.events, dropped_events=self.dropped_events,
            cpu_s=cpu,
            last_frame_at=_utc(last_frame), last_event_at=_utc(self.last_event_at), started_at=_utc(self.started_at),
            error=self.error)


@dataclass(frozen=True)
class ReloadReport:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    restarted: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in asdict(self).items()}


class Supervisor:
    """The cameras of a service and their watchdog."""

    def __init__(self, make_reader: ReaderFactory, sink: EventSink, watchdog: WatchdogConfig | None = None,
                 *, online_s: float = 5.0, stop_timeout_s: float = 10.0, checkpoints: Path | None = None) -> None:
        watchdog = watchdog or WatchdogConfig()
        self.checkpoints = checkpoints
        self.make_reader, self.sink, self.online_s, self.stop_timeout_s = make_reader, sink, online_s, stop_timeout_s
        self.runners: dict[str, CameraRunner] = {}
        self._lock = threading.Lock()
        self.watchdog = Watchdog(lambda: list(self.runners.values()), watchdog.stall_s,
                                 Backoff(watchdog.restart_min_s, watchdog.restart_max_s))
        self._started = False

    def start(self, cameras: Sequence[CameraConfig] = ()) -> ReloadReport:
        report = self.apply(cameras)
        self.watchdog.start()
        self._started = True
        return report

    def _add(self, cfg: CameraConfig) -> None:
        runner = CameraRunner(cfg, self.make_reader, self.sink, self.online_s,
                              self.checkpoints / f"{cfg.name}.json" if self.checkpoints is not None else None)
        self.runners[cfg.name] = runner
        runner.launch()

    def _remove(self, names: Sequence[str]) -> None:
        threads = [t for n in names if (t := self.runners.pop(n).stop()) is not None]
        end = time.monotonic() + self.stop_timeout_s
        for t in threads:   # flushing its tracks stores their events; bounded, a hung one is left behind
            t.join(max(0.0, end - time.monotonic()))

    def apply(self, cameras: Sequence[CameraConfig]) -> ReloadReport:
        """Makes the running cameras those of ``cameras``, touching only what changed."""
        with self._lock:
            wanted = {c.name: c for c in cameras}
            removed = [n for n in self.runners if n not in wanted]
            changed = [n for n, c in wanted.items() if n in self.runners and self.runners[n].config != c]
            added = [n for n in wanted if n not in self.runners]
            unchanged = [n for n in wanted if n in self.runners and n not in changed]
            self._remove(removed + changed)
            for n in changed + added:
                self._add(wanted[n])
        if removed or changed or added:
            log.info("cameras: added %s, removed %s, restarted %s", added or "-", removed or "-", changed or "-")
        return ReloadReport(tuple(added), tuple(removed), tuple(changed), tuple(unchanged))

    def health(self) -> list[CameraHealth]:
        return [r.health() for r in sorted(self.runners.values(), key=lambda r: r.name)]

    def names(self) -> list[str]:
        return sorted(self.runners)

    def stop(self) -> None:
        """Stops every camera (open tracks flushed and handed to the sink) and the watchdog."""
        self.watchdog.stop()
        with self._lock:
            self._remove(list(self.runners))
