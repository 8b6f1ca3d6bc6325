"""The app factory: routes, middleware (body limit, security headers, metrics) and the lifecycle
of the inference pool and the live feed."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable

from fastapi import FastAPI, HTTPException, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..reader import Reader
from ..store import Store
from . import api, dashboard, native
from .auth import Authenticator, RateLimiter, SessionSigner
from .config import ServerConfig
from .events import LiveFeed
from .metrics import HttpMetricsMiddleware, Metrics, StoreCollector
from .pool import InferencePool
from .retention import retain_every
from .state import ServerState
from .usage import UsageCounter

if TYPE_CHECKING:
    from ..cameras.service import CameraService

log = logging.getLogger("plateread.server")
HERE = Path(__file__).resolve().parent
FORM_OVERHEAD = 64 * 1024        # the other form fields and multipart framing, on top of the image
#: the dashboard and the API: scripts and styles from this server only, no framing, no inline code
CSP = ("default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY")]
DOCS_PATHS = ("/docs", "/redoc")   # FastAPI's documentation pages load their scripts from a CDN


class BodyLimitMiddleware:
    """413 for a body over the limit: at once from Content-Length, or as soon as a chunked body
    passes it, so no request can make the server buffer more than the limit."""

    def __init__(self, app: Any, max_bytes: int, metrics: Metrics) -> None:
        self.app, self.max_bytes, self.metrics = app, max_bytes, metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            self.metrics.rejected.labels("too_large").inc()
            await _send_json(send, 413, self._detail(), close=True)
            return
        seen = 0

        async def counted() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    self.metrics.rejected.labels("too_large").inc()
                    raise HTTPException(413, self._detail())
            return message

        await self.app(scope, counted, send)

    def _detail(self) -> str:
        return f"Upload too large: the limit is {self.max_bytes:,} bytes per request."


async def _send_json(send: Any, status: int, detail: str, close: bool = False) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class SecurityHeadersMiddleware:
    """Headers every response gets; pages and API answers (personal data) are never cached."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]

        async def add(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [h for h in SECURITY_HEADERS if h[0] not in names]
                if not path.startswith(DOCS_PATHS):
                    headers.append((b"content-security-policy", CSP.encode()))
                if b"cache-control" not in names and not path.startswith("/static/"):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, add)


async def reload_service(state: ServerState) -> dict[str, Any]:
    """Re-reads the service's config file (SIGHUP and ``POST /api/reload``)."""
    if state.service is None:
        raise HTTPException(409, "this server runs no cameras (start it with --config FILE)")
    from ..cameras.config import ConfigError

    try:
        report = await asyncio.to_thread(state.service.reload)
    except ConfigError as exc:
        log.error("reload refused, nothing changed: %s", exc)
        raise HTTPException(400, f"reload refused, nothing changed: {exc}") from None
    log.warning("reloaded %s: %s", state.service.config.path, report.to_dict())
    return report.to_dict()


def create_app(config: ServerConfig, store: Store, make_reader: Callable[[], Reader], *,
               engine: str = "", service: "CameraService | None" = None) -> FastAPI:
    """A server over ``store`` whose workers each read with ``make_reader()``. The store stays the
    caller's to close; the pool, the live feed and the camera ``service`` (if any) start and stop
    with the app."""
    metrics = Metrics()
    if service is not None:
        from .metrics import ServiceCollector

        metrics.registry.register(ServiceCollector(service))
    pool = InferencePool(make_reader, workers=config.workers, queue_size=config.queue_size,
                         store=store, metrics=metrics, spool=config.spool, processes=config.processes)
    state = ServerState(
        config=config, store=store, pool=pool, auth=Authenticator(store, config.auth),
        limiter=RateLimiter(config.rate, config.bucket), metrics=metrics,
        sessions=SessionSigner(config.secret, config.session_hours * 3600),
        feed=LiveFeed(store, config.sse_poll_s, metrics), usage=UsageCounter(store), engine=engine,
        service=service)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool.start()
        await asyncio.to_thread(pool.ready.wait)      # listen only once every worker has its models
        if pool.load_error:
            pool.close()
            raise RuntimeError(f"cannot load the models: {pool.load_error}")
        await state.feed.start()
        state.usage.start()
        retention = asyncio.create_task(retain_every(store))   # purge hourly, not only on adds
        loop = asyncio.get_running_loop()
        if service is not None:
            service.on_event = lambda: loop.call_soon_threadsafe(state.feed.notify)
            await asyncio.to_thread(service.start)
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
                loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(_hup()))
        try:
            yield
        finally:
            retention.cancel()
            if service is not None:
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(signal.SIGHUP)
                await asyncio.to_thread(service.stop)
            await state.feed.close()
            await state.usage.close()
            await asyncio.to_thread(pool.close)

    async def _hup() -> None:
        with contextlib.suppress(HTTPException):   # a refused reload is logged and changes nothing
            await reload_service(state)

    app = FastAPI(title="plateread", version=__version__, lifespan=lifespan, redirect_slashes=False,
                  description="Plate Recognizer-compatible plate reading (`/v1/plate-reader/`), a JSON API "
                              "over the store of reads (`/api/`), and a dashboard (`/`). Authenticate with "
                              "`Authorization: Token <key>` (`plateread tokens create NAME`).")
    app.state.plateread = state
    metrics.registry.register(StoreCollector(state))
    app.include_router(api.router)
    app.include_router(native.router)
    app.include_router(dashboard.router)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """JSON ``{"detail": …}`` like Plate Recognizer, except a person's browser gets a page."""
        accept = request.headers.get("accept", "")
        if "text/html" in accept and not request.url.path.startswith(("/v1/", "/api/")):
            html = dashboard.env.get_template("message.html").render(
                title=f"Error {exc.status_code}", message=str(exc.detail), user=None, csrf="", auth=config.auth,
                path=request.url.path)
            return HTMLResponse(html, status_code=exc.status_code, headers=exc.headers)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(dashboard.NotSignedIn)
    async def not_signed_in(request: Request, exc: dashboard.NotSignedIn) -> Response:
        return dashboard.to_login()

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal server error"}, status_code=500)

    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_upload_bytes + FORM_OVERHEAD, metrics=metrics)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
    return app
