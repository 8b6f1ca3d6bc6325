"""Everything a request handler needs, hung on ``app.state.plateread`` by the app factory."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

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

    def spools(self) -> dict[str, dict[str, Any]]:
        """Each writer's journal health: the API's (its worker processes' summed) and the cameras'."""
        out = {"api": self.pool.spool_health()}
        if self.service is not None:
            out["cameras"] = self.service.writer.health()
        return {k: v for k, v in out.items() if v is not None}

    def media_errors(self, spools: dict[str, dict[str, Any]]) -> tuple[int, str | None]:
        """Images not saved so far, and the last error: this process's store counts for its
        threads and cameras; worker processes report their own through ``spools["api"]``."""
        child = spools.get("api") if self.pool.processes else None
        count = self.store.media_errors + (child["media_errors"] if child else 0)
        return count, self.store.last_media_error or (child["last_media_error"] if child else None)


def get_state(request: Request) -> ServerState:
    return request.app.state.plateread
