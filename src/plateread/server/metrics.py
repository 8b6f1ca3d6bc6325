"""Prometheus metrics of one server, in a registry of its own (two apps in one process, as in
tests, do not collide)."""
from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
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
