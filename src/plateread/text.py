"""Plate text helpers shared by readers, the scorer, the tracker and the store."""
from __future__ import annotations

import re

_NON_ALNUM = re.compile(r"[^A-Z0-9]")


def normalize_plate(text: str | None) -> str:
    """Upper-cases and keeps A–Z and 0–9 only: the scoring convention of the data sets."""
    if not text:
        return ""
    return _NON_ALNUM.sub("", text.upper())


def levenshtein(a: str, b: str, limit: int | None = None) -> int:
    """Edit distance; with ``limit`` it stops early and returns limit + 1 once it must exceed it."""
    if limit is not None and abs(len(a) - len(b)) > limit:
        return limit + 1
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        if limit is not None and min(cur) > limit:
            return limit + 1
        prev = cur
    return prev[-1]
