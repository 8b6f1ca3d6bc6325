"""plateread's own JSON API under ``/api/``: search the store, one read, the watchlist, cameras.

Token auth only (``Authorization: Token <key>``), never the dashboard cookie: no cookie, no
cross-site request forgery to defend against here. Documented at ``/docs``.
"""
from __future__ import annotations

import argparse
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, Field

from ..cli.reads_cmd import parse_time
from ..store import StoredRead, StoreError, WatchItem
from ..store.store import KINDS
from .auth import Principal
from .state import ServerState, get_state

#: Every answer the routes may give besides their own, documented so that clients (and the schema
#: fuzzing in tests/test_fuzz_api.py) can rely on the schema.
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "bad input (a time, kind or value the store refuses)"},
    403: {"description": "missing or invalid token"},
    404: {"description": "no such read, plate or alert"},
    409: {"description": "not possible on this server (e.g. no cameras to reload)"},
    429: {"description": "throttled; see Retry-After"},
}
router = APIRouter(prefix="/api", tags=["plateread"], responses=ERRORS)
MAX_PAGE = 500
#: Row ids are 64-bit signed integers in both databases; a larger one must be a 422, not a 500.
MAX_ID = 2**63 - 1


async def api_user(request: Request) -> Principal:
    return await get_state(request).auth.api_principal(request)


class WatchIn(BaseModel):
    plate: str = Field(min_length=1, max_length=64, description="spaces and dashes are ignored")
    fuzzy: int = Field(0, ge=0, le=4, description="also flag plates this many characters off")
    label: str | None = Field(None, max_length=64)
    reason: str | None = Field(None, max_length=2000)


def media_url(rel: str | None) -> str | None:
    return f"/media/{rel}" if rel else None


def read_json(r: StoredRead, hits: list[WatchItem]) -> dict[str, Any]:
    return {**r.to_dict(), "watchlist": [w.label or w.plate for w in hits],
            "crop_url": media_url(r.crop_path), "frame_url": media_url(r.frame_path)}


def _time(value: str | None, name: str) -> Any:
    if not value:
        return None
    try:
        return parse_time(value)
    except argparse.ArgumentTypeError as exc:
        raise HTTPException(400, f"{name}: {exc}") from None


def search(state: ServerState, plate: str | None, fuzzy: int, camera: str | None, since: str | None,
           until: str | None, kind: str | None, hits: bool, limit: int, offset: int
           ) -> tuple[list[StoredRead], list[WatchItem]]:
    """The one search behind the API and the dashboard (blocking: call it from a thread)."""
    filters = {"camera": camera or None, "since": _time(since, "since"), "until": _time(until, "until"),
               "kind": kind or None}
    try:
        watch = state.store.watchlist()
        if hits and plate:  # a plate query is narrow: fetch its matches, keep the hits
            found = [r for r in state.store.query(plate=plate, fuzzy=fuzzy, limit=None, **filters)
                     if state.store.watchlist_match(r.plate, watch)]
            reads = found[offset:offset + limit]
        elif hits:
            reads = state.store.watch_hits(limit=limit, offset=offset, **filters)
        else:
            reads = state.store.query(plate=plate or None, fuzzy=fuzzy if plate else 0, limit=limit,
                                      offset=offset, **filters)
    except StoreError as exc:
        raise HTTPException(400, str(exc)) from None
    return reads, watch


@router.get("/reads", summary="Search stored reads, newest first")
def reads(request: Request, _: Principal = Depends(api_user),
          plate: str | None = Query(None, max_length=64, description="plate to find (spaces, dashes ignored)"),
          fuzzy: int = Query(0, ge=0, le=4, description="with plate: also plates this many characters off"),
          camera: str | None = Query(None, max_length=64),
          since: str | None = Query(None, description="ISO time (UTC unless an offset is given) or an age: 2h, 7d"),
          until: str | None = Query(None),
          kind: str | None = Query(None, description=f"one of {', '.join(KINDS)}"),
          hits: bool = Query(False, description="only reads the watchlist flags"),
          limit: int = Query(50, ge=1, le=MAX_PAGE), offset: int = Query(0, ge=0, le=MAX_ID)) -> dict[str, Any]:
    state = get_state(request)
    found, watch = search(state, plate, fuzzy, camera, since, until, kind, hits, limit, offset)
    items = [read_json(r, state.store.watchlist_match(r.plate, watch)) for r in found]
    return {"reads": items, "limit": limit, "offset": offset,
            "next_offset": offset + len(items) if len(items) == limit else None}


