"""Plate Recognizer's Snapshot API on plateread's reads: its request fields in, its JSON out.

Clients (Home Assistant's platerecognizer, frigate_plate_recognizer, node-red-contrib-plate-
recognizer, scripts) read ``results[].plate/score/region.code/vehicle.type/box/candidates`` and
``usage.calls/max_calls``, so every documented key is always there with its documented type;
what plateread adds lives under a ``plateread`` key no Plate Recognizer field uses.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from functools import lru_cache
from typing import Any, Iterable

from .. import __version__
from ..formats import format_classifier
from ..types import ImageResult, PlateRead
from .pool import ReadOptions

API_VERSION = 1
_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off", "", "none", "null"}
_DATA_URI = re.compile(r"^data:[\w/+.-]*;base64,", re.I)
_NO_BOX = {"xmin": 0, "ymin": 0, "xmax": 0, "ymax": 0}


def parse_bool(value: Any) -> bool | None:
    """Booleans as clients send them: True/"True"/"true"/"1"/"on"…; None when not one."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    if isinstance(value, str):
        v = value.strip().lower()
        if v in _TRUE:
            return True
        if v in _FALSE:
            return False
    return None


def _unit(value: Any) -> float | None:
    """A threshold in [0, 1] (strings accepted), else None: a value we do not understand is ignored."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return min(1.0, max(0.0, f)) if f == f else None


def parse_config(text: Any) -> dict[str, Any]:
    """The ``config`` field: a JSON object (a string in a form). Malformed JSON is a 400; keys
    and values we do not use are ignored."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return {}
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        raise ValueError("config: not a JSON object") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("config: not a JSON object")
    return value


def read_options(config: dict[str, Any], regions: tuple[str, ...], annotate: bool = False) -> ReadOptions:
    mode = str(config.get("mode", "")).strip().lower()
    return ReadOptions(
        threshold_d=_unit(config.get("threshold_d")),
        threshold_o=_unit(config.get("threshold_o")),
        regions=regions,
        strict=str(config.get("region", "")).strip().lower() == "strict" and bool(regions),
        fast=mode == "fast",
        redaction=mode == "redaction",
        annotate=annotate,
    )


@lru_cache(maxsize=1)
def _known_regions() -> dict[str, Any]:
    from ..formats import load_regions

    return load_regions()


def parse_regions(values: Iterable[Any]) -> tuple[str, ...]:
    """Plate Recognizer region codes ("us-ca", "gb", "fr"; repeated or comma-separated) as
    plateread's format regions: a state narrows to its country ("us-ca" → "us"); codes with no
    formats here are dropped, since regions are a hint (Plate Recognizer reads foreign plates too)."""
    from ..formats import resolve_regions

    known = _known_regions()
    out: list[str] = []
    for value in values:
        if not isinstance(value, str):
            continue
        for code in value.split(","):
            code = code.strip().lower()
            if not code or code in ("none", "null"):
                continue
            for attempt in dict.fromkeys((code, code.split("-")[0])):
                try:
                    hits = resolve_regions(attempt, known)
                except ValueError:
                    continue
                out += [h for h in hits if h not in out]
                break
    return tuple(out)


def parse_timestamp(value: Any) -> dt.datetime | None:
    """ISO 8601; a time without an offset is UTC, as Plate Recognizer documents."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ValueError("timestamp: expected an ISO 8601 date and time")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"timestamp: {value[:40]!r} is not an ISO 8601 date and time") from None
    return t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t.astimezone(dt.timezone.utc)


def decode_base64_upload(text: str) -> bytes:
    """``upload`` sent as text: base64 (standard or URL-safe, a data: URI prefix allowed)."""
    body = _DATA_URI.sub("", text.strip(), count=1)
    body = re.sub(r"\s+", "", body)
    body += "=" * (-len(body) % 4)
    try:
        if "-" in body or "_" in body:
            return base64.urlsafe_b64decode(body)
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("upload: expected an image file or a base64-encoded image") from None


def format_time(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def region_of(read: PlateRead) -> dict[str, Any]:
    """``{"code", "score"}`` always: the engine's region when it fitted formats, else the region
    whose layouts the text fits (classification only, the text is not changed), else code ""."""
    if read.region:
        return {"code": read.region.lower(), "score": round(float(read.region_score or 0.0), 3)}
    try:
        code, _layout, score = format_classifier().classify(read.plate)
    except Exception:  # a text with characters outside the charset fits nothing
        code, score = None, 0.0
    return {"code": (code or "").lower(), "score": round(float(score), 3) if code else 0.0}


def plate_result(read: PlateRead, mmc: bool = False) -> dict[str, Any]:
    plate = read.plate.lower()
    cands = [{"score": round(float(c.score), 3), "plate": c.plate.lower()} for c in read.candidates if c.plate]
    if not cands or cands[0]["plate"] != plate:
        cands.insert(0, {"score": round(float(read.score), 3), "plate": plate})
    out: dict[str, Any] = {
        "box": read.box.to_dict(),
        "plate": plate,
        "region": region_of(read),
        "score": round(float(read.score), 3),
        "candidates": cands,
        "dscore": round(float(read.detection_score), 3),
        "vehicle": {"score": 0.0, "type": "Unknown", "box": dict(_NO_BOX)},
    }
    if mmc:  # accepted, answered without vehicle attributes (no vehicle model yet)
        out.update({"model_make": [], "color": [], "orientation": []})
    extra: dict[str, Any] = {}
    if read.corners:
        extra["corners"] = [[round(float(x), 1), round(float(y), 1)] for x, y in read.corners]
    if read.char_scores:
        extra["char_scores"] = [round(float(s), 4) for s in read.char_scores]
    if extra:
        out["plateread"] = extra
    return out


def snapshot_response(result: ImageResult, results: list[dict[str, Any]], *, filename: str,
                      camera_id: str | None, timestamp: dt.datetime, calls: int, max_calls: int,
                      read_ids: list[int] | None = None, store_error: str | None = None, engine: str = "",
                      spooled: bool = False) -> dict[str, Any]:
    """The Snapshot API's answer around ``results``, which the worker built from ``result``'s reads
    with ``plate_result`` (off the event loop)."""
    return {
        "processing_time": round(float(result.processing_time), 3),
        "results": results,
        "filename": filename,
        "version": API_VERSION,
        "camera_id": camera_id,
        "timestamp": format_time(timestamp),
        "usage": {"calls": calls, "max_calls": max_calls},
        "plateread": {
            "version": __version__, "engine": engine, "image_width": result.width,
            "image_height": result.height, "read_ids": read_ids or [], "store_error": store_error,
            "spooled": spooled,
        },
    }


def statistics(calls: int, max_calls: int, now: dt.datetime) -> dict[str, Any]:
    """``GET /v1/statistics/`` as Plate Recognizer answers it: this month's calls and the quota."""
    from ..store.tokens import next_period_start

    resets = next_period_start(now).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"usage": {"year": now.year, "month": now.month, "resets_on": resets,
                      "calls": calls}, "total_calls": max_calls}
