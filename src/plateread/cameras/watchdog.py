"""The watchdog: one thread that looks at every camera twice a second, restarts a camera whose
watcher produced no frame for ``stall_s`` seconds (a hung engine, a stream that stays open but
sends nothing, a decoder stuck in a driver), and starts cameras again after a crash, with an
exponential backoff so a camera that keeps failing costs little and logs little.

Threads cannot be killed: a stalled watcher is *abandoned* (told to stop, its source closed, its
late events dropped) and a fresh one takes its place with a fresh reader.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable

if TYPE_CHECKING:
    from .supervisor import CameraRunner

log = logging.getLogger("plateread.cameras")


@dataclass(frozen=True)
class Backoff:
    min_s: float = 1.0
    max_s: float = 60.0

    def delay(self, failures: int) -> float:
        """Seconds before restart number ``failures`` in a row: min, 2×min, 4×min, … capped."""
        return 0.0 if failures <= 0 else min(self.max_s, self.min_s * 2 ** min(failures - 1, 30))


class Watchdog:
    def __init__(self, runners: Callable[[], Iterable["CameraRunner"]], stall_s: float, backoff: Backoff,
                 interval_s: float = 0.5) -> None:
        self.runners, self.stall_s, self.backoff, self.interval_s = runners, stall_s, backoff, interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="plateread-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.tick()

    def tick(self, now: float | None = None) -> None:
        """One look at every camera (tests call it directly)."""
        now = time.monotonic() if now is None else now
        for runner in list(self.runners()):
            try:
                self.check(runner, now)
            except Exception:  # the watchdog itself must never die
                log.exception("watchdog: camera %s", runner.name)

    def check(self, runner: "CameraRunner", now: float) -> None:
        runner.sample()
        outcome = runner.reap()                 # a watcher that ended since the last look
        if outcome == "failed":
            runner.schedule(now + self.backoff.delay(runner.failures))
        elif outcome == "ended":
            if runner.config.loop:
                runner.schedule(now, loop=True)
            else:
                runner.finish()
        elif outcome == "running":
            idle = runner.idle_s(now)
            if idle > self.stall_s:
                log.warning("camera %s: no frame for %.0f s; restarting it", runner.name, idle)
                runner.abandon(f"stalled: no frame for {idle:.0f} s")
                runner.schedule(now + self.backoff.delay(runner.failures))
            elif idle < self.stall_s / 2 and runner.uptime_s(now) > self.stall_s:
                runner.failures = 0             # healthy for a while: the next failure starts the backoff anew
        if runner.due(now):
            runner.launch()
