"""New reads, live, for the dashboard (server-sent events).

The feed watches the store rather than this server's own requests, so reads that
``plateread watch --store`` or ``read --store`` write from other processes appear too: it polls
for ids above the last one it saw (every ``poll_s``, at once when the API has just stored
something) and only while someone is watching. Each stream has a bounded queue; a client too
slow to keep up loses events instead of growing the server's memory.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.concurrency import run_in_threadpool

from ..store import Store, StoredRead
from .metrics import Metrics

log = logging.getLogger("plateread.server")
QUEUE_SIZE = 100
BATCH = 100          # reads fetched per poll; a burst larger than this shows its newest BATCH


def read_summary(r: StoredRead, hits: list[str]) -> dict[str, Any]:
    """What a table row needs (the dashboard builds it with textContent: no HTML in here)."""
    return {"id": r.id, "plate": r.plate, "score": round(float(r.score), 3), "camera": r.camera,
            "kind": r.kind, "first_seen": r.first_seen.isoformat(), "watchlist": hits,
            "crop_url": f"/media/{r.crop_path}" if r.crop_path else None, "url": f"/reads/{r.id}"}


class LiveFeed:
    def __init__(self, store: Store, poll_s: float, metrics: Metrics) -> None:
        self.store, self.poll_s, self.metrics = store, poll_s, metrics
        self._subs: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._last = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._last = await run_in_threadpool(self.store.last_id)
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        for q in list(self._subs):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def notify(self) -> None:
        """The API stored reads: look now instead of at the next poll."""
        if self._wake is not None:
            self._wake.set()

    async def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        if not self._subs:  # nobody watched: start from now, not from reads stored meanwhile
            self._last = await run_in_threadpool(self.store.last_id)
        q: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE_SIZE)
        self._subs.add(q)
        self.metrics.sse_clients.set(len(self._subs))
        return q

    def unsubscribe(self, q: asyncio.Queue[dict[str, Any] | None]) -> None:
        self._subs.discard(q)
        self.metrics.sse_clients.set(len(self._subs))

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            self._wake.clear()
            if not self._subs:
                continue
            try:
                await self._poll()
            except Exception as exc:  # a database hiccup must not end the feed
                log.warning("live feed: %s", exc)

    def _fetch(self) -> list[dict[str, Any]]:
        reads = self.store.query(limit=BATCH, after_id=self._last)
        if not reads:
            return []
        watch = self.store.watchlist()
        return [read_summary(r, [w.label or w.plate for w in self.store.watchlist_match(r.plate, watch)])
                for r in reversed(reads)]

    async def _poll(self) -> None:
        for item in await run_in_threadpool(self._fetch):
            self._last = max(self._last, item["id"])
            for q in list(self._subs):
                with contextlib.suppress(asyncio.QueueFull):
                    q.put_nowait(item)
