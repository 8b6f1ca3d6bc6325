"""Cameras as a service: the supervisor's events go into the store together with their alerts,
and the dispatcher delivers the alerts. ``plateread serve --config`` runs one beside the API.

The event path, per vehicle: the local journal (``store.spool``: so a database outage or a
crash loses nothing) → watchlist match (the store's rule) → the alerts it raises for each
target → one transaction storing the read and its outbox rows → the delivery workers are woken.
So an event is stored with its alerts or not at all, exactly once, and a stored alert is sent
until a target acknowledges it, across restarts.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any, Callable

from ..alerts.matching import alerts_for, watchlist_hits
from ..alerts.mqtt import MqttSender
from ..alerts.outbox import Dispatcher, RetryPolicy, Sender
from ..alerts.webhook import WebhookSender
from ..store import OutboxEntry, Store
from ..store.spool import SpooledWriter
from ..video.events import VehicleEvent
from .config import AlertsConfig, ServiceConfig, load_config
from .supervisor import CameraHealth, ReaderFactory, ReloadReport, Supervisor

log = logging.getLogger("plateread.cameras")


def senders(alerts: AlertsConfig, cameras: list[str]) -> list[Sender]:
    out: list[Sender] = [WebhookSender(w) for w in alerts.webhooks]
    if alerts.mqtt is not None:
        out.append(MqttSender(alerts.mqtt, cameras))
    return out


def policy(alerts: AlertsConfig) -> RetryPolicy:
    return RetryPolicy(alerts.retry_min_s, alerts.retry_max_s, alerts.give_up_after_h * 3600)


class CameraService:
    def __init__(self, config: ServiceConfig, store: Store, make_reader: ReaderFactory, *,
                 on_event: Callable[[], None] | None = None, spool: str | None = None) -> None:
        self.config, self.store = config, store
        self.writer = SpooledWriter(store, spool, "cameras", outbox_for=self._alerts, on_stored=self._stored)
        self.on_event = on_event
        self.dispatcher = Dispatcher(store, senders(config.alerts, [c.name for c in config.cameras]),
                                     policy(config.alerts))
        self.supervisor = Supervisor(make_reader, self._handle, config.watchdog,
                                     checkpoints=self.writer.journal.dir.parent / "tracks")
        self.store_errors = 0
        self.reloads = 0
        self.last_reload: dt.datetime | None = None
        self._reload_lock = threading.Lock()

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._seed_watchlist(self.config)
        self.writer.start()       # first stores what a crash or an outage left in the journal
        self.dispatcher.start()
        self.supervisor.start(self.config.cameras)
        log.info("cameras: %d running; alert targets: %s", len(self.config.cameras),
                 ", ".join(self.dispatcher.targets) or "none")

    def stop(self, drain_s: float = 3.0) -> None:
        """Cameras first (their open tracks become stored events and alerts), then a short chance
        to deliver what is due; what is left is delivered after the next start."""
        self.supervisor.stop()
        self.writer.close(timeout=drain_s)
        self.dispatcher.drain(drain_s)
        self.dispatcher.stop()

    def reload(self) -> ReloadReport:
        """Re-reads the config file: cameras and alert targets follow it; a bad file changes
        nothing (ConfigError). [server], [store] and [engine] changes need a restart."""
        with self._reload_lock:
            new = load_config(self.config.path)
            for section in ("server", "store", "engine"):
                if getattr(new, section) != getattr(self.config, section):
                    log.warning("reload: [%s] changed; it takes effect at the next restart", section)
            self._seed_watchlist(new)
            names = [c.name for c in new.cameras]
            self.dispatcher.replace(senders(new.alerts, names))
            report = self.supervisor.apply(new.cameras)
            mqtt = self.dispatcher.sender("mqtt")
            if isinstance(mqtt, MqttSender):
                mqtt.set_cameras(names)
            self.config = new
            self.reloads += 1
            self.last_reload = dt.datetime.now(dt.timezone.utc)
            return report

    def _seed_watchlist(self, config: ServiceConfig) -> None:
        for w in config.watchlist:
            self.store.watchlist_add(w.plate, fuzzy=w.fuzzy, label=w.label, reason=w.reason)

    # ---- events --------------------------------------------------------------------------------

    def _handle(self, camera: str, event: VehicleEvent) -> None:
        try:
            self.writer.add_event(event)
        except Exception as exc:   # refused as data (never an outage: those are journalled)
            self.store_errors += 1
            log.error("camera %s: event %s (%s) NOT stored: %s", camera, event.event_id, event.plate, exc)

    def _alerts(self, event: VehicleEvent) -> list[OutboxEntry]:
        """Runs when the event is written (the watchlist lives in the database)."""
        hits = watchlist_hits(self.store, event.plate)
        if hits:
            log.info("camera %s: watchlist hit %s (%s)", event.camera, event.plate,
                     ", ".join(w.label or w.plate for w in hits))
        return alerts_for(event, hits, self.config.alerts.targets)

    def _stored(self, _record: dict[str, Any], _ids: list[int]) -> None:
        self.dispatcher.notify()
        if self.on_event is not None:
            self.on_event()

    # ---- status --------------------------------------------------------------------------------

    def health(self) -> list[CameraHealth]:
        return self.supervisor.health()

    def delivery(self) -> dict[str, dict[str, Any]]:
        """Per target: what its worker did since start (the store holds the per-alert state)."""
        out = {}
        for name, w in list(self.dispatcher.workers.items()):
            lat = sorted(w.stats.latencies)
            out[name] = {"delivered": w.stats.delivered, "failed_attempts": w.stats.failed, "dead": w.stats.dead,
                         "last_error": w.stats.last_error,
                         "last_delivered": w.stats.last_delivered.isoformat() if w.stats.last_delivered else None,
                         "latency_p50_s": round(lat[len(lat) // 2], 3) if lat else None,
                         "connected": getattr(getattr(w.sender, "_client", None), "is_connected", lambda: None)()
                         if isinstance(w.sender, MqttSender) else None}
        return out
