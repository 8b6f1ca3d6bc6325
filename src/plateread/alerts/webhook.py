"""Webhook targets: a JSON POST per alert, signed with HMAC-SHA256, with an idempotency key.

Headers: ``Idempotency-Key`` (the alert's key: the same on every retry and for every target),
``X-Plateread-Timestamp`` (Unix seconds of this attempt) and ``X-Plateread-Signature``
(``sha256=`` + hex HMAC-SHA256 of ``"{timestamp}.{body}"`` with the target's secret). Signing the
timestamp with the body lets a receiver refuse replays of an old, captured request.
"""
from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from ..store import OutboxRow
from .outbox import DeliveryError, message_body

SIGNATURE_HEADER = "X-Plateread-Signature"
TIMESTAMP_HEADER = "X-Plateread-Timestamp"
KEY_HEADER = "Idempotency-Key"
EVENT_HEADER = "X-Plateread-Event"
#: statuses that say "never send this again"; every other failure is retried
PERMANENT = frozenset({410})


@dataclass(frozen=True)
class WebhookTarget:
    """``events``: "hits" (watchlist alerts only, the default) or "all" (every event too)."""

    name: str
    url: str
    secret: str = field(repr=False)
    events: str = "hits"
    timeout_s: float = 5.0
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def target(self) -> str:
        return f"webhook:{self.name}"

    def wants(self, kind: str) -> bool:
        return kind == "hit" or self.events == "all"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(int(timestamp)).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str | None, signature: str | None, body: bytes, *,
           tolerance_s: float = 300.0, now: float | None = None) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent."""
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None   # an HTTP date: our own backoff will do


class WebhookSender:
    def __init__(self, config: WebhookTarget, client: Any = None) -> None:
        self.config, self.name = config, config.target
        self._client = client

    def start(self) -> None:
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=self.config.timeout_s, follow_redirects=False,
                                        headers={"User-Agent": f"plateread/{__version__}"})

    def send(self, row: OutboxRow) -> None:
        import httpx

        if self._client is None:
            self.start()
        body = message_body(row)
        ts = int(time.time())
        headers = {**dict(self.config.headers), "Content-Type": "application/json", KEY_HEADER: row.key,
                   TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: sign(self.config.secret, ts, body),
                   EVENT_HEADER: str(row.payload.get("type", row.kind))}
        try:
            res = self._client.post(self.config.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from None
        if 200 <= res.status_code < 300:
            return
        raise DeliveryError(f"HTTP {res.status_code}", retry_after=_retry_after(res.headers.get("retry-after")),
                            permanent=res.status_code in PERMANENT)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
