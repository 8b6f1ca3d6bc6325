"""The service's TOML file: the API, the store, the engine, the cameras and the alert targets.

Everything is checked when the file is read, with errors that name the file, the table and the
key (``plateread.toml: camera[2] (gate-2).zone: needs at least 3 [x, y] points``), so a typo is
a clear refusal at start or reload rather than a camera that silently does something else.
Relative paths (camera files and folders, the SQLite file, media, models) are relative to the
config file. Secrets can come from the environment (``secret_env``, ``password_env``).
"""
from __future__ import annotations

import difflib
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..alerts.mqtt import MqttTarget
from ..alerts.webhook import WebhookTarget
from ..registry import is_off

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: camera names become MQTT topics, Home Assistant ids and URL parts: keep them plain
CAMERA_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
EVENT_CHOICES = ("hits", "all")


class ConfigError(ValueError):
    """The config file is unreadable or wrong; the message says where."""


@dataclass(frozen=True)
class CameraConfig:
    name: str
    source: str | int                      # URL, file, folder (absolute) or webcam index
    description: str | None = None
    region: str | None = None              # plate formats to fit (overrides [engine] region)
    zone: tuple[tuple[float, float], ...] | None = None   # polygon in frame pixels
    min_plate: tuple[int, int] = (0, 0)    # width, height in pixels
    max_fps: float | None = None           # process at most this many frames per second
    fps: float | None = None               # frame rate of a folder / override of a file's
    loop: bool = False                     # files and folders: start again at the end
    realtime: bool = False                 # files and folders: play at their frame rate
    track_timeout: float = 1.0
    min_frames: int = 2
    min_score: float = 0.1
    timeout: float = 5.0                   # stream open/read timeout
    #: live frames that may wait for the engine (beyond: latest wins). Several cameras share the
    #: cores, so one slow frame must not cost the next ones (measured: docs/SERVICE.md)
    buffer: int = 4

    @property
    def is_file(self) -> bool:
        return not isinstance(self.source, int) and "://" not in self.source


@dataclass(frozen=True)
class WatchdogConfig:
    stall_s: float = 15.0          # no frame for this long: restart the camera
    restart_min_s: float = 1.0     # backoff between restarts of a failing camera
    restart_max_s: float = 60.0


@dataclass(frozen=True)
class AlertsConfig:
    webhooks: tuple[WebhookTarget, ...] = ()
    mqtt: MqttTarget | None = None
    retry_min_s: float = 1.0
    retry_max_s: float = 300.0
    give_up_after_h: float = 72.0

    @property
    def targets(self) -> tuple[WebhookTarget | MqttTarget, ...]:
        return self.webhooks + ((self.mqtt,) if self.mqtt else ())


@dataclass(frozen=True)
class WatchSeed:
    plate: str
    fuzzy: int = 0
    label: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class ServiceConfig:
    path: Path
    server: dict[str, Any] = field(default_factory=dict)     # serve's options, by argparse name
    store: dict[str, Any] = field(default_factory=dict)      # db, media, retention_days
    engine: dict[str, Any] = field(default_factory=dict)     # engine options, by argparse name
    cameras: tuple[CameraConfig, ...] = ()
    alerts: AlertsConfig = AlertsConfig()
    watchdog: WatchdogConfig = WatchdogConfig()
    watchlist: tuple[WatchSeed, ...] = ()

    def camera(self, name: str) -> CameraConfig | None:
        return next((c for c in self.cameras if c.name == name), None)


class _Table:
    """One TOML table being read: typed getters that report the key's full path, and a check
    that nothing unknown was left over (with a 'did you mean')."""

    def __init__(self, data: Any, where: str, file: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{file}: {where}: expected a table")
        self.data, self.where, self.file = dict(data), where, file
        self.used: set[str] = set()

    def fail(self, key: str, message: str) -> ConfigError:
        where = f"{self.where}.{key}" if self.where else key
        return ConfigError(f"{self.file}: {where}: {message}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None, *,
            check: Callable[[Any], str | None] | None = None) -> Any:
        self.used.add(key)
        if key not in self.data:
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise self.fail(key, f"expected {names}, got {type(value).__name__} {value!r}")
        if check is not None and (why := check(value)):
            raise self.fail(key, why)
        return value

    def done(self) -> None:
        for key in self.data:
            if key not in self.used:
                close = difflib.get_close_matches(key, sorted(self.used), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(self.used))})"
                raise self.fail(key, "unknown setting" + hint)


