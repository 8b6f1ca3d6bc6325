"""Alembic environment: runs on the connection the store hands over (see db.alembic_config)."""
from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from plateread.store.models import Base

config = context.config
connection = config.attributes.get("connection")


def _run(conn) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=conn, target_metadata=Base.metadata, compare_type=True,
                      render_as_batch=conn.dialect.name == "sqlite")  # SQLite cannot ALTER most things
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:  # plain `alembic` command line: sqlalchemy.url from its config
    with create_engine(config.get_main_option("sqlalchemy.url") or "").connect() as conn:
        _run(conn)
