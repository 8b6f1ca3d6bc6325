"""A database of reads: cameras, per-vehicle events and image reads, a watchlist, and their media."""
from .db import StoreError, default_url
from .store import AddReport, PurgeReport, Store, StoredRead, WatchItem, levenshtein

__all__ = ["AddReport", "PurgeReport", "Store", "StoreError", "StoredRead", "WatchItem", "default_url",
           "levenshtein"]
