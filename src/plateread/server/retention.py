"""Retention on a schedule: a server that only answers requests (or whose cameras are quiet) adds
no reads, so the store's purge-while-adding would never run; this task purges every hour."""
from __future__ import annotations

import asyncio
import logging

from ..store import Store, StoreError
from ..store.store import RETAIN_EVERY_S

log = logging.getLogger("plateread.server")


async def retain_every(store: Store, every_s: float = RETAIN_EVERY_S) -> None:
    """Purges reads older than ``store.retention_days`` every ``every_s`` seconds until cancelled
    (``Store.open`` already purged once at start)."""
    if store.retention_days is None:
        return
    while True:
        await asyncio.sleep(every_s)
        try:
            rep = await asyncio.to_thread(store.purge, store.retention_days)
        except StoreError as exc:  # the database may be away for a while; try again next round
            log.warning("retention purge failed: %s", exc)
            continue
        if rep.reads or rep.files:
            log.info("retention: deleted %d read(s) and %d media file(s)", rep.reads, rep.files)
