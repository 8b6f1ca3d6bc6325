"""Plate text normalisation shared by readers and the scorer."""
from __future__ import annotations

import re

_NON_ALNUM = re.compile(r"[^A-Z0-9]")


def normalize_plate(text: str | None) -> str:
    """Upper-cases and keeps A–Z and 0–9 only: the scoring convention of the data sets."""
    if not text:
        return ""
    return _NON_ALNUM.sub("", text.upper())
