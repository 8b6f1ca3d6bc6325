"""What the server added to the store (revision 0002: API tokens, usage per month, plate corners;
paging and live-feed queries), on SQLite and, with PLATEREAD_TEST_PG_URL, PostgreSQL."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from alembic import command
from sqlalchemy import inspect

from plateread.store import StoreError
from plateread.store.db import alembic_config
from plateread.store.tokens import hash_secret, next_period_start, period_of
from plateread.types import Box, Candidate, ImageResult, PlateRead
from test_store import db_url, store  # noqa: F401  (fixtures: SQLite and, with PLATEREAD_TEST_PG_URL, PostgreSQL)

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 30, 23, 0, tzinfo=UTC)


def test_tokens_are_hashed_checked_counted_and_revoked(store):
    info, secret = store.token_create("frigate", rate=2.5)
    other, other_secret = store.token_create("ha")
    assert len(secret) == 40 and info.prefix == secret[:8] and info.rate == 2.5
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT prefix, secret_hash FROM api_tokens").all()
    assert (secret[:8], hash_secret(secret)) in rows and all(secret not in str(r) for r in rows)
    assert store.token_check(secret).name == "frigate" and store.token_check(other_secret).id == other.id
    assert store.token_check(secret[:-1] + ("0" if secret[-1] != "0" else "1")) is None
    assert store.token_check("short") is None and store.token_check("") is None
    with pytest.raises(StoreError, match="exists already"):
        store.token_create("frigate")
    with pytest.raises(StoreError):
        store.token_create("x", rate=0)

    assert [store.count_call(info.id, T0) for _ in range(3)] == [1, 2, 3]
    assert store.count_call(info.id, T0 + dt.timedelta(hours=2)) == 1         # December starts at 0
    assert store.calls(info.id, T0) == 3 and store.calls(other.id, T0) == 0
    assert store.token(info.id).last_used_at == T0 + dt.timedelta(hours=2)
    assert {t.name for t in store.tokens()} == {"frigate", "ha"}
    assert store.token_revoke("frigate") and not store.token_revoke("frigate")
    assert store.token_check(secret) is None and store.token(info.id) is None
    with store.engine.connect() as conn:                                       # its usage went with it
        assert conn.exec_driver_sql("SELECT count(*) FROM api_usage").scalar() == 0


def test_usage_periods_are_utc_months():
    assert period_of(dt.datetime(2026, 12, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))) == "2026-11"
    assert next_period_start(dt.datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == dt.datetime(2027, 1, 1, tzinfo=UTC)


def result(*plates: str, corners=None) -> ImageResult:
    reads = tuple(PlateRead(p, 0.9, Box(10, 10, 60, 30), (Candidate(p, 0.9),), 0.8, corners=corners) for p in plates)
    return ImageResult("upload.jpg", 100, 80, 5.0, reads)


def test_corners_paging_live_feed_and_watch_hits(store):
    image = np.full((80, 100, 3), 128, np.uint8)
    quad = ((10.0, 11.0), (60.0, 10.0), (61.0, 30.0), (9.5, 31.0))
    start = store.last_id()
    ids = store.add_image_result(result("AB123", corners=quad), camera="gate", image=image, seen=T0, keep_frame=True)
    ids += store.add_image_result(result("AB124", "ZZ999"), camera="gate", seen=T0 + dt.timedelta(minutes=1))
    got = store.get(ids[0])
    assert got.corners == quad and got.frame_path and got.to_dict()["corners"][0] == [10.0, 11.0]
    assert store.get(ids[1]).corners is None and store.get(10**9) is None
    assert store.last_id() == max(ids) > start
    assert {r.id for r in store.query(after_id=ids[0])} == set(ids[1:])
    everything = [r.id for r in store.query()]
    assert [r.id for r in store.query(limit=1, offset=1)] == everything[1:2]
    fuzzy = [r.plate for r in store.query(plate="AB123", fuzzy=1)]
    assert [r.plate for r in store.query(plate="AB123", fuzzy=1, offset=1)] == fuzzy[1:]
    store.watchlist_add("AB123", fuzzy=1, label="stolen")
    assert sorted(r.plate for r in store.watch_hits()) == ["AB123", "AB124"]
    assert [r.plate for r in store.watch_hits(limit=1, offset=1)] == [store.watch_hits()[1].plate]


def test_revision_0002_downgrades_to_0001_and_back(store):
    with store.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0001")
    with store.engine.connect() as conn:
        insp = inspect(conn)
        assert "api_tokens" not in insp.get_table_names()
        assert "corners" not in {c["name"] for c in insp.get_columns("reads")}
    with store.engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    with store.engine.connect() as conn:
        assert {"api_tokens", "api_usage"} <= set(inspect(conn).get_table_names())
