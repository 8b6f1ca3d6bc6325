"""Who is calling: API tokens (``Authorization: Token <key>``), per-token rate limits, and the
dashboard's signed session cookie with its CSRF token.

Secrets are only ever compared as hashes in constant time (``Store.token_check``); the session
cookie holds a token *id*, never a secret, and is checked against the store on every page, so
revoking a token also ends its dashboard sessions. An API token the store accepted is trusted
for ``RECHECK_S`` seconds before it is checked again (a database query and a thread hop on every
read cost the event loop more than the rest of the request's bookkeeping), so a revocation takes
effect within that time. While the database is unreachable, an API token it accepted in the last
``OUTAGE_GRACE_S`` seconds keeps working, so reads go on (into the spool) during an outage; any
other call gets 503.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
import time
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool

from ..store import Store
from ..store.db import StoreUnavailable

NO_CREDENTIALS = "Authentication credentials were not provided."
BAD_TOKEN = "Invalid token."
SESSION_COOKIE = "plateread_session"
OUTAGE_GRACE_S = 600.0
RECHECK_S = 2.0
MAX_REMEMBERED = 1024
DB_DOWN = "The database is unavailable; try again shortly."


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``token_id`` is None when the server runs with --no-auth."""

    token_id: int | None
    name: str
    rate: float | None = None

    @property
    def key(self) -> str:
        return f"t{self.token_id}" if self.token_id is not None else "anonymous"


ANONYMOUS = Principal(None, "anonymous")


def token_from_header(value: str | None) -> str | None:
    """The key of ``Token <key>`` (Plate Recognizer's scheme) or ``Bearer <key>``."""
    if not value:
        return None
    scheme, _, key = value.strip().partition(" ")
    if scheme.lower() not in ("token", "bearer") or not key.strip():
        return None
    return key.strip()


class Authenticator:
    def __init__(self, store: Store, enabled: bool) -> None:
        self.store, self.enabled = store, enabled
        self._known: dict[str, tuple[float, Principal]] = {}   # sha256 of a secret → (checked at, who)

    async def _token(self, key: str) -> Principal | None:
        digest = hashlib.sha256(key.encode()).hexdigest()
        now = time.monotonic()
        hit = self._known.get(digest)
        if hit is not None and now - hit[0] < RECHECK_S:
            return hit[1]
        try:
            info = await run_in_threadpool(self.store.token_check, key)
        except StoreUnavailable:
            if hit is not None and now - hit[0] < OUTAGE_GRACE_S:
                return hit[1]
            raise HTTPException(503, DB_DOWN, headers={"Retry-After": "5"}) from None
        if info is None:
            self._known.pop(digest, None)
            return None
        if len(self._known) >= MAX_REMEMBERED:
            self._known.clear()
        who = Principal(info.id, info.name, info.rate)
        self._known[digest] = (now, who)
        return who

    async def api_principal(self, request: Request) -> Principal:
        """The caller of an API route, or 403 in Plate Recognizer's words."""
        if not self.enabled:
            return ANONYMOUS
        key = token_from_header(request.headers.get("authorization"))
        if key is None:
            raise HTTPException(403, NO_CREDENTIALS)
        who = await self._token(key)
        if who is None:
            raise HTTPException(403, BAD_TOKEN)
        return who

    async def login(self, key: str) -> Principal | None:
        info = await run_in_threadpool(self.store.token_check, key.strip())
        return Principal(info.id, info.name, info.rate) if info is not None else None

    async def session_principal(self, session: dict[str, Any] | None) -> Principal | None:
        """The dashboard user of a valid session whose token still exists."""
        if not self.enabled:
            return ANONYMOUS
        if not session or not isinstance(session.get("tid"), int):
            return None
        info = await run_in_threadpool(self.store.token, session["tid"])
        return Principal(info.id, info.name, info.rate) if info is not None else None


class RateLimiter:
    """A token bucket per caller: ``rate`` requests per second on average, bursts up to ``burst``.

    Buckets are keyed by token, so memory is bounded by the number of tokens. Used from the event
    loop only, hence no lock."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def wait(self, principal: Principal, now: float | None = None) -> float:
        """0 when the request may go ahead (and is counted), else the seconds until it could."""
        rate = principal.rate if principal.rate is not None else self.rate
        if rate <= 0:
            return 0.0
        burst = max(1.0, self.burst if principal.rate is None else max(1.0, rate))
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(principal.key, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens >= 1.0:
            self._buckets[principal.key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[principal.key] = (tokens, now)
        return (1.0 - tokens) / rate


def throttled(wait_s: float) -> HTTPException:
    """429 as Plate Recognizer (Django REST framework) words it, with Retry-After."""
    secs = max(1, math.ceil(wait_s))
    return HTTPException(429, f"Request was throttled. Expected available in {secs} second{'s' if secs != 1 else ''}.",
                         headers={"Retry-After": str(secs)})


class SessionSigner:
    """Signed (HMAC-SHA256), expiring cookie values. Not encrypted: they hold only a token id and
    the CSRF token, which the page shows anyway."""

    def __init__(self, secret: bytes, max_age_s: float) -> None:
        self.secret, self.max_age_s = secret, max_age_s

    def _mac(self, body: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.new(self.secret, body, hashlib.sha256).digest()).decode().rstrip("=")

    def dumps(self, payload: dict[str, Any]) -> str:
        data = {**payload, "exp": int(time.time() + self.max_age_s)}
        body = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")
        return f"{body}.{self._mac(body.encode())}"

    def loads(self, value: str | None) -> dict[str, Any] | None:
        if not value or value.count(".") != 1:
            return None
        body, mac = value.split(".")
        if not hmac.compare_digest(mac, self._mac(body.encode())):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("exp"), int) or data["exp"] < time.time():
            return None
        return data


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


def csrf_ok(session: dict[str, Any] | None, submitted: Any) -> bool:
    expected = (session or {}).get("csrf")
    return isinstance(expected, str) and isinstance(submitted, str) and hmac.compare_digest(expected, submitted)
