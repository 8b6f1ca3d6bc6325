"""Which alerts an event raises, for which targets, with what payload.

Watchlist matching itself is the store's (``Store.watchlist_match``: exact and fuzzy by edit
distance, as ``reads --hits`` and the dashboard use); this module only turns an event and its
hits into outbox entries, one per alert kind and target.
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence

from .. import __version__
from ..store import OutboxEntry, Store, WatchItem
from ..video.events import VehicleEvent

#: "event": every vehicle (targets that ask for all events); "hit": a watchlist match
KINDS = ("event", "hit")
TYPES = {"event": "event", "hit": "watchlist_hit"}


class Target(Protocol):
    """A delivery target as the matcher sees it: its outbox name and the kinds it takes."""

    @property
    def target(self) -> str: ...

    def wants(self, kind: str) -> bool: ...


def alert_key(event_id: str, kind: str) -> str:
    """The idempotency key: one per event and kind, the same for every target and retry."""
    return f"{kind}-{event_id}"


def watchlist_hits(store: Store, plate: str) -> list[WatchItem]:
    """The watchlist entries ``plate`` hits (one query: the watchlist is small)."""
    return store.watchlist_match(plate)


def event_payload(event: VehicleEvent, kind: str, hits: Sequence[WatchItem]) -> dict[str, Any]:
    """The JSON every target gets for this alert. The event's ``source`` is left out: a stream
    URL often carries the camera's password. ``read_id`` is added when it is sent."""
    data = event.to_dict()
    data.pop("source", None)
    return {"type": TYPES[kind], "key": alert_key(event.event_id, kind), **data,
            "watchlist": [{"plate": w.plate, "fuzzy": w.fuzzy, "label": w.label, "reason": w.reason} for w in hits],
            "plateread": {"version": __version__}}


def alerts_for(event: VehicleEvent, hits: Sequence[WatchItem], targets: Sequence[Target]) -> list[OutboxEntry]:
    """Outbox entries for ``event``: an "event" alert for targets that take every event, and a
    "hit" alert for all that take hits when the watchlist matched."""
    kinds = ["event"] + (["hit"] if hits else [])
    out = []
    for kind in kinds:
        payload = event_payload(event, kind, hits)
        out += [OutboxEntry(payload["key"], t.target, kind, payload, event.camera) for t in targets if t.wants(kind)]
    return out
