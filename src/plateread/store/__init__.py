"""A database of reads: cameras, per-vehicle events and image reads, a watchlist, and their media."""
from .db import StoreError, default_url
from ..text import levenshtein
from .store import AddReport, OutboxEntry, OutboxRow, PurgeReport, Store, StoredRead, WatchItem

__all__ = ["AddReport", "OutboxEntry", "OutboxRow", "PurgeReport",
           "Store", "StoreError", "StoredRead", "WatchItem", "default_url",
           "levenshtein"]
