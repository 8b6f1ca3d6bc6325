"""Plate Recognizer's Snapshot API (``/v1/plate-reader/``, ``/v1/statistics/``), health and metrics.

The plate-reader route checks the token, the caller's rate and a pool slot *before* it reads the
body, so a refused request costs neither memory nor a decode. Both ``/v1/plate-reader/`` and
``/v1/plate-reader`` answer (frigate_plate_recognizer posts without the slash; a redirect would
make some clients drop the body).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import ClientDisconnect

from .. import __version__
from ..store import StoreError
from ..store.models import utcnow
from ..store.tokens import period_of
from . import compat
from .auth import Principal, throttled
from .config import UNLIMITED_CALLS
from .metrics import CONTENT_TYPE
from .pool import Busy, ReadJob, ReadOutcome, Slot
from .state import ServerState, get_state

router = APIRouter()
log = logging.getLogger("plateread.server")
MAX_FIELDS = 64
MAX_FILENAME = 200

_READER_DOC = {
    "requestBody": {"content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["upload"],
        "properties": {
            "upload": {"type": "string", "format": "binary",
                       "description": "the image (a file, or its base64 text)"},
            "upload_url": {"type": "string", "description": "an image URL; only hosts the operator allowed"},
            "regions": {"type": "array", "items": {"type": "string"},
                        "description": "plate regions to fit (repeat or comma-separate): us, gb, de, br…"},
            "camera_id": {"type": "string"},
            "timestamp": {"type": "string", "format": "date-time",
                          "description": "ISO 8601, UTC unless an offset is given"},
            "config": {"type": "string", "description": 'JSON: {"threshold_d": 0.3, "threshold_o": 0.5, '
                                                        '"region": "strict", "mode": "fast"|"redaction"}'},
            "mmc": {"type": "boolean", "description": "accepted; answered with empty vehicle attributes"},
            "store": {"type": "boolean", "description": "keep this request's reads in the store (default: the "
                                                        "server's --store)"},
        }}}}},
    "responses": {"201": {"description": "the plates read, in Plate Recognizer's format"},
                  "400": {"description": "bad input"}, "403": {"description": "missing or invalid token"},
                  "413": {"description": "upload or image too large"},
                  "429": {"description": "throttled or busy; see Retry-After"},
                  "504": {"description": "no answer within the request timeout"}},
}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect could lead to a host the operator did not allow: refuse it."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def fetch_url(url: str, allowed: frozenset[str], max_bytes: int, timeout: float) -> tuple[bytes, str]:
    """The image at ``url`` when its host is allow-listed (SSRF: a server that fetches any URL it is
    given can be pointed at the operator's own network)."""
    parts = urllib.parse.urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or host not in allowed:
        raise HTTPException(400, f"upload_url: host {host or '?'!r} is not allowed on this server")
    opener = urllib.request.build_opener(_NoRedirect)
    req = urllib.request.Request(url.strip(), headers={"User-Agent": f"plateread/{__version__}"})
    try:
        with opener.open(req, timeout=timeout) as resp:
            data = resp.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        raise HTTPException(400, f"upload_url: the server answered {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise HTTPException(400, f"upload_url: cannot fetch: {getattr(exc, 'reason', exc)}") from None
    if len(data) > max_bytes:
        raise HTTPException(413, f"upload_url: image larger than {max_bytes:,} bytes")
    return data, os.path.basename(parts.path) or "upload"


async def collect_fields(request: Request, max_bytes: int) -> tuple[dict[str, list[Any]], FormData | None]:
    """Form (multipart or urlencoded) or JSON fields, each as a list (``regions`` may repeat)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        try:
            data = json.loads(await request.body())
        except ValueError:
            raise HTTPException(400, "the JSON body is malformed") from None
        if not isinstance(data, dict):
            raise HTTPException(400, "the JSON body must be an object")
        return {k: v if isinstance(v, list) else [v] for k, v in data.items()}, None
    if ctype not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise HTTPException(400, "send the image as multipart/form-data (field 'upload'), a form or JSON")
    form = await request.form(max_files=4, max_fields=MAX_FIELDS, max_part_size=max_bytes)
    fields: dict[str, list[Any]] = {}
    for key, value in form.multi_items():
        fields.setdefault(key, []).append(value)
    return fields, form


def first(fields: dict[str, list[Any]], key: str) -> Any:
    values = fields.get(key) or [None]
    return values[0]


def clean_filename(name: str | None) -> str:
    base = os.path.basename((name or "").replace("\\", "/")).strip()
    return base[:MAX_FILENAME] or "upload"


async def upload_of(state: ServerState, fields: dict[str, list[Any]], timeout: float) -> tuple[bytes, str]:
    """The image bytes and a file name, from ``upload`` (file or base64) or ``upload_url``."""
    upload = first(fields, "upload")
    if isinstance(upload, UploadFile):
        data, name = await upload.read(), clean_filename(upload.filename)
    elif isinstance(upload, str) and upload.strip():
        try:
            data = compat.decode_base64_upload(upload)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        name = "upload"
    elif isinstance(first(fields, "upload_url"), str) and first(fields, "upload_url").strip():
        if not state.config.allow_url_hosts:
            raise HTTPException(400, "upload_url is off on this server (the operator can allow hosts with "
                                     "--allow-url-host); send the image as 'upload'")
        data, name = await run_in_threadpool(fetch_url, first(fields, "upload_url"), state.config.allow_url_hosts,
                                             state.config.max_upload_bytes, timeout)
        name = clean_filename(name)
    else:
        raise HTTPException(400, "upload: this field is required (an image file or its base64 text)")
    if not data:
        raise HTTPException(400, "upload: the file is empty")
    return data, name


async def receive(state: ServerState, request: Request, deadline: float
                  ) -> tuple[dict[str, list[Any]], FormData | None, bytes, str]:
    """The request's fields and image within the deadline (408 for an upload that stalls). The
    caller closes the form (it may hold a spooled temporary file)."""
    form: FormData | None = None
    try:
        fields, form = await asyncio.wait_for(collect_fields(request, state.config.max_upload_bytes),
                                              max(0.001, deadline - time.monotonic()))
        data, name = await upload_of(state, fields, max(0.5, deadline - time.monotonic()))
    except asyncio.TimeoutError:
        state.metrics.rejected.labels("timeout").inc()
        raise HTTPException(408, "the upload did not arrive within the request timeout") from None
    except ClientDisconnect:  # nobody is listening; end quietly
        raise HTTPException(400, "the client went away during the upload") from None
    except BaseException:
        if form is not None:
            await form.close()
        raise
    return fields, form, data, name


def acquire(state: ServerState) -> Slot:
    try:
        return state.pool.acquire()
    except Busy as exc:
        state.metrics.rejected.labels("busy").inc()
        raise HTTPException(429, f"{exc}. Expected available in 1 second.", headers={"Retry-After": "1"}) from None


async def run_read(state: ServerState, slot: Slot, job: ReadJob, deadline: float) -> ReadOutcome:
    """Runs a job on the pool within the request deadline; 504 when it cannot finish in time."""
    remaining = deadline - time.monotonic()
    try:
        if remaining <= 0:
            raise asyncio.TimeoutError
        return await asyncio.wait_for(state.pool.submit(slot, job), remaining)
    except asyncio.TimeoutError:
        state.metrics.rejected.labels("timeout").inc()
        raise HTTPException(504, f"no answer within {state.config.timeout_s:g} s; try again later") from None


def should_store(state: ServerState, fields: dict[str, list[Any]]) -> bool:
    asked = compat.parse_bool(first(fields, "store"))
    return state.config.store_all if asked is None else asked


async def count_call(state: ServerState, who: Principal) -> int:
    """One more successful call this month for the caller; its new count."""
    if who.token_id is None:
        month = period_of(utcnow())
        state.anonymous_calls[month] = state.anonymous_calls.get(month, 0) + 1
        return state.anonymous_calls[month]
    return await state.usage.add(who.token_id)


@router.post("/v1/plate-reader/", status_code=201, openapi_extra=_READER_DOC, tags=["Plate Recognizer"],
             summary="Read the plates in one image (Plate Recognizer Snapshot API)")
@router.post("/v1/plate-reader", status_code=201, include_in_schema=False)
async def plate_reader(request: Request) -> JSONResponse:
    state = get_state(request)
    cfg = state.config
    deadline = time.monotonic() + cfg.timeout_s
    try:
        who = await state.auth.api_principal(request)
    except HTTPException:
        state.metrics.rejected.labels("auth").inc()
        raise
    wait = state.limiter.wait(who)
    if wait:
        state.metrics.rejected.labels("throttled").inc()
        raise throttled(wait)
    slot = acquire(state)
    form: FormData | None = None
    try:
        fields, form, data, name = await receive(state, request, deadline)
        try:
            config = compat.parse_config(first(fields, "config"))
            stamp = compat.parse_timestamp(first(fields, "timestamp"))
        except ValueError as exc:
            state.metrics.rejected.labels("bad_input").inc()
            raise HTTPException(400, str(exc)) from None
        camera = first(fields, "camera_id")
        camera = camera.strip() if isinstance(camera, str) and camera.strip() else None
        if camera is not None and len(camera) > 64:
            raise HTTPException(400, "camera_id: at most 64 characters")
        regions = compat.parse_regions(v for v in fields.get("regions", []) if isinstance(v, str))
        mmc = bool(compat.parse_bool(first(fields, "mmc")))
        job = ReadJob(data, name, compat.read_options(config, regions), store=should_store(state, fields),
                      camera=camera or cfg.default_camera, seen=stamp, keep_frame=cfg.keep_frames,
                      deadline=deadline, answer=True, answer_mmc=mmc)
        del data
        outcome = await run_read(state, slot, job, deadline)
    finally:
        slot.abandon()
        if form is not None:
            await form.close()
    if outcome.status != 201 or outcome.result is None:
        raise HTTPException(outcome.status, outcome.error or "cannot read this image")
    if outcome.read_ids:
        state.feed.notify()
    state.metrics.plates.inc(len(outcome.result.results))
    calls = await count_call(state, who)
    if outcome.answer is None:  # a 201 outcome of a job with answer=True always carries them
        raise HTTPException(500, "the worker answered without results")
    body = compat.snapshot_response(
        outcome.result, outcome.answer, filename=name, camera_id=camera, timestamp=stamp or utcnow(),
        calls=calls, max_calls=UNLIMITED_CALLS, read_ids=outcome.read_ids, store_error=outcome.store_error,
        engine=state.engine, spooled=outcome.spooled)
    return JSONResponse(body, status_code=201)


@router.get("/v1/statistics/", tags=["Plate Recognizer"], summary="This month's calls of the calling token")
@router.get("/v1/statistics", include_in_schema=False)
async def statistics(request: Request) -> dict[str, Any]:
    state = get_state(request)
    who = await state.auth.api_principal(request)
    now = utcnow()
    if who.token_id is None:
        calls = state.anonymous_calls.get(period_of(now), 0)
    else:
        try:
            calls = await state.usage.calls(who.token_id)
        except StoreError as exc:
            raise HTTPException(503, f"usage not readable now: {exc}") from None
    return compat.statistics(calls, UNLIMITED_CALLS, now)


@router.get("/healthz", tags=["Operations"], summary="Liveness and readiness",
            responses={503: {"description": "models still loading, or failed to load"}})
async def healthz(request: Request) -> JSONResponse:
    state = get_state(request)
    pool = state.pool
    ok = pool.ready.is_set() and pool.load_error is None
    body = {"status": "ok" if ok else ("error" if pool.load_error else "loading"), "version": __version__,
            "engine": state.engine, "workers": pool.workers, "capacity": pool.capacity, "slots_used": pool.used,
            "error": pool.load_error, "store": store_health(state)}
    return JSONResponse(body, status_code=200 if ok else 503)


def store_health(state: ServerState) -> dict[str, Any]:
    """The journals' backlog and the media errors: "degraded" while reads wait for the database
    or images cannot be saved (the reads themselves are kept either way)."""
    spools = state.spools()
    media, last_media = state.media_errors(spools)
    degraded = any(h["pending"] or h["outage_s"] for h in spools.values()) or media > 0
    return {"status": "degraded" if degraded else "ok", "label": state.store.label,
            "media_errors": media, "last_media_error": last_media,
            "spool": {name: {k: v for k, v in h.items() if not k.startswith(("media", "last_media"))}
                      for name, h in spools.items()}}


@router.get("/metrics", tags=["Operations"], summary="Prometheus metrics",
            response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    state = get_state(request)
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)
