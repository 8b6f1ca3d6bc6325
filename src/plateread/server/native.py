"""plateread's own JSON API under ``/api/``: search the store, one read, the watchlist, cameras.

Token auth only (``Authorization: Token <key>``), never the dashboard cookie: no cookie, no
cross-site request forgery to defend against here. Documented at ``/docs``.
"""
from __future__ import annotations

import argparse
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from ..cli.reads_cmd import parse_time
from ..store import StoredRead, StoreError, WatchItem
from ..store.store import KINDS
from .auth import Principal
from .state import ServerState, get_state

router = APIRouter(prefix="/api", tags=["plateread"])
MAX_PAGE = 500


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
          limit: int = Query(50, ge=1, le=MAX_PAGE), offset: int = Query(0, ge=0)) -> dict[str, Any]:
    state = get_state(request)
    found, watch = search(state, plate, fuzzy, camera, since, until, kind, hits, limit, offset)
    items = [read_json(r, state.store.watchlist_match(r.plate, watch)) for r in found]
    return {"reads": items, "limit": limit, "offset": offset,
            "next_offset": offset + len(items) if len(items) == limit else None}


@router.get("/reads/{read_id}", summary="One read, with its crop and frame URLs")
def read_one(request: Request, read_id: int, _: Principal = Depends(api_user)) -> dict[str, Any]:
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


@router.get("/cameras", summary="Cameras and their read counts")
def cameras(request: Request, _: Principal = Depends(api_user)) -> list[dict[str, Any]]:
    return get_state(request).store.cameras()