def _positive(v: float) -> str | None:
    return None if math.isfinite(v) and v > 0 else "must be a positive number"


def _non_negative(v: float) -> str | None:
    return None if math.isfinite(v) and v >= 0 else "must be zero or more"


def _choice(*options: str) -> Callable[[str], str | None]:
    return lambda v: None if v in options else f"must be one of {', '.join(options)}"


def _path(base: Path, value: str) -> str:
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def _secret(t: _Table, key: str, required: bool) -> str | None:
    direct = t.get(key, str)
    env = t.get(f"{key}_env", str)
    if direct is not None and env is not None:
        raise t.fail(key, f"give {key} or {key}_env, not both")
    if env is not None:
        if env not in os.environ:
            raise t.fail(f"{key}_env", f"the environment variable {env} is not set")
        return os.environ[env]
    if required and not direct:
        raise t.fail(key, f"required ({key} = \"...\" or {key}_env = \"VARIABLE\")")
    return direct


# ---- the tables ----------------------------------------------------------------------------------

#: [server] key -> (serve's argparse dest, type)
SERVER_KEYS: dict[str, tuple[str, type | tuple[type, ...]]] = {
    "host": ("host", str), "port": ("port", int), "workers": ("workers", int),
    "worker_threads": ("worker_threads", bool), "queue": ("queue", int),
    "max_upload_mb": ("max_upload_mb", float), "max_megapixels": ("max_megapixels", float),
    "rate_limit": ("rate_limit", float), "burst": ("burst", int), "timeout": ("timeout", float),
    "store": ("store", bool), "default_camera": ("camera", str), "keep_frames": ("keep_frames", bool),
    "log_level": ("log_level", str),
}
#: [engine] key -> (argparse dest, type)
ENGINE_KEYS: dict[str, tuple[str, type | tuple[type, ...]]] = {
    "name": ("engine", str), "region": ("region", str), "threshold": ("threshold", float),
    "threads": ("threads", int), "detector_model": ("detector_model", str), "ocr_model": ("ocr_model", str),
    "zoom": ("zoom", bool), "second_look": ("second_look", float), "plate_images": ("plate_images", bool),
    "detector": ("detector", str), "recognizer": ("recognizer", str),
    "second_ocr_model": ("second_ocr_model", str),
}


def _server(t: _Table) -> dict[str, Any]:
    out = {dest: v for key, (dest, kind) in SERVER_KEYS.items() if (v := t.get(key, kind)) is not None}
    auth = t.get("auth", bool)
    if auth is not None:
        out["no_auth"] = not auth
    hosts = t.get("allow_url_hosts", list)
    if hosts is not None:
        if not all(isinstance(h, str) for h in hosts):
            raise t.fail("allow_url_hosts", "expected a list of host names")
        out["allow_url_host"] = hosts
    if "port" in out and not 0 < out["port"] < 65536:
        raise t.fail("port", "must be 1-65535")
    levels = ("critical", "error", "warning", "info", "debug")
    if out.get("log_level", "info") not in levels:
        raise t.fail("log_level", f"must be one of {', '.join(levels)}")
    t.done()
    return out


