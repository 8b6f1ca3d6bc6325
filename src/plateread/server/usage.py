"""API calls per token and month, counted in memory and written to the store once a second.

Writing the counter on every read cost a database transaction and a thread hop per request,
on the same cores as the inference. The answer's ``usage.calls`` is still exact for this
server (the stored count plus what is waiting); other processes see it up to a second late,
and ``/v1/statistics/`` writes before it answers. Counts that cannot be written (database
away) wait for the next flush; a hard kill loses at most the last second's counts.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging

from starlette.concurrency import run_in_threadpool

from ..store import Store, StoreError
from ..store.models import utcnow
from ..store.tokens import period_of

log = logging.getLogger("plateread.server")
FLUSH_S = 1.0

Key = tuple[int, str]   # token id, month


class UsageCounter:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._stored: dict[Key, int] = {}                     # the store's count when last seen
        self._pending: collections.Counter[Key] = collections.Counter()
        self._when: dict[Key, dt.datetime] = {}               # a time in the key's month
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None

    async def add(self, token_id: int) -> int:
        """One more call this month; the month's count including it."""
        now = utcnow()
        key = (token_id, period_of(now))
        if key not in self._stored:
            try:
                self._stored[key] = await run_in_threadpool(self.store.calls, token_id, now)
            except StoreError as exc:
                log.warning("usage of token %s not readable: %s", token_id, exc)
                return 0
        self._pending[key] += 1
        self._when[key] = now
        return self._stored[key] + self._pending[key]

    async def calls(self, token_id: int) -> int:
        """This month's calls, after writing what waits."""
        await self.flush()
        now = utcnow()
        key = (token_id, period_of(now))
        stored = await run_in_threadpool(self.store.calls, token_id, now)
        self._stored[key] = stored
        return stored + self._pending[key]

    async def flush(self) -> None:
        async with self._lock:
            pending, self._pending = self._pending, collections.Counter()
            for key, n in pending.items():
                try:
                    self._stored[key] = await run_in_threadpool(self.store.count_call, key[0], self._when[key], n)
                except StoreError as exc:   # kept for the next flush
                    self._pending[key] += n
                    log.warning("usage of token %s not written yet: %s", key[0], exc)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            await self.flush()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
