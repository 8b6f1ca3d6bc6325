"""Everything a request handler needs, hung on ``app.state.plateread`` by the app factory."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from fastapi import Request

from ..store import Store
from .auth import Authenticator, RateLimiter, SessionSigner
from .config import ServerConfig
from .metrics import Metrics
from .pool import InferencePool
from .usage import UsageCounter

if TYPE_CHECKING:
    from ..cameras.service import CameraService
    from .events import LiveFeed


@dataclass
class ServerState:
    config: ServerConfig
    store: Store
    pool: InferencePool
    auth: Authenticator
    limiter: RateLimiter
    metrics: Metrics
    sessions: SessionSigner
    feed: "LiveFeed"
    usage: UsageCounter
    engine: str = ""
    anonymous_calls: dict[str, int] = field(default_factory=dict)   # --no-auth: calls per month, in memory
    exiting: Callable[[], bool] = lambda: False                       # the server is shutting down
    service: "CameraService | None" = None                            # serve --config: cameras and alerts


def get_state(request: Request) -> ServerState:
    return request.app.state.plateread
