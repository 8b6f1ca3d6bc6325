"""``plateread serve``: the HTTP API (Plate Recognizer-compatible) and the dashboard."""
from __future__ import annotations

import argparse
import copy
import logging
import sys
import threading
from typing import Any

from ..reader import Reader
from .engine_options import add_engine_options, reader_from_args
from .reads_cmd import add_spool_option, add_store_options, open_store

#: open connections uvicorn accepts at once (each idle one costs little; past it: 503)
MAX_CONNECTIONS = 256


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="serve a Plate Recognizer-compatible HTTP API and a dashboard",
        description="Serve POST /v1/plate-reader/ (Plate Recognizer's Snapshot API: point Home Assistant, "
                    "Frigate or Node-RED integrations here), a JSON API under /api/ (docs at /docs) and a "
                    "dashboard at /. Clients authenticate with 'Authorization: Token KEY' (plateread tokens). "
                    "Needs the [server] extra.")
    g = p.add_argument_group("server")
    g.add_argument("--config", metavar="FILE",
                   help="a TOML file of cameras to watch, alert targets (webhooks, MQTT) and the settings below; "
                        "flags given here win over it (docs/SERVICE.md, examples/plateread.toml)")
    g.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1; 0.0.0.0 for all)")
    g.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    g.add_argument("--workers", type=int, metavar="N", help="inference workers, each with its own models "
                   "(default: one per core)")
    g.add_argument("--worker-threads", action="store_true",
                   help="run the inference workers as threads of the server process instead of forked processes "
                        "(less memory, slower: they share the GIL with the HTTP side)")
    g.add_argument("--queue", type=int, metavar="N", help="requests that may wait for a worker (default: 4 per "
                   "worker); more are refused at once with 429")
    g.add_argument("--no-auth", action="store_true", help="no token needed (refused unless --host is loopback)")
    g.add_argument("--max-upload-mb", type=float, default=10.0, metavar="MB",
                   help="largest request body (default: 10)")
    g.add_argument("--max-megapixels", type=float, default=36.0, metavar="MP",
                   help="largest image, in millions of pixels (default: 36)")
    g.add_argument("--rate-limit", type=float, default=10.0, metavar="N",
                   help="requests per second per token, 0 for none (default: 10; `tokens create --rate` "
                        "sets one token's own)")
    g.add_argument("--burst", type=int, metavar="N", help="requests a token may send at once (default: the rate)")
    g.add_argument("--timeout", type=float, default=8.0, metavar="S",
                   help="answer or give up within S seconds (default: 8; clients wait 10)")
    g.add_argument("--allow-url-host", action="append", default=[], metavar="HOST",
                   help="let upload_url fetch from HOST (repeatable; default: upload_url is refused)")
    g.add_argument("--no-frames", dest="keep_frames", action="store_false",
                   help="store only plate crops, not the whole photo (the read page then shows no frame)")
    g.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    add_engine_options(p)
    add_store_options(p)
    add_spool_option(p)
    p.set_defaults(func=run)


def _reader_factory(args: argparse.Namespace, max_pixels: int) -> Any:
    """Builds one reader now (bad engine options fail here, with a clean message) and hands it to
    the first worker; the others build their own."""
    built = [reader_from_args(args)]
    lock = threading.Lock()

    def make() -> Reader:
        with lock:
            reader = built.pop() if built else None
        reader = reader or reader_from_args(args)
        reader.max_pixels = max_pixels
        return reader

    return make


def apply_config(args: argparse.Namespace, service: Any) -> argparse.Namespace:
    """The config file's [server], [store] and [engine] settings, except where a flag was given
    (a flag still at its default counts as not given)."""
    from .main import build_parser

    defaults = build_parser().parse_args(["serve"])
    merged = copy.copy(args)
    for section in (service.server, service.store, service.engine):
        for dest, value in section.items():
            if getattr(args, dest, None) == getattr(defaults, dest, None):
                setattr(merged, dest, value)
    return merged


def _camera_reader_factory(args: argparse.Namespace, max_pixels: int) -> Any:
    """Each camera gets its own reader (its own models: cameras never wait for each other or for
    the API), with the camera's region hint over the engine's."""
    def make(camera: Any) -> Reader:
        a = copy.copy(args)
        if camera.region:
            a.region = camera.region
        reader = reader_from_args(a)
        reader.max_pixels = max_pixels
        return reader

    return make


def _setup_logging(level: str) -> None:
    """Camera and alert messages on stderr beside uvicorn's (journald keeps them under systemd)."""
    for name in ("plateread.cameras", "plateread.alerts", "plateread.video", "plateread.server"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            h = logging.StreamHandler(sys.stderr)
            h.setFormatter(logging.Formatter("%(asctime)s plateread %(levelname)s %(message)s"))
            logger.addHandler(h)
            logger.setLevel(level.upper())
            logger.propagate = False
    logging.getLogger("httpx").setLevel(logging.WARNING)   # one INFO line per webhook POST otherwise


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..server import ServerConfig, create_app
    except ImportError as exc:
        print(f"plateread: error: serve needs the server extra (pip install 'plateread[server]'): {exc}",
              file=sys.stderr)
        return 2
    service_config = None
    if args.config:
        from ..cameras.config import load_config

        service_config = load_config(args.config)      # a ConfigError is a ValueError: one line, exit 2
        args = apply_config(args, service_config)
        _setup_logging(args.log_level)
    config = ServerConfig(
        host=args.host, port=args.port, auth=not args.no_auth,
        **({"workers": args.workers} if args.workers else {}), queue=args.queue,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024), max_pixels=int(args.max_megapixels * 1e6),
        rate=args.rate_limit, burst=args.burst, timeout_s=args.timeout, store_all=args.store,
        default_camera=args.camera, keep_frames=args.keep_frames, spool=args.spool,
        processes=not args.worker_threads,
        allow_url_hosts=frozenset(h.strip().lower() for h in args.allow_url_host if h.strip()))
    make_reader = _reader_factory(args, config.max_pixels)
    store = open_store(args)
    try:
        if config.auth and not store.tokens():
            info, secret = store.token_create("default")
            print(f"plateread: no API tokens yet; created {info.name!r}. Its secret, shown this once:\n\n"
                  f"    {secret}\n\nClients send 'Authorization: Token {secret}'. "
                  "Manage tokens with `plateread tokens`.\n", file=sys.stderr, flush=True)
        service = None
        if service_config is not None:
            from ..cameras.service import CameraService

            service = CameraService(service_config, store, _camera_reader_factory(args, config.max_pixels),
                                    spool=args.spool)
        app = create_app(config, store, make_reader, engine=args.engine, service=service)
        server = uvicorn.Server(uvicorn.Config(
            app, host=args.host, port=args.port, log_level=args.log_level, timeout_graceful_shutdown=5,
            limit_concurrency=MAX_CONNECTIONS, server_header=False, proxy_headers=False))
        app.state.plateread.exiting = lambda: server.should_exit
        print(f"plateread: serving http://{args.host}:{args.port}/ ({config.workers} worker(s), engine "
              f"{args.engine}, store {store.label}, {'token auth' if config.auth else 'NO AUTH'}"
              f"{', storing every read' if config.store_all else ''}"
              f"{f', {len(service_config.cameras)} camera(s) from {args.config}' if service_config else ''})",
              file=sys.stderr, flush=True)
        server.run()
        return 0 if server.started else 1
    finally:
        store.close()
