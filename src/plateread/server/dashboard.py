"""The web dashboard: server-rendered pages over the store, a little plain JavaScript, no build step.

Login is with an API token; the session is a signed cookie (HttpOnly, SameSite=Strict) holding the
token's id and a CSRF token that every form must send back. Templates escape everything (plate
text, camera names, labels and file names are user input).
"""
from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..store import StoreError
from . import compat
from .api import acquire, clean_filename, count_call, first, receive, run_read
from .auth import SESSION_COOKIE, Principal, csrf_ok, new_csrf, token_from_header
from .native import camera_rows, search
from .pool import ReadJob, ReadOptions
from .state import ServerState, get_state

router = APIRouter(include_in_schema=False)
HERE = Path(__file__).resolve().parent
PAGE = 50
KEEPALIVE_S = 15.0
MEDIA_PATH = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{64}\.jpg$")

env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=select_autoescape(default=True),
                  trim_blocks=True, lstrip_blocks=True)
env.globals["version"] = __version__


class Page:
    """A request's session and user; renders templates and keeps the cookie in step."""

    def __init__(self, request: Request, session: dict[str, Any] | None, user: Principal | None) -> None:
        self.request, self.user = request, user
        self.fresh = session is None or "csrf" not in session
        self.session = session if not self.fresh else {"csrf": new_csrf()}

    @property
    def csrf(self) -> str:
        return str(self.session["csrf"])

    def set_cookie(self, response: Response) -> Response:
        state = get_state(self.request)
        response.set_cookie(SESSION_COOKIE, state.sessions.dumps(self.session),
                            max_age=int(state.config.session_hours * 3600), httponly=True, samesite="strict",
                            secure=self.request.url.scheme == "https", path="/")
        return response

    def render(self, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        state = get_state(self.request)
        html = env.get_template(name).render(csrf=self.csrf, user=self.user, auth=state.config.auth,
                                             path=self.request.url.path, **ctx)
        response = HTMLResponse(html, status_code=status)
        return self.set_cookie(response) if self.fresh else response


async def page(request: Request) -> Page:
    state = get_state(request)
    session = state.sessions.loads(request.cookies.get(SESSION_COOKIE))
    user = await state.auth.session_principal(session)
    return Page(request, session, user)


def to_login() -> RedirectResponse:
    return RedirectResponse("/login", status_code=303)


class NotSignedIn(Exception):
    """A dashboard page asked for without a session; the app answers it with ``to_login()``."""


async def signed_in(request: Request) -> Page:
    """The page of a signed-in user; raises NotSignedIn (a redirect to the login page) otherwise."""
    p = await page(request)
    if p.user is None:
        raise NotSignedIn()
    return p


async def form_checked(request: Request, p: Page) -> dict[str, Any]:
    """A small (non-file) form whose CSRF token matches the session's; 403 otherwise."""
    form = await request.form(max_files=0, max_fields=20, max_part_size=16 * 1024)
    data = {k: v for k, v in form.items() if isinstance(v, str)}
    if not csrf_ok(p.session, data.get("csrf")):
        raise HTTPException(403, "CSRF check failed: reload the page and try again")
    return data


# ---- login ---------------------------------------------------------------------------------------

@router.get("/login")
async def login_form(request: Request) -> Response:
    p = await page(request)
    if p.user is not None:
        return RedirectResponse("/", status_code=303)
    return p.render("login.html", title="Log in")


@router.post("/login")
async def login(request: Request) -> Response:
    p = await page(request)
    data = await form_checked(request, p)
    who = await get_state(request).auth.login(data.get("token", ""))
    if who is None or who.token_id is None:
        return p.render("login.html", status=403, title="Log in", error="That token is not valid.")
    p.session, p.fresh = {"tid": who.token_id, "csrf": new_csrf()}, True   # a new session id on login
    return p.set_cookie(RedirectResponse("/", status_code=303))


@router.post("/logout")
async def logout(request: Request) -> Response:
    p = await page(request)
    await form_checked(request, p)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# ---- reads ---------------------------------------------------------------------------------------

def _int(value: str | None, default: int, lo: int, hi: int) -> int:
    try:
        return min(hi, max(lo, int(value))) if value not in (None, "") else default
    except ValueError:
        return default


@router.get("/")
async def reads_page(request: Request) -> Response:
    p = await signed_in(request)
    q = request.query_params
    plate, camera = (q.get("plate") or "").strip()[:64], (q.get("camera") or "").strip()[:64]
    fuzzy, page_no = _int(q.get("fuzzy"), 0, 0, 4), _int(q.get("page"), 1, 1, 100_000)
    hits = q.get("hits") in ("1", "on", "true")
    state = get_state(request)
    error = None
    try:
        found, watch = await run_in_threadpool(search, state, plate or None, fuzzy, camera or None, None, None,
                                               None, hits, PAGE + 1, (page_no - 1) * PAGE)
    except HTTPException as exc:
        found, watch, error = [], [], str(exc.detail)
    rows = [(r, [w.label or w.plate for w in state.store.watchlist_match(r.plate, watch)]) for r in found[:PAGE]]
    live = not (plate or camera or hits) and page_no == 1
    return p.render("reads.html", title="Reads", rows=rows, plate=plate, camera=camera, fuzzy=fuzzy, hits=hits,
                    page=page_no, more=len(found) > PAGE, live=live, error=error)


def _frame_size(state: ServerState, rel: str | None) -> tuple[int, int] | None:
    if not rel:
        return None
    from PIL import Image

    try:
        with Image.open(state.store.media_path(rel)) as im:
            return im.size
    except OSError:
        return None


@router.get("/reads/{read_id}")
async def read_page(request: Request, read_id: int) -> Response:
    p = await signed_in(request)
    state = get_state(request)
    # ids past 64 bits overflow the database driver (a 500): no such read either
    r = await run_in_threadpool(state.store.get, read_id) if 0 < read_id < 2**63 else None
    if r is None:
        return p.render("message.html", status=404, title="Not found", message=f"There is no read {read_id}.")
    hits = await run_in_threadpool(state.store.watchlist_match, r.plate)
    size = await run_in_threadpool(_frame_size, state, r.frame_path)
    corners = " ".join(f"{x:.1f},{y:.1f}" for x, y in r.corners) if r.corners else None
    return p.render("read.html", title=f"Read {r.plate}", r=r, hits=hits, frame_size=size, corners=corners)


# ---- watchlist and cameras -----------------------------------------------------------------------

@router.get("/watchlist")
async def watchlist_page(request: Request) -> Response:
    p = await signed_in(request)
    items = await run_in_threadpool(get_state(request).store.watchlist)
    prefill = request.query_params.get("plate", "")[:64]
    return p.render("watchlist.html", title="Watchlist", items=items, prefill=prefill)


@router.post("/watchlist")
async def watchlist_add(request: Request) -> Response:
    p = await signed_in(request)
    data = await form_checked(request, p)
    state = get_state(request)
    try:
        await run_in_threadpool(state.store.watchlist_add, data.get("plate", ""),
                                fuzzy=_int(data.get("fuzzy"), 0, 0, 4), label=(data.get("label") or None),
                                reason=(data.get("reason") or None))
    except StoreError as exc:
        items = await run_in_threadpool(state.store.watchlist)
        return p.render("watchlist.html", status=400, title="Watchlist", items=items, error=str(exc),
                        prefill=data.get("plate", ""))
    return RedirectResponse("/watchlist", status_code=303)


@router.post("/watchlist/remove")
async def watchlist_remove(request: Request) -> Response:
    p = await signed_in(request)
    data = await form_checked(request, p)
    await run_in_threadpool(get_state(request).store.watchlist_remove, data.get("plate", ""))
    return RedirectResponse("/watchlist", status_code=303)


@router.get("/cameras")
async def cameras_page(request: Request) -> Response:
    p = await signed_in(request)
    state = get_state(request)
    cams = await run_in_threadpool(camera_rows, state)
    return p.render("cameras.html", title="Cameras", cameras=cams, service=state.service is not None,
                    message=request.query_params.get("reloaded"))


@router.post("/cameras/reload")
async def cameras_reload(request: Request) -> Response:
    p = await signed_in(request)
    await form_checked(request, p)
    from .app import reload_service

    state = get_state(request)
    try:
        report = await reload_service(state)
    except HTTPException as exc:
        cams = await run_in_threadpool(camera_rows, state)
        return p.render("cameras.html", status=exc.status_code, title="Cameras", cameras=cams,
                        service=state.service is not None, error=str(exc.detail), message=None)
    done = "; ".join(f"{k}: {', '.join(v)}" for k, v in report.items() if v and k != "unchanged") or "nothing changed"
    from urllib.parse import quote

    return RedirectResponse(f"/cameras?reloaded={quote(done)}", status_code=303)


@router.get("/alerts")
async def alerts_page(request: Request) -> Response:
    p = await signed_in(request)
    state = get_state(request)
    q = request.query_params
    wanted = q.get("state") if q.get("state") in ("pending", "delivered", "dead") else None
    page_no = _int(q.get("page"), 1, 1, 100_000)
    rows = await run_in_threadpool(lambda: state.store.outbox(PAGE + 1, (page_no - 1) * PAGE, state=wanted))
    counts = await run_in_threadpool(state.store.outbox_counts)
    targets = state.service.delivery() if state.service is not None else {}
    return p.render("alerts.html", title="Alerts", rows=rows[:PAGE], more=len(rows) > PAGE, page=page_no,
                    state=wanted, counts=sorted(counts.items()), targets=targets)


@router.post("/alerts/retry")
async def alerts_retry(request: Request) -> Response:
    p = await signed_in(request)
    data = await form_checked(request, p)
    state = get_state(request)
    await run_in_threadpool(state.store.outbox_retry, _int(data.get("id"), 0, 0, 2**62))
    if state.service is not None:
        state.service.dispatcher.notify()
    return RedirectResponse("/alerts", status_code=303)


# ---- upload --------------------------------------------------------------------------------------

@router.get("/upload")
async def upload_form(request: Request) -> Response:
    p = await signed_in(request)
    return p.render("upload.html", title="Upload", result=None)


@router.post("/upload")
async def upload(request: Request) -> Response:
    p = await signed_in(request)
    state = get_state(request)
    deadline = time.monotonic() + state.config.timeout_s
    slot = acquire(state)
    form = None
    try:
        try:
            fields, form, data, name = await receive(state, request, deadline)
        except HTTPException as exc:
            return p.render("upload.html", status=exc.status_code, title="Upload", result=None, error=exc.detail)
        if not csrf_ok(p.session, first(fields, "csrf")):
            raise HTTPException(403, "CSRF check failed: reload the page and try again")
        camera = first(fields, "camera")
        camera = camera.strip()[:64] or None if isinstance(camera, str) else None
        regions = compat.parse_regions([first(fields, "regions") or ""])
        keep = bool(compat.parse_bool(first(fields, "store")))
        job = ReadJob(data, clean_filename(name), ReadOptions(regions=regions, annotate=True), store=keep,
                      camera=camera, keep_frame=state.config.keep_frames, deadline=deadline)
        outcome = await run_read(state, slot, job, deadline)
    finally:
        slot.abandon()
        if form is not None:
            await form.close()
    if outcome.status != 201 or outcome.result is None:
        return p.render("upload.html", status=outcome.status, title="Upload", result=None,
                        error=outcome.error or "cannot read this image")
    if outcome.read_ids:
        state.feed.notify()
    await count_call(state, p.user)
    image = "data:image/jpeg;base64," + base64.b64encode(outcome.annotated or b"").decode()
    return p.render("upload.html", title="Upload", result=outcome.result, image=image, read_ids=outcome.read_ids,
                    stored=keep, store_error=outcome.store_error)


# ---- live feed and media -------------------------------------------------------------------------

@router.get("/events")
async def events(request: Request) -> Response:
    p = await page(request)
    if p.user is None:
        raise HTTPException(403, "log in first")
    state = get_state(request)
    q = await state.feed.subscribe()

    async def stream() -> Any:
        try:
            yield "retry: 3000\n\n"
            idle = 0.0
            while not state.exiting():
                try:
                    item = await asyncio.wait_for(q.get(), 1.0)
                except asyncio.TimeoutError:
                    idle += 1.0
                    if idle >= KEEPALIVE_S:
                        idle = 0.0
                        yield ": keep-alive\n\n"
                    continue
                if item is None:
                    break
                idle = 0.0
                yield f"event: read\nid: {item['id']}\ndata: {json.dumps(item)}\n\n"
        finally:
            state.feed.unsubscribe(q)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/media/{rel:path}")
async def media(request: Request, rel: str) -> Response:
    """Crops and frames, to a logged-in user or a caller with a token (they are personal data)."""
    state = get_state(request)
    if token_from_header(request.headers.get("authorization")):
        await state.auth.api_principal(request)
    elif (await page(request)).user is None:
        raise HTTPException(403, "log in first")
    if not MEDIA_PATH.match(rel):
        raise HTTPException(404, "no such image")
    path = state.store.media_path(rel)
    if not path.is_file():
        raise HTTPException(404, "no such image")
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})