def _store(t: _Table, base: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    db = t.get("db", str)
    if db is not None:
        out["db"] = db if "://" in db else _path(base, db)
    media = t.get("media", str)
    if media is not None:
        out["media"] = _path(base, media)
    days = t.get("retention_days", float, check=_non_negative)
    if days is not None:
        out["retention_days"] = days
    t.done()
    return out


def _engine(t: _Table, base: Path) -> dict[str, Any]:
    out = {dest: v for key, (dest, kind) in ENGINE_KEYS.items() if (v := t.get(key, kind)) is not None}
    for key in ("detector_model", "ocr_model", "second_ocr_model"):
        if key in out and not (key == "second_ocr_model" and is_off(out[key])):
            out[key] = _path(base, out[key])
    t.done()
    return out


def _zone(t: _Table) -> tuple[tuple[float, float], ...] | None:
    raw = t.get("zone", list)
    if raw is None:
        return None
    try:
        pts = tuple((float(p[0]), float(p[1])) for p in raw if len(p) == 2)
    except (TypeError, ValueError, IndexError):
        pts = ()
    if len(pts) < 3 or len(pts) != len(raw) or not all(math.isfinite(c) for p in pts for c in p):
        raise t.fail("zone", "needs at least 3 [x, y] points (frame pixels), "
                             "e.g. [[0, 200], [640, 200], [640, 480], [0, 480]]")
    return pts


def _camera(t: _Table, base: Path) -> CameraConfig:
    name = t.get("name", str)
    if name is None:
        raise t.fail("name", "every camera needs a name")
    if not CAMERA_NAME.match(name):
        raise t.fail("name", f"{name!r}: use 1-64 letters, digits, '-' or '_' (it becomes MQTT topics and ids)")
    t.where = f"{t.where} ({name})"
    source = t.get("source", (str, int))
    if source is None or source == "":
        raise t.fail("source", "required: an RTSP/HTTP URL, a video file, a frame folder or a webcam index")
    if isinstance(source, str):
        if source.isdigit():
            source = int(source)
        elif not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", source):
            source = _path(base, source)
    if isinstance(source, int) and source < 0:
        raise t.fail("source", "a webcam index is 0 or more")
    mp = t.get("min_plate", list, [0, 0])
    if len(mp) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in mp):
        raise t.fail("min_plate", "expected [width, height] in pixels, e.g. [60, 14]")
    cam = CameraConfig(
        name=name, source=source, description=t.get("description", str), region=t.get("region", str),
        zone=_zone(t), min_plate=(mp[0], mp[1]), max_fps=t.get("max_fps", float, check=_positive),
        fps=t.get("fps", float, check=_positive), loop=t.get("loop", bool, False),
        realtime=t.get("realtime", bool, False), track_timeout=t.get("track_timeout", float, 1.0, check=_positive),
        min_frames=t.get("min_frames", int, 2, check=lambda v: None if v >= 1 else "must be 1 or more"),
        min_score=t.get("min_score", float, 0.1, check=_non_negative),
        timeout=t.get("timeout", float, 5.0, check=_positive),
        buffer=t.get("buffer", int, 4, check=lambda v: None if 1 <= v <= 100 else "must be 1-100 frames"))
    enabled = t.get("enabled", bool, True)
    t.done()
    if enabled and cam.is_file and not os.path.exists(str(source)):
        raise t.fail("source", f"no such file or folder: {source}")
    return cam if enabled else None  # type: ignore[return-value]