@router.get("/reads/{read_id}", summary="One read, with its crop and frame URLs")
def read_one(request: Request, read_id: int = Path(ge=1, le=MAX_ID), _: Principal = Depends(api_user)) -> dict[str, Any]:
    state = get_state(request)
    r = state.store.get(read_id)
    if r is None:
        raise HTTPException(404, "no such read")
    return read_json(r, state.store.watchlist_match(r.plate))


@router.get("/watchlist", summary="The watchlist")
def watchlist(request: Request, _: Principal = Depends(api_user)) -> list[dict[str, Any]]:
    return [w.to_dict() for w in get_state(request).store.watchlist()]


@router.post("/watchlist", status_code=201, summary="Add a plate to the watchlist (or update it)")
def watch_add(request: Request, item: WatchIn, _: Principal = Depends(api_user)) -> dict[str, Any]:
    try:
        return get_state(request).store.watchlist_add(item.plate, fuzzy=item.fuzzy, label=item.label,
                                                      reason=item.reason).to_dict()
    except StoreError as exc:
        raise HTTPException(400, str(exc)) from None


@router.delete("/watchlist/{plate}", status_code=204, summary="Remove a plate from the watchlist")
def watch_remove(request: Request, plate: str, _: Principal = Depends(api_user)) -> Response:
    if not get_state(request).store.watchlist_remove(plate):
        raise HTTPException(404, "not on the watchlist")
    return Response(status_code=204)


def camera_rows(state: ServerState) -> list[dict[str, Any]]:
    """Every camera the store knows and every camera the service runs: read counts, and health
    (null for cameras the service does not run, e.g. API uploads' camera_id)."""
    rows = {c["name"]: {**c, "health": None} for c in state.store.cameras()}
    if state.service is not None:
        for h in state.service.health():
            rows.setdefault(h.name, {"name": h.name, "description": None, "reads": 0})["health"] = h.to_dict()
            cfg = state.service.config.camera(h.name)
            if cfg is not None and cfg.description and not rows[h.name].get("description"):
                rows[h.name]["description"] = cfg.description
    return [rows[k] for k in sorted(rows)]


@router.get("/cameras", summary="Cameras: read counts, and health for the cameras this server runs")
def cameras(request: Request, _: Principal = Depends(api_user)) -> list[dict[str, Any]]:
    return camera_rows(get_state(request))


@router.post("/reload", summary="Re-read the config file: add, remove and restart changed cameras and targets")
async def reload(request: Request, _: Principal = Depends(api_user)) -> dict[str, Any]:
    from .app import reload_service

    return await reload_service(get_state(request))


@router.get("/alerts", summary="Alerts in the outbox and their delivery state, newest first")
def alerts(request: Request, _: Principal = Depends(api_user),
           state: str | None = Query(None, description="pending, delivered or dead"),
           target: str | None = Query(None, max_length=64, description="webhook:NAME or mqtt"),
           limit: int = Query(50, ge=1, le=MAX_PAGE), offset: int = Query(0, ge=0, le=MAX_ID)) -> dict[str, Any]:
    st = get_state(request)
    try:
        rows = st.store.outbox(limit, offset, state=state or None, target=target or None)
    except StoreError as exc:
        raise HTTPException(400, str(exc)) from None
    return {"alerts": [r.to_dict() for r in rows], "limit": limit, "offset": offset,
            "next_offset": offset + len(rows) if len(rows) == limit else None,
            "targets": st.service.delivery() if st.service is not None else {}}


@router.post("/alerts/{alert_id}/retry", summary="Send a dead or waiting alert again now")
def alert_retry(request: Request, alert_id: int = Path(ge=1, le=MAX_ID), _: Principal = Depends(api_user)) -> dict[str, Any]:
    st = get_state(request)
    if not st.store.outbox_retry(alert_id):
        raise HTTPException(404, "no such undelivered alert")
    if st.service is not None:
        st.service.dispatcher.notify()
    return {"retrying": alert_id}
