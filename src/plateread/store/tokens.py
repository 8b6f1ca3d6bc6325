"""API token secrets: made here, kept as hashes by the store, checked in constant time.

A secret is 40 random hex characters, the shape of a Plate Recognizer key, so clients that check
the format accept it. It has 160 bits of entropy, so a plain SHA-256 is enough (a slow password
hash protects guessable secrets; these are not guessable).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

PREFIX_LEN = 8
SECRET_BYTES = 20
#: compared against when no row has the prefix, so a miss costs the same as a wrong secret
_DUMMY_HASH = hashlib.sha256(b"plateread-no-such-token").hexdigest()


def new_secret() -> str:
    return secrets.token_hex(SECRET_BYTES)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def secret_matches(secret: str, stored_hash: str | None) -> bool:
    """Constant-time comparison of the secret's hash with the stored one."""
    return hmac.compare_digest(hash_secret(secret), stored_hash or _DUMMY_HASH) and stored_hash is not None


def period_of(when: dt.datetime) -> str:
    """The usage period (calendar month, UTC) a call falls in: '2026-11'."""
    w = when.astimezone(dt.timezone.utc)
    return f"{w.year:04d}-{w.month:02d}"   # not strftime: this runs on every API call


def next_period_start(when: dt.datetime) -> dt.datetime:
    """When the counters of ``when``'s month reset: the first instant of the next month, UTC."""
    w = when.astimezone(dt.timezone.utc)
    year, month = (w.year + 1, 1) if w.month == 12 else (w.year, w.month + 1)
    return dt.datetime(year, month, 1, tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class TokenInfo:
    """A token as listings show it: never the secret."""

    id: int
    name: str
    prefix: str
    rate: float | None
    created_at: dt.datetime
    last_used_at: dt.datetime | None = None
    calls: int = 0          # this month

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "prefix": self.prefix, "rate": self.rate,
                "created_at": self.created_at.isoformat(),
                "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
                "calls_this_month": self.calls}
