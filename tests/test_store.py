"""The read store on SQLite and, when PLATEREAD_TEST_PG_URL is set (.ci/run sets it), PostgreSQL."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import uuid

import numpy as np
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from conftest import fake_plate_image
from plateread import Reader
from plateread.cli.main import main
from plateread.cli.reads_cmd import parse_time
from plateread.store import Store, StoreError, levenshtein
from plateread.store.db import alembic_config
from plateread.store.models import Base
from plateread.types import Box, Candidate
from plateread.video.events import VehicleEvent

PG_URL = os.environ.get("PLATEREAD_TEST_PG_URL")
UTC = dt.timezone.utc
T0 = dt.datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
CEST = dt.timezone(dt.timedelta(hours=2))
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not PG_URL, reason="PostgreSQL cases need PLATEREAD_TEST_PG_URL=postgresql+psycopg://USER:PW@127.0.0.1/DB "
                       "(an empty database this test may wipe; .ci/run starts one)"))]


def _reset_pg(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'reads.db'}"
    _reset_pg(PG_URL)
    return PG_URL


@pytest.fixture
def store(db_url, tmp_path):
    s = Store.open(db_url, tmp_path / "media")
    yield s
    s.close()


def event(plate: str, camera: str | None = "gate-1", at: dt.datetime = T0, crop: np.ndarray | None = None,
          **kw) -> VehicleEvent:
    base = dict(event_id=uuid.uuid4().hex, camera=camera, track_id=7, plate=plate, score=0.91, first_seen=at,
                last_seen=at + dt.timedelta(seconds=3), frames=12, box=Box(10, 20, 110, 50),
                candidates=(Candidate(plate, 0.91), Candidate(plate[:-1] + "8", 0.05)), region="us",
                region_score=0.7, source="rtsp://cam1/stream", best_crop=crop)
    base.update(kw)
    return VehicleEvent(**base)


def crop(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (30, 90, 3), dtype=np.uint8)


def media_files(root) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg")) if root.exists() else []


def test_migrations_create_the_models_schema_and_downgrade(store):
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata) == []
        names = {i["name"] for i in inspect(conn).get_indexes("reads")}
    assert {"ix_reads_plate", "ix_reads_camera_id_first_seen", "ix_reads_first_seen", "ix_reads_last_seen"} <= names
    with store.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "base")
    with store.engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
    with store.engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    with store.engine.connect() as conn:
        assert {"cameras", "reads", "watchlist"} <= set(inspect(conn).get_table_names())


def test_events_round_trip_and_filters(store, tmp_path):
    ids = [store.add_event(event("AB123", crop=crop(1))),
           store.add_event(event("CD456", camera="gate-2", at=T0 + dt.timedelta(hours=1))),
           store.add_event(event("AB123", camera="gate-2", at=T0 + dt.timedelta(hours=2),
                                 first_seen=(T0 + dt.timedelta(hours=2)).astimezone(CEST)))]
    assert len(set(ids)) == 3
    got = store.query(plate="ab-123")
    assert [r.id for r in got] == [ids[2], ids[0]]               # newest first, plate normalised
    r = got[1]
    assert (r.kind, r.camera, r.plate, r.frames, r.track_id, r.region) == ("event", "gate-1", "AB123", 12, 7, "us")
    assert r.first_seen == T0 and r.first_seen.tzinfo is not None and r.first_seen.utcoffset() == dt.timedelta(0)
    assert r.last_seen == T0 + dt.timedelta(seconds=3)
    assert r.box == Box(10, 20, 110, 50) and r.candidates[0] == Candidate("AB123", 0.91)
    assert r.score == pytest.approx(0.91) and r.region_score == pytest.approx(0.7)
    assert r.source == "rtsp://cam1/stream" and r.frame_path is None
    assert (tmp_path / "media" / r.crop_path).is_file() and got[0].crop_path is None
    assert json.loads(json.dumps(r.to_dict()))["first_seen"] == "2024-05-01T08:00:00+00:00"
    assert got[0].first_seen == T0 + dt.timedelta(hours=2)         # an offset-carrying time comes back in UTC

    assert [x.plate for x in store.query(camera="gate-2")] == ["AB123", "CD456"]
    assert [x.plate for x in store.query(since=T0 + dt.timedelta(minutes=30), until=T0 + dt.timedelta(minutes=90))] \
        == ["CD456"]
    assert len(store.query(limit=2)) == 2 and store.query(kind="image") == []
    assert store.query(camera="nowhere") == []
    assert {c["name"]: c["reads"] for c in store.cameras()} == {"gate-1": 1, "gate-2": 2}
    with pytest.raises(StoreError, match="timezone-aware"):
        store.query(since=dt.datetime(2024, 1, 1))


def test_fuzzy_search_is_edit_distance(store):
    assert (levenshtein("AB123", "AB124"), levenshtein("AB123", "AB1234"), levenshtein("AB123", "XB123X")) == (1, 1, 2)
    assert levenshtein("AB123", "ZZZZZZZZ", limit=1) == 2
    for i, p in enumerate(["AB123", "AB124", "AB1234", "B123", "XB123X", "ZZ999"]):
        store.add_event(event(p, at=T0 + dt.timedelta(minutes=i)))
    assert sorted(r.plate for r in store.query(plate="AB123", fuzzy=1)) == ["AB123", "AB1234", "AB124", "B123"]
    assert sorted(r.plate for r in store.query(plate="AB123", fuzzy=2)) == \
        ["AB123", "AB1234", "AB124", "B123", "XB123X"]
    assert [r.plate for r in store.query(plate="AB123")] == ["AB123"]
    assert len(store.query(plate="AB123", fuzzy=1, limit=2)) == 2


def test_image_results_store_crops_once(store, tmp_path):
    image = fake_plate_image("AB123")
    result = Reader("fake").read(image, name="photos/car.png")
    seen = dt.datetime(2024, 5, 2, 12, 0, tzinfo=UTC)
    a = store.add_image_result(result, camera="lobby", image=image, seen=seen)
    b = store.add_image_result(result, camera="lobby", image=image.copy(), seen=seen + dt.timedelta(minutes=1))
    reads = store.query(kind="image")
    assert len(a) == len(b) == 1 and [r.plate for r in reads] == ["AB123", "AB123"]
    assert reads[0].source == "photos/car.png" and reads[0].camera == "lobby" and reads[0].box == Box(100, 60, 220, 100)
    assert reads[0].crop_path == reads[1].crop_path                  # same pixels -> same file
    files = media_files(tmp_path / "media")
    assert files == [reads[0].crop_path]
    shard = files[0].split("/")
    assert shard[2].startswith(shard[0] + shard[1]) and len(shard[2]) == 64 + 4
    assert store.add_image_result(Reader("fake").read_safe(b"", name="empty.jpg")) == []
    store.add_image_result(result, keep_frame=True, image=image)
    assert store.query(limit=1)[0].frame_path is not None


def test_purge_deletes_old_reads_and_unshared_media(store, tmp_path):
    now = dt.datetime(2024, 6, 30, tzinfo=UTC)
    old_at, new_at = now - dt.timedelta(days=40), now - dt.timedelta(days=2)
    store.add_event(event("OLD1", at=old_at, crop=crop(1)))                 # own crop: goes
    store.add_event(event("OLD2", at=old_at, crop=crop(2)))                 # crop shared with NEW1: stays
    store.add_event(event("NEW1", at=new_at, crop=crop(2)))
    orphan = store.media.save(crop(3))                                      # written, never committed
    media = tmp_path / "media"
    old1, old2 = store.query(plate="OLD1")[0].crop_path, store.query(plate="OLD2")[0].crop_path
    assert len(media_files(media)) == 3

    assert store.purge(30, now=now, grace_s=3600).reads == 2              # young files survive the grace
    assert len(media_files(media)) == 3
    store.add_event(event("OLD1", at=old_at, crop=crop(1)))
    rep = store.purge(30, now=now, grace_s=0)
    assert (rep.reads, rep.files) == (1, 2)
    assert [r.plate for r in store.query()] == ["NEW1"]
    assert media_files(media) == [old2]
    assert old1 not in media_files(media) and orphan not in media_files(media)
    assert not (media / old1).parent.exists()                              # emptied shard folders go too
    with pytest.raises(StoreError):
        store.purge(-1)


def test_retention_setting_purges_on_open(db_url, tmp_path):
    with Store.open(db_url, tmp_path / "m") as s:
        s.add_event(event("OLD1", at=dt.datetime.now(UTC) - dt.timedelta(days=10)))
        s.add_event(event("NEW1", at=dt.datetime.now(UTC) - dt.timedelta(hours=1)))
    with Store.open(db_url, tmp_path / "m", retention_days=7) as s:
        assert [r.plate for r in s.query()] == ["NEW1"]


def test_watchlist(store):
    store.watchlist_add("ab 123", label="stolen", reason="report 42")
    store.watchlist_add("XY999", fuzzy=1, label="wanted")
    store.watchlist_add("AB123", label="stolen car")                    # update, not duplicate
    items = store.watchlist()
    assert [(w.plate, w.fuzzy, w.label) for w in items] == [("AB123", 0, "stolen car"), ("XY999", 1, "wanted")]
    assert items[0].reason is None and items[0].created_at.tzinfo is not None
    assert [w.label for w in store.watchlist_match("AB123")] == ["stolen car"]
    assert store.watchlist_match("AB124") == []
    assert [w.label for w in store.watchlist_match("XY998")] == ["wanted"]
    assert store.watchlist_remove("AB123") and not store.watchlist_remove("AB123")
    assert [w.plate for w in store.watchlist()] == ["XY999"]


def test_sqlite_is_wal_with_busy_timeout(tmp_path):
    with Store.open(str(tmp_path / "plain-path.db")) as s:              # a bare path means a SQLite file
        with s.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert s.media.root == tmp_path / "media"


def test_default_location_and_env(tmp_path, monkeypatch):
    monkeypatch.delenv("PLATEREAD_DB", raising=False)
    monkeypatch.delenv("PLATEREAD_MEDIA", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    with Store.open() as s:
        s.add_event(event("AB123", crop=crop(1)))
    assert (tmp_path / "xdg" / "plateread" / "reads.db").is_file()
    assert len(media_files(tmp_path / "xdg" / "plateread" / "media")) == 1
    monkeypatch.setenv("PLATEREAD_DB", f"sqlite:///{tmp_path / 'env.db'}")
    monkeypatch.setenv("PLATEREAD_MEDIA", str(tmp_path / "envmedia"))
    with Store.open() as s:
        assert s.query() == [] and s.media.root == tmp_path / "envmedia"


def test_failures_lose_nothing_already_stored(store):
    first = event("AB123")
    store.add_event(first)
    with pytest.raises(StoreError, match=first.event_id):
        store.add_event(first)                                          # duplicate event id
    with pytest.raises(StoreError, match="timezone-aware"):
        store.add_event(event("CD456", first_seen=dt.datetime(2024, 5, 1, 8, 0)))
    with pytest.raises(StoreError, match="plate"):
        store.add_event(event("X" * 40))
    report = store.add_events([event("GOOD1"), first, event(""), event("GOOD2"), event("NAN", score=float("nan"))],
                              batch_size=10)
    assert len(report.ids) == 2 and len(report.failed) == 3
    assert first.event_id in {key for key, _ in report.failed}
    assert sorted(r.plate for r in store.query()) == ["AB123", "GOOD1", "GOOD2"]


def test_bad_urls_are_clear_errors(tmp_path):
    with pytest.raises(StoreError, match="unsupported database URL"):
        Store.open("nosuchdb://x/y")
    with pytest.raises(StoreError, match=r"cannot open database postgresql\+psycopg://u:\*\*\*@127.0.0.1:1/db"):
        Store.open("postgresql+psycopg://u:secret@127.0.0.1:1/db")


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_reads_formats_watchlist_and_purge(db_url, tmp_path, capsys):
    db = ("--db", db_url, "--media", tmp_path / "media")
    now = dt.datetime.now(UTC)
    with Store.open(db_url, tmp_path / "media") as s:
        s.add_event(event("AB123", at=now - dt.timedelta(hours=3), crop=crop(1)))
        s.add_event(event("AB124", camera="gate-2", at=now - dt.timedelta(hours=1)))
        s.add_event(event("ZZ999", at=now - dt.timedelta(days=20)))
    code, out, err = run_cli(capsys, "reads", *db)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["id", "first_seen", "(UTC)"] and [ln.split()[5] for ln in lines[2:]] \
        == ["AB124", "AB123", "ZZ999"]
    code, out, _ = run_cli(capsys, "reads", *db, "--plate", "AB123", "--fuzzy", "--format", "json")
    data = json.loads(out)
    assert code == 0 and [d["plate"] for d in data] == ["AB124", "AB123"] and data[1]["crop_path"].endswith(".jpg")
    assert data[1]["first_seen"].endswith("+00:00") and data[1]["watchlist"] == []
    code, out, _ = run_cli(capsys, "reads", *db, "--since", "2h", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["plate"], r["camera"]) for r in rows] == [("AB124", "gate-2")]
    code, out, _ = run_cli(capsys, "reads", *db, "--camera", "gate-1", "--until", "1d", "--format", "csv")
    assert [r["plate"] for r in csv.DictReader(io.StringIO(out))] == ["ZZ999"]

    assert run_cli(capsys, "reads", "watchlist", "add", "AB123", "--fuzzy", "1", "--label", "stolen", *db)[0] == 0
    code, out, _ = run_cli(capsys, "reads", *db, "watchlist", "list", "--format", "json")
    assert [(w["plate"], w["fuzzy"], w["label"]) for w in json.loads(out)] == [("AB123", 1, "stolen")]
    code, out, _ = run_cli(capsys, "reads", *db, "--hits", "--format", "csv")
    assert [(r["plate"], r["watchlist"]) for r in csv.DictReader(io.StringIO(out))] \
        == [("AB124", "stolen"), ("AB123", "stolen")]
    code, out, _ = run_cli(capsys, "reads", *db, "cameras")
    assert code == 0 and "gate-2" in out
    assert run_cli(capsys, "reads", *db, "watchlist", "remove", "AB123")[0] == 0
    code, _, err = run_cli(capsys, "reads", *db, "watchlist", "remove", "AB123")
    assert code == 1 and "not on the watchlist" in err

    code, out, _ = run_cli(capsys, "reads", "purge", "--older-than", "7", *db)
    assert code == 0 and "deleted 1 read(s)" in out
    code, out, _ = run_cli(capsys, "reads", *db, "--format", "json")
    assert sorted(d["plate"] for d in json.loads(out)) == ["AB123", "AB124"]


def test_cli_errors_exit_2_without_traceback(tmp_path, capsys, write_image):
    for url, msg in [("nosuchdb://x", "unsupported database URL"),
                     ("postgresql+psycopg://u:pw@127.0.0.1:1/db", "cannot open database")]:
        code, out, err = run_cli(capsys, "reads", "--db", url)
        assert code == 2 and msg in err and "Traceback" not in err and "pw@" not in err
    with pytest.raises(SystemExit) as exc:
        main(["reads", "--db", str(tmp_path / "x.db"), "--since", "last tuesday"])
    assert exc.value.code == 2 and "not an ISO date/time" in capsys.readouterr().err
    code, _, err = run_cli(capsys, "reads", "--db", tmp_path / "x.db", "--fuzzy")
    assert code == 2 and "--fuzzy needs --plate" in err
    code, _, err = run_cli(capsys, "read", "--engine", "fake", "--db", tmp_path / "x.db", tmp_path)
    assert code == 2 and "need --store" in err
    image = write_image("a.png", fake_plate_image("AB123"))
    code, _, err = run_cli(capsys, "read", "--engine", "fake", "--store", "--db", "nosuchdb://x", image)
    assert code == 2 and "unsupported database URL" in err


def test_parse_time():
    assert parse_time("2024-05-01") == dt.datetime(2024, 5, 1, tzinfo=UTC)
    assert parse_time("2024-05-01T10:00+02:00") == dt.datetime(2024, 5, 1, 8, tzinfo=UTC)
    assert abs(parse_time("2h") - (dt.datetime.now(UTC) - dt.timedelta(hours=2))) < dt.timedelta(seconds=5)
    assert abs(parse_time("7d") - (dt.datetime.now(UTC) - dt.timedelta(days=7))) < dt.timedelta(seconds=5)


def test_read_store_saves_each_read_and_survives_a_store_failure(db_url, tmp_path, write_image, capsys, monkeypatch):
    a = write_image("in/a.png", fake_plate_image("AB123"))
    b = write_image("in/b.png", fake_plate_image("XY9", at=(120, 20)))
    c = write_image("in/c.png", fake_plate_image("AB123"))                # same pixels as a.png
    db = ("--db", db_url, "--media", tmp_path / "media")
    code, out, err = run_cli(capsys, "read", "--engine", "fake", "--format", "jsonl", "--store", "--camera", "desk",
                             *db, a, b, c)
    assert code == 0, err
    assert len(out.splitlines()) == 3
    with Store.open(db_url, tmp_path / "media") as s:
        reads = s.query(kind="image")
        assert sorted((r.plate, r.camera, os.path.basename(r.source)) for r in reads) == \
            [("AB123", "desk", "a.png"), ("AB123", "desk", "c.png"), ("XY9", "desk", "b.png")]
        assert len(media_files(tmp_path / "media")) == 2                  # a and c share one crop

    real = Store.add_image_result

    def flaky(self, result, *args, **kw):
        if result.image.endswith("b.png"):
            raise StoreError("disk on fire")
        return real(self, result, *args, **kw)

    monkeypatch.setattr(Store, "add_image_result", flaky)
    code, out, err = run_cli(capsys, "read", "--engine", "fake", "--format", "jsonl", "--store", *db, a, b, c)
    assert code == 1 and "not stored" in err and "b.png" in err and "disk on fire" in err
    assert len(out.splitlines()) == 3
    with Store.open(db_url, tmp_path / "media") as s:
        assert len(s.query(kind="image")) == 5