def _webhook(t: _Table) -> WebhookTarget:
    name = t.get("name", str)
    if not name or not CAMERA_NAME.match(name):
        raise t.fail("name", "every webhook needs a name of letters, digits, '-' or '_'")
    t.where = f"{t.where} ({name})"
    url = t.get("url", str)
    if not url or not re.match(r"^https?://", url):
        raise t.fail("url", "required: an http:// or https:// URL")
    headers = t.get("headers", dict, {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise t.fail("headers", "expected a table of strings")
    target = WebhookTarget(name=name, url=url, secret=_secret(t, "secret", True) or "",
                           events=t.get("events", str, "hits", check=_choice(*EVENT_CHOICES)),
                           timeout_s=t.get("timeout_s", float, 5.0, check=_positive),
                           headers=tuple(sorted(headers.items())))
    t.done()
    return target


def _mqtt(t: _Table) -> MqttTarget:
    host = t.get("host", str)
    if not host:
        raise t.fail("host", "required: the broker's host name or address")
    prefix = t.get("prefix", str, "plateread", check=lambda v: None if v and not set(v) & set("#+") and not
                   v.endswith("/") else "a topic prefix without '#', '+' or a trailing '/'")
    target = MqttTarget(
        host=host, port=t.get("port", int, 1883, check=lambda v: None if 0 < v < 65536 else "must be 1-65535"),
        username=t.get("username", str), password=_secret(t, "password", False), client_id=t.get("client_id", str),
        prefix=prefix, discovery=t.get("discovery", bool, True),
        discovery_prefix=t.get("discovery_prefix", str, "homeassistant"),
        events=t.get("events", str, "all", check=_choice(*EVENT_CHOICES)),
        keepalive=t.get("keepalive", int, 30, check=lambda v: None if v >= 5 else "must be 5 s or more"),
        tls=t.get("tls", bool, False), timeout_s=t.get("timeout_s", float, 5.0, check=_positive))
    t.done()
    return target


def _alerts(t: _Table) -> AlertsConfig:
    hooks = t.get("webhook", list, [])
    webhooks = tuple(_webhook(_Table(h, f"alerts.webhook[{i + 1}]", t.file)) for i, h in enumerate(hooks))
    names = [w.name for w in webhooks]
    if len(set(names)) != len(names):
        raise t.fail("webhook", "two webhooks have the same name")
    mq = t.get("mqtt", dict)
    out = AlertsConfig(webhooks=webhooks, mqtt=_mqtt(_Table(mq, "alerts.mqtt", t.file)) if mq is not None else None,
                       retry_min_s=t.get("retry_min_s", float, 1.0, check=_positive),
                       retry_max_s=t.get("retry_max_s", float, 300.0, check=_positive),
                       give_up_after_h=t.get("give_up_after_h", float, 72.0, check=_positive))
    t.done()
    return out


def _watchdog(t: _Table) -> WatchdogConfig:
    out = WatchdogConfig(stall_s=t.get("stall_s", float, 15.0, check=_positive),
                         restart_min_s=t.get("restart_min_s", float, 1.0, check=_positive),
                         restart_max_s=t.get("restart_max_s", float, 60.0, check=_positive))
    t.done()
    return out


def _watchlist(items: Any, file: str) -> tuple[WatchSeed, ...]:
    if not isinstance(items, list):
        raise ConfigError(f"{file}: watchlist: expected [[watchlist]] tables")
    out = []
    for i, raw in enumerate(items):
        t = _Table(raw, f"watchlist[{i + 1}]", file)
        plate = t.get("plate", str)
        if not plate:
            raise t.fail("plate", "required")
        out.append(WatchSeed(plate, t.get("fuzzy", int, 0, check=lambda v: None if 0 <= v <= 4 else "must be 0-4"),
                             t.get("label", str), t.get("reason", str)))
        t.done()
    return tuple(out)


def load_config(path: str | os.PathLike[str]) -> ServiceConfig:
    """Reads and checks the file; raises ConfigError saying what is wrong and where."""
    p = Path(path).expanduser().resolve()
    file = str(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {file}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    base = p.parent
    top = _Table(data, "", file)
    server = _server(_Table(top.get("server", dict, {}), "server", file))
    store = _store(_Table(top.get("store", dict, {}), "store", file), base)
    engine = _engine(_Table(top.get("engine", dict, {}), "engine", file), base)
    cams = top.get("camera", list, [])
    cameras = tuple(c for i, raw in enumerate(cams) if (c := _camera(_Table(raw, f"camera[{i + 1}]", file), base)))
    names = [c.name for c in cameras]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise ConfigError(f"{file}: camera: two cameras are named {dup!r}")
    alerts = _alerts(_Table(top.get("alerts", dict, {}), "alerts", file))
    watchdog = _watchdog(_Table(top.get("watchdog", dict, {}), "watchdog", file))
    watchlist = _watchlist(top.get("watchlist", list, []), file)
    top.done()
    return ServiceConfig(p, server, store, engine, cameras, alerts, watchdog, watchlist)
