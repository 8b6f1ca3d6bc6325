"""Finding, opening and migrating the database behind the store."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
ENV_DB = "PLATEREAD_DB"
ENV_MEDIA = "PLATEREAD_MEDIA"
BUSY_TIMEOUT_MS = 10_000
ENV_BUSY = "PLATEREAD_SQLITE_BUSY_MS"   # how long a SQLite writer waits for a lock before the spool takes over


class StoreError(RuntimeError):
    """Anything the store cannot do, worded for the person at the command line (no traceback)."""


class StoreUnavailable(StoreError):
    """The database could not be reached or was locked: the same write may succeed later, so a
    writer keeps it (``store.spool``) instead of dropping it."""


def transient(exc: BaseException) -> bool:
    """Whether a database error is an outage (server gone, connection lost, SQLite locked, pool
    exhausted) rather than a problem with the data written."""
    from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError, TimeoutError

    return isinstance(exc, (OperationalError, InterfaceError, DisconnectionError, TimeoutError)) or \
        bool(getattr(exc, "connection_invalidated", False))


def data_home() -> Path:
    """XDG data folder: per-user, survives cache cleaning, and is where Linux users look for app data."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "plateread"


def default_url() -> str:
    return f"sqlite:///{data_home() / 'reads.db'}"


def resolve_url(url: str | None) -> URL:
    """``url``, else $PLATEREAD_DB, else the per-user SQLite file. A bare path means a SQLite file."""
    raw = url or os.environ.get(ENV_DB) or default_url()
    if "://" not in raw:
        raw = f"sqlite:///{Path(raw).expanduser().resolve()}"
    try:
        return make_url(raw)
    except ArgumentError as exc:
        raise StoreError(f"bad database URL {raw!r}: {exc}") from None


def sqlite_file(url: URL) -> Path | None:
    """The file behind a SQLite URL, or None for other backends and in-memory databases."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database).expanduser()


def default_media_dir(url: URL) -> Path:
    """Media live next to a SQLite file (one folder to back up or delete); elsewhere in the data home."""
    db_file = sqlite_file(url)
    return (db_file.parent / "media") if db_file is not None else data_home() / "media"


def busy_timeout_ms() -> int:
    try:
        return max(0, int(os.environ.get(ENV_BUSY) or BUSY_TIMEOUT_MS))
    except ValueError:
        raise StoreError(f"${ENV_BUSY} must be a whole number of milliseconds") from None


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets a camera keep writing while someone queries; busy_timeout makes concurrent writers
    # wait instead of failing at once; SQLite only enforces foreign keys when asked to.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={busy_timeout_ms()}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; a crash can lose the last commit only
    cur.close()


def describe(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def make_engine(url: URL) -> Engine:
    db_file = sqlite_file(url)
    if db_file is not None:
        db_file.parent.mkdir(parents=True, exist_ok=True)
    kw: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql":
        kw["pool_pre_ping"] = True  # a server restart must not fail the next read a camera sends
        if "connect_timeout" not in url.query and url.get_driver_name() == "psycopg":
            kw["connect_args"] = {"connect_timeout": 10}  # an unreachable host fails in seconds, not minutes
    try:
        engine = create_engine(url, **kw)
    except NoSuchModuleError:
        raise StoreError(f"unsupported database URL {describe(url)} (unknown dialect or driver)") from None
    except ModuleNotFoundError as exc:
        hint = " (pip install 'plateread[postgres]')" if url.get_backend_name() == "postgresql" else ""
        raise StoreError(f"cannot open {describe(url)}: missing driver {exc.name}{hint}") from None
    except ArgumentError as exc:
        raise StoreError(f"bad database URL {describe(url)}: {exc}") from None
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def alembic_config(connection: Any = None) -> Any:
    """Alembic configured in code, so the package needs no alembic.ini and works from any directory."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine) -> None:
    """Brings the schema to the newest revision; a new file or an empty database just works."""
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")


def short_error(exc: BaseException) -> str:
    """The driver's own first line, without SQLAlchemy's SQL echo and background link."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def open_engine(url: str | None, migrate: bool = True) -> tuple[Engine, URL]:
    parsed = resolve_url(url)
    engine = make_engine(parsed)
    try:
        if migrate:
            upgrade(engine)
        else:
            with engine.connect() as conn:
                inspect(conn).get_table_names()
    except (SQLAlchemyError, OSError) as exc:
        engine.dispose()
        raise StoreError(f"cannot open database {describe(parsed)}: {short_error(exc)}") from None
    return engine, parsed
