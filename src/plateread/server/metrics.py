"""Prometheus metrics of one server, in a registry of its own (two apps in one process, as in
tests, do not collide)."""
from __future__ import annotations

import time
from typing import Any, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("plateread_http_requests", "HTTP requests by route template, method and status",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("plateread_http_request_duration_seconds",
                                 "Time to the end of the response, by route template", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.images = Counter("plateread_images", "Images handled by the inference pool, by outcome "
                              "(ok, bad_image, error, expired)", ["outcome"], registry=r)
        self.plates = Counter("plateread_plates_read", "Plates returned to clients", registry=r)
        self.inference = Histogram("plateread_inference_seconds", "Decode + read time of one image in a worker",
                                   buckets=LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("plateread_queue_depth", "Requests waiting for an inference worker", registry=r)
        self.in_flight = Gauge("plateread_inference_slots_used",
                               "Requests holding an inference slot (running, waiting or uploading)", registry=r)
        self.model_load = Gauge("plateread_model_load_seconds", "Time one worker took to load its models",
                                ["worker"], registry=r)
        self.rejected = Counter("plateread_rejected_requests", "Requests refused before inference, by reason "
                                "(auth, throttled, busy, too_large, bad_input, timeout)", ["reason"], registry=r)
        self.sse_clients = Gauge("plateread_sse_clients", "Open live-update streams", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class HttpMetricsMiddleware:
    """Counts every response by route template (not raw path: ids would explode the label set)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), [500]

        async def watch(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or ("/static" if scope["path"].startswith("/static/") else "other")
            self.metrics.requests.labels(path, scope["method"], str(status[0])).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - start)


#: per-camera counters of CameraHealth exported as plateread_camera_<name>_total
CAMERA_COUNTERS = {
    "frames_in": "Frames the camera's source decoded", "frames_processed": "Frames the engine read",
    "dropped": "Live frames replaced by newer ones before the engine took them",
    "skipped": "Frames left out by the camera's max_fps", "corrupt": "Undecodable frames skipped",
    "reconnects": "Stream reconnect attempts (failed ones included)", "restarts": "Watcher restarts by the watchdog (crash, stall)",
    "loops": "Files and folders played again from the start (loop = true)",
    "events": "Vehicle events", "engine_errors": "Frames the engine failed on",
}


class ServiceCollector:
    """Camera health and alert delivery, read from the service at each scrape (no second copy
    of the counters to keep in step)."""

    def __init__(self, service: Any) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        health = self.service.health()
        online = GaugeMetricFamily("plateread_camera_online", "1 while the camera delivers frames", labels=["camera"])
        last = GaugeMetricFamily("plateread_camera_last_event_timestamp_seconds",
                                 "Unix time of the camera's last event (0: none yet)", labels=["camera"])
        cpu = CounterMetricFamily("plateread_camera_cpu_seconds", "CPU time of the camera's threads",
                                  labels=["camera"])
        counters = {k: CounterMetricFamily(f"plateread_camera_{k}", doc, labels=["camera"])
                    for k, doc in CAMERA_COUNTERS.items()}
        for h in health:
            online.add_metric([h.name], 1.0 if h.online else 0.0)
            last.add_metric([h.name], h.last_event_at.timestamp() if h.last_event_at else 0.0)
            cpu.add_metric([h.name], h.cpu_s)
            for k, fam in counters.items():
                fam.add_metric([h.name], float(getattr(h, k)))
        yield online
        yield last
        yield cpu
        yield from counters.values()
        delivered = CounterMetricFamily("plateread_alerts_delivered", "Alerts a target acknowledged since start",
                                        labels=["target"])
        failed = CounterMetricFamily("plateread_alert_delivery_failures",
                                     "Failed delivery attempts since start (each retry counts)", labels=["target"])
        for name, d in self.service.delivery().items():
            delivered.add_metric([name], float(d["delivered"]))
            failed.add_metric([name], float(d["failed_attempts"]))
        yield delivered
        yield failed
        outbox = GaugeMetricFamily("plateread_outbox_messages", "Outbox rows by target and state",
                                   labels=["target", "state"])
        try:
            for (target, state), n in sorted(self.service.store.outbox_counts().items()):
                outbox.add_metric([target, state], float(n))
        except Exception:  # a database hiccup must not fail the scrape
            pass
        yield outbox


class StoreCollector:
    """The journals' backlog and media failures, read at each scrape: an outage shows as a
    growing ``plateread_spool_pending`` long before anyone misses a read."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        pending = GaugeMetricFamily("plateread_spool_pending", "Reads journalled, waiting for the database",
                                    labels=["writer"])
        outage = GaugeMetricFamily("plateread_store_outage_seconds",
                                   "Seconds since the database stopped answering (0: it answers)", labels=["writer"])
        spools = self.state.spools()
        for name, h in spools.items():
            pending.add_metric([name], float(h["pending"]))
            outage.add_metric([name], float(h["outage_s"] or 0.0))
        errors, _ = self.state.media_errors(spools)
        yield pending
        yield outage
        media = CounterMetricFamily("plateread_media_errors", "Images that could not be saved (disk full, "
                                    "read-only); their reads were stored without them")
        media.add_metric([], float(errors))
        yield media
