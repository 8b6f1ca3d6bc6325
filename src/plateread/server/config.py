"""What an operator sets for ``plateread serve``: addresses, limits and what is stored."""
from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass, field

MB = 1024 * 1024
#: Plate Recognizer clients wait 10 s; answering (or giving up) well before that lets them retry.
DEFAULT_TIMEOUT_S = 8.0
DEFAULT_MAX_UPLOAD = 10 * MB
#: 8K UHD is 33 MP; a decoded 36 MP image is ~100 MB per worker, bounded by the pool size.
DEFAULT_MAX_PIXELS = 36_000_000
DEFAULT_RATE = 10.0           # requests per second per token (0: no limit)
#: What ``usage.max_calls`` and ``total_calls`` report: this server sets no monthly quota.
UNLIMITED_CALLS = 2_147_483_647


def default_workers() -> int:
    """One inference worker per core the process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerConfig:
    """Every knob of a server; defaults are what ``plateread serve`` uses without flags."""

    host: str = "127.0.0.1"
    port: int = 8080
    auth: bool = True                    # False (--no-auth) only on a loopback address
    workers: int = field(default_factory=default_workers)
    queue: int | None = None             # requests waiting beyond the running ones; None: 4 per worker
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD
    max_pixels: int = DEFAULT_MAX_PIXELS
    rate: float = DEFAULT_RATE           # per token, requests/s; a token's own rate overrides it
    burst: int | None = None             # bucket size; None: max(1, rate)
    timeout_s: float = DEFAULT_TIMEOUT_S
    store_all: bool = False              # --store: keep every read (clients may still ask per request)
    default_camera: str | None = None    # camera recorded when a request names none
    processes: bool = False              # inference workers as forked processes (serve's default)
    spool: str | None = None             # journal root for reads while the database is away (store.spool)
    keep_frames: bool = True             # store the whole image with stored reads (the read page shows it)
    allow_url_hosts: frozenset[str] = frozenset()   # hosts upload_url may name; empty: upload_url refused
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    session_hours: float = 12.0
    sse_poll_s: float = 1.0              # how often the live feed looks for reads other processes stored

    def __post_init__(self) -> None:
        if not self.auth and not is_loopback(self.host):
            raise ValueError(f"--no-auth is only allowed on a loopback address, not {self.host}")
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if self.queue is not None and self.queue < 0:
            raise ValueError("queue must be zero or more")
        if self.max_upload_bytes < 1024:
            raise ValueError("the upload limit must be at least 1 KiB")
        if self.rate < 0 or self.timeout_s <= 0:
            raise ValueError("rate must be >= 0 and timeout > 0")

    @property
    def queue_size(self) -> int:
        # 4 per worker: at 80% of saturation a 100 ms stall (a WAL checkpoint, a GC pause) must
        # not refuse requests; the memory bound stays slots x upload limit (docs/SERVER.md)
        return 4 * self.workers if self.queue is None else self.queue

    @property
    def bucket(self) -> float:
        return float(self.burst) if self.burst else max(1.0, self.rate)
