"""Delivering the outbox: one worker thread per target sends its due rows, oldest first, and
marks each delivered or schedules a retry with exponential backoff.

At least once: a row is marked delivered only after the target acknowledged it (HTTP 2xx, MQTT
PUBACK), so a crash between sending and marking sends it again on the next start; receivers drop
the duplicate by its key. A failure holds the whole target back (growing with consecutive
failures), so a receiver that is down for an hour costs one attempt per backoff step, not one per
waiting alert. Rows still failing after ``give_up_after_s`` are marked dead and shown as such.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

from ..store import OutboxRow, Store, StoreError

log = logging.getLogger("plateread.alerts")


class DeliveryError(Exception):
    """A target did not take a message. ``retry_after`` (s) is the receiver's own wish;
    ``permanent`` gives the row up (e.g. HTTP 410 Gone)."""

    def __init__(self, message: str, *, retry_after: float | None = None, permanent: bool = False) -> None:
        super().__init__(message)
        self.retry_after, self.permanent = retry_after, permanent


class Sender(Protocol):
    """One delivery target. ``send`` returns once the target acknowledged, else raises DeliveryError."""

    name: str

    def start(self) -> None: ...

    def send(self, row: OutboxRow) -> None: ...

    def close(self) -> None: ...


def message_body(row: OutboxRow) -> bytes:
    """The bytes a target receives: the stored payload plus the read's id, compact, keys sorted."""
    return json.dumps({**row.payload, "read_id": row.read_id}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


@dataclass(frozen=True)
class RetryPolicy:
    min_s: float = 1.0
    max_s: float = 300.0
    give_up_after_s: float = 3 * 86400.0

    def delay(self, failures: int) -> float:
        """Seconds before the next attempt after ``failures`` in a row (±10% jitter, so targets
        that failed together do not retry in lockstep)."""
        base = min(self.max_s, self.min_s * 2 ** max(0, min(failures - 1, 30)))
        return base * random.uniform(0.9, 1.1)


@dataclass
class TargetStats:
    delivered: int = 0
    failed: int = 0            # attempts that failed (each retry counts)
    dead: int = 0
    last_error: str | None = None
    last_delivered: dt.datetime | None = None
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=1000))  # event stored → acknowledged, s


class OutboxWorker:
    """Sends one target's rows in a thread of its own (a slow webhook never delays MQTT)."""

    def __init__(self, store: Store, sender: Sender, policy: RetryPolicy = RetryPolicy(), *,
                 batch: int = 50, poll_s: float = 1.0) -> None:
        self.store, self.sender, self.policy = store, sender, policy
        self.batch, self.poll_s = batch, poll_s
        self.stats = TargetStats()
        self._wake, self._stop = threading.Event(), threading.Event()
        self._idle = threading.Event()
        self._failures = 0
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self.sender.name

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"plateread-outbox-{self.name}", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """New rows were written: look now instead of at the next poll."""
        self._idle.clear()
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        try:
            self.sender.close()
        except Exception as exc:  # pragma: no cover - closing is best effort
            log.warning("%s: close: %s", self.name, exc)

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing due is left (or the target is backing off after a failure)."""
        return self._idle.wait(timeout)

    def _run(self) -> None:
        try:
            self.sender.start()
        except Exception as exc:
            log.error("%s: cannot start: %s", self.name, exc)
        while not self._stop.is_set():
            self._wake.clear()
            try:
                hold = self.deliver_due()
            except StoreError as exc:   # the database is away: try again shortly
                log.warning("%s: outbox: %s", self.name, exc)
                hold = self.poll_s
            if hold is None:             # a full batch went out: there may be more
                continue
            self._idle.set()
            self._wake.wait(hold)

    def deliver_due(self) -> float | None:
        """Sends the due rows. Returns None when a full batch was sent (call again at once), else
        how long to wait: the poll interval, or the target's backoff after a failure."""
        rows = self.store.outbox_due(self.name, self.batch)
        for row in rows:
            if self._stop.is_set():
                return 0.0
            try:
                self.sender.send(row)
            except DeliveryError as exc:
                return self._failed(row, exc)
            except Exception as exc:  # a sender bug must not kill delivery
                return self._failed(row, DeliveryError(f"{type(exc).__name__}: {exc}"))
            now = dt.datetime.now(dt.timezone.utc)
            self.store.outbox_delivered(row.id, now)
            self._failures = 0
            self.stats.delivered += 1
            self.stats.last_delivered = now
            self.stats.latencies.append((now - row.created_at).total_seconds())
        return None if len(rows) == self.batch else self.poll_s

    def _failed(self, row: OutboxRow, exc: DeliveryError) -> float:
        self._failures += 1
        now = dt.datetime.now(dt.timezone.utc)
        age = (now - row.created_at).total_seconds()
        dead = exc.permanent or age > self.policy.give_up_after_s
        delay = max(self.policy.delay(row.attempts + 1), exc.retry_after or 0.0)
        self.store.outbox_failed(row.id, str(exc), now + dt.timedelta(seconds=delay), dead=dead)
        self.stats.failed += 1
        self.stats.dead += dead
        self.stats.last_error = str(exc)
        log.warning("%s: alert %s not delivered (attempt %d): %s%s", self.name, row.key, row.attempts + 1, exc,
                    "; giving it up" if dead else f"; retrying in {delay:.1f} s")
        return max(self.policy.delay(self._failures), exc.retry_after or 0.0)


class Dispatcher:
    """The workers of every configured target; ``notify`` after writing outbox rows."""

    def __init__(self, store: Store, senders: Sequence[Sender] = (), policy: RetryPolicy = RetryPolicy(),
                 poll_s: float = 1.0) -> None:
        self.store, self.policy, self.poll_s = store, policy, poll_s
        self._lock = threading.Lock()
        self.workers: dict[str, OutboxWorker] = {}
        self._senders = list(senders)
        self._started = False

    @property
    def targets(self) -> list[str]:
        return sorted(self.workers) if self._started else [s.name for s in self._senders]

    def start(self) -> None:
        with self._lock:
            for sender in self._senders:
                self._start(sender)
            self._started = True

    def _start(self, sender: Sender) -> None:
        worker = OutboxWorker(self.store, sender, self.policy, poll_s=self.poll_s)
        self.workers[sender.name] = worker
        worker.start()

    def replace(self, senders: Sequence[Sender]) -> None:
        """Stops the workers of targets that are gone or changed and starts the new ones; senders
        with the same name and configuration (``same_as``) keep their worker."""
        with self._lock:
            wanted = {s.name: s for s in senders}
            for name, worker in list(self.workers.items()):
                new = wanted.get(name)
                if new is not None and getattr(worker.sender, "config", None) == getattr(new, "config", object()):
                    wanted.pop(name)
                    continue
                worker.stop()
                del self.workers[name]
            for sender in wanted.values():
                self._start(sender)
            self._senders = [w.sender for w in self.workers.values()]

    def sender(self, name: str) -> Any:
        worker = self.workers.get(name)
        return worker.sender if worker is not None else None

    def notify(self) -> None:
        for worker in list(self.workers.values()):
            worker.wake()

    def drain(self, timeout: float) -> None:
        """Gives the workers up to ``timeout`` s to send what is due (at shutdown)."""
        end = time.monotonic() + timeout
        self.notify()
        time.sleep(0.05)
        for worker in list(self.workers.values()):
            worker.wait_idle(max(0.0, end - time.monotonic()))

    def stop(self) -> None:
        with self._lock:
            for worker in self.workers.values():
                worker.stop()
            self.workers.clear()
            self._started = False
