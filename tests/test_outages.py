"""The database or the media disk goes away while reads come in: nothing is lost or duplicated.

Real faults only: a SQLite file locked by another connection, a private PostgreSQL cluster
stopped the hard way (``pg_ctl -m immediate``) and started again, a full tmpfs under the media
folder (mounted in a private namespace with ``unshare``).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, text

import camfakes
import pgcluster
from conftest import REPO
from plateread.store import Store
from plateread.store.spool import SpooledWriter
from plateread.types import Box
from plateread.video.events import VehicleEvent

FAKE_CLI = ("import sys; sys.path.insert(0, 'tests'); import fakes, camfakes; "
            "from plateread.cli.main import main; sys.exit(main(sys.argv[1:]))")
NO_PG = pgcluster.why_not()
needs_pg = pytest.mark.skipif(NO_PG is not None, reason=str(NO_PG))


def event(plate: str) -> VehicleEvent:
    now = dt.datetime.now(dt.timezone.utc)
    return VehicleEvent(uuid.uuid4().hex, "gate", 1, plate, 0.9, now, now, 3, Box(1, 2, 30, 12),
                        best_crop=np.full((10, 29, 3), 200, np.uint8))


def stored(url: str) -> list[tuple[str, str]]:
    """(event_id, plate) of every stored read, straight from the database."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text("SELECT event_id, plate FROM reads ORDER BY id"))]
    finally:
        engine.dispose()


def wait_for(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# -- SQLite locked ---------------------------------------------------------------------------

@pytest.fixture
def locked_sqlite(tmp_path, monkeypatch):
    monkeypatch.setenv("PLATEREAD_SQLITE_BUSY_MS", "100")
    db = tmp_path / "reads.db"
    store = Store.open(f"sqlite:///{db}", tmp_path / "media")
    yield store, db
    store.close()


def hold_lock(db: Path) -> sqlite3.Connection:
    con = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    con.execute("BEGIN EXCLUSIVE")
    return con


def test_sqlite_locked_reads_wait_in_the_journal_and_are_stored_once_when_it_is_free(locked_sqlite, tmp_path):
    store, db = locked_sqlite
    writer = SpooledWriter(store, tmp_path / "spool", retry_s=0.05, max_retry_s=0.2).start()
    lock = hold_lock(db)
    events = [event(f"AB{i:03d}") for i in range(6)]
    for ev in events:
        writer.add_event(ev)
    wait_for(lambda: writer.stats.outage_since is not None, 10, "the writer to notice the lock")
    assert writer.pending == 6 and writer.health()["outage_s"] is not None
    lock.execute("ROLLBACK")
    lock.close()
    assert writer.wait_empty(15)
    assert writer.health()["outage_s"] is None
    rows = stored(f"sqlite:///{db}")
    assert sorted(rows) == sorted((e.event_id, e.plate) for e in events)          # all, once each
    assert all(r.crop_path for r in store.query())                               # with their crops
    writer.close()


def test_a_write_whose_answer_was_lost_is_not_stored_twice(locked_sqlite, tmp_path):
    store, db = locked_sqlite
    ev = event("CD456")
    store.add_event(ev)                    # committed, but pretend the writer never heard back
    writer = SpooledWriter(store, tmp_path / "spool")
    writer.journal.append({"type": "event", "rows": [store.prepare_event(ev)], "event": ev.to_dict(),
                           "alerts": False})
    assert writer.drain() == 0 and writer.stats.stored == 1 and writer.stats.set_aside == 0
    assert stored(f"sqlite:///{db}") == [(ev.event_id, "CD456")]


def test_records_left_by_a_crash_are_stored_at_the_next_start(locked_sqlite, tmp_path):
    store, db = locked_sqlite
    lock = hold_lock(db)
    first = SpooledWriter(store, tmp_path / "spool")        # never started: as if killed right after
    events = [event(f"EF{i:03d}") for i in range(3)]
    for ev in events:
        first.add_event(ev)
    assert first.pending == 3
    lock.execute("ROLLBACK")
    lock.close()
    second = SpooledWriter(store, tmp_path / "spool").start()
    assert second.wait_empty(15)
    second.close()
    assert sorted(p for _, p in stored(f"sqlite:///{db}")) == ["EF000", "EF001", "EF002"]


def test_a_journal_belongs_to_one_database(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'a.db'}") as a, Store.open(f"sqlite:///{tmp_path / 'b.db'}") as b:
        SpooledWriter(a, tmp_path / "spool")
        from plateread.store import StoreError
        with pytest.raises(StoreError, match="holds writes for"):
            SpooledWriter(b, tmp_path / "spool")


def test_a_record_the_database_refuses_for_good_is_set_aside_not_retried_forever(locked_sqlite, tmp_path):
    store, db = locked_sqlite
    writer = SpooledWriter(store, tmp_path / "spool")
    row = store.prepare_event(event("GH789"))
    writer.journal.append({"type": "event", "rows": [{**row, "plate": None}], "event": {}, "alerts": False})
    writer.add_event(good := event("GH790"))
    assert writer.drain() == 0
    assert writer.stats.set_aside == 1 and len(writer.journal.failed()) == 1
    assert stored(f"sqlite:///{db}") == [(good.event_id, "GH790")]      # the queue went on past it


# -- a live camera while PostgreSQL is stopped and started -----------------------------------

@needs_pg
def test_watch_store_loses_and_duplicates_nothing_while_postgresql_is_down(tmp_path):
    pg = pgcluster.PgCluster()
    plates = [f"PG{i:03d}" for i in range(18)]
    frames = camfakes.jpegs(camfakes.passing(plates, moving=6, gap=10))
    cam = camfakes.MjpegCamera(frames, fps=25, loop=False)
    proc = None
    try:
        Store.open(pg.url, tmp_path / "media").close()           # migrated before the camera starts
        proc = subprocess.Popen(
            [sys.executable, "-c", FAKE_CLI, "watch", "--engine", "fake-blocks", "--camera", "gate", "--store",
             "--db", pg.url, "--media", str(tmp_path / "media"), "--spool", str(tmp_path / "spool"),
             "--track-timeout", "0.25", cam.url],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: cam.sent >= len(frames) // 5, 30, "the first vehicles")
        pg.stop("immediate")                                      # the database crashes mid-stream
        wait_for(lambda: cam.sent >= len(frames) * 3 // 5, 30, "vehicles during the outage")
        pg.start()
        wait_for(lambda: cam.sent >= len(frames), 30, "the last vehicle")
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        cam.close()
    try:
        assert proc.returncode == 0, err
        events = [json.loads(line) for line in out.splitlines()]
        rows = stored(pg.url)
    finally:
        pg.close()
    assert "unavailable" in err and "is back" in err                 # the outage happened and ended
    assert len({e["plate"] for e in events} & set(plates)) >= len(plates) - 2   # the camera read nearly all
    assert sorted(rows) == sorted((e["event_id"], e["plate"]) for e in events)   # each stored once
    assert not list((tmp_path / "spool" / "watch").glob("*.json"))


@needs_pg
def test_serve_answers_and_keeps_reads_while_postgresql_is_down(tmp_path):
    import httpx

    from test_server import start_server, wait_up

    pg = pgcluster.PgCluster()
    proc = None
    car = (REPO / "examples" / "car.jpg").read_bytes()
    try:
        proc, base, log = start_server(["--no-auth", "--store", "--db", pg.url, "--media", str(tmp_path / "media"),
                                        "--spool", str(tmp_path / "spool")], tmp_path, "srv")
        wait_up(proc, base, log)
        with httpx.Client(base_url=base, timeout=30) as c:
            def post() -> dict:
                r = c.post("/v1/plate-reader/", files={"upload": ("car.jpg", car, "image/jpeg")})
                assert r.status_code == 201, r.text
                return r.json()

            before = post()
            assert before["plateread"]["read_ids"] and not before["plateread"]["spooled"]
            pg.stop("immediate")
            during = [post() for _ in range(3)]
            assert all(d["plateread"]["spooled"] and d["results"] for d in during)
            health = c.get("/healthz").json()
            assert health["status"] == "ok" and health["store"]["status"] == "degraded"
            assert health["store"]["spool"]["api"]["pending"] == 3
            assert "plateread_spool_pending{writer=\"api\"} 3.0" in c.get("/metrics").text
            pg.start()
            wait_for(lambda: c.get("/healthz").json()["store"]["spool"]["api"]["pending"] == 0, 60, "the spool to drain")
            after = post()
            assert after["plateread"]["read_ids"] and not after["plateread"]["spooled"]
        rows = stored(pg.url)
        plates = [r["plate"].upper() for d in [before, *during, after] for r in d["results"]]
        assert sorted(p for _, p in rows) == sorted(plates)              # every read once, none twice
        assert len({k for k, _ in rows}) == len(rows)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        pg.close()


# -- media disk full -------------------------------------------------------------------------

def _can_unshare_mount() -> str | None:
    if shutil.which("unshare") is None:
        return "no unshare(1) to mount a private tmpfs"
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=8k tmpfs /mnt"],
                           capture_output=True, text=True)
    return None if probe.returncode == 0 else f"cannot mount a private tmpfs here: {probe.stderr.strip()}"


NO_UNSHARE = _can_unshare_mount()   # once: it starts a process


@pytest.mark.skipif(NO_UNSHARE is not None, reason=str(NO_UNSHARE))
def test_a_full_media_disk_still_stores_the_reads_and_says_so(tmp_path):
    from test_watch import _write_pngs, two_plates

    _write_pngs(tmp_path / "cam", two_plates(6))
    media = tmp_path / "media"
    media.mkdir()
    db = f"sqlite:///{tmp_path / 'reads.db'}"
    script = (f"mount -t tmpfs -o size=16k tmpfs {media} && "
              f"dd if=/dev/zero of={media}/filler bs=4k count=8 2>/dev/null; "   # fills it: ENOSPC from here on
              f"exec {sys.executable} -c \"{FAKE_CLI}\" watch --engine fake --store --db {db} "
              f"--media {media} --spool {tmp_path / 'spool'} {tmp_path / 'cam'}")
    run = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines()]
    assert sorted(e["plate"] for e in events) == ["AB123", "XY987"]
    assert "cannot save images" in run.stderr and "No space left" in run.stderr
    with Store.open(db, media) as s:
        reads = s.query()
    assert sorted(r.plate for r in reads) == ["AB123", "XY987"] and all(r.crop_path is None for r in reads)


# -- SIGKILL of a watcher: open tracks are checkpointed ---------------------------------------

def _tracker():
    from plateread.reader import Reader
    from plateread.video import PlateTracker

    return PlateTracker(Reader("fake-blocks"), camera="gate", track_timeout=0.5)


def _plate_frames(text_: str, n: int, x0: int = 20) -> list[np.ndarray]:
    frames = []
    for i in range(n):
        img = np.full((camfakes.H, camfakes.W, 3), 30, np.uint8)
        camfakes.draw_plate(img, text_, x0 + 4 * i, 100)
        frames.append(img)
    return frames


def test_a_vehicle_still_in_view_after_a_restart_continues_its_checkpointed_event():
    before = _tracker()
    t0 = 1_700_000_000.0
    for i, f in enumerate(_plate_frames("KL123", 5)):
        assert before.update(f, t0 + i * 0.1) == []
    [saved] = before.provisional()                              # what the checkpoint holds at the kill
    assert saved.plate == "KL123" and saved.frames == 5 and saved.best_crop is None
    after = _tracker()                                          # the restarted process
    after.recover([VehicleEvent.from_dict(json.loads(json.dumps(saved.to_dict())))], t0 + 3.0)
    events = []
    for i, f in enumerate(_plate_frames("KL123", 4, x0=40)):
        events += after.update(f, t0 + 3.0 + i * 0.1)
    events += after.flush()
    assert [(e.event_id, e.plate, e.frames, e.first_seen) for e in events] == \
        [(saved.event_id, "KL123", 9, saved.first_seen)]       # one vehicle, one id, both runs' frames


def test_a_vehicle_gone_by_the_restart_is_emitted_as_checkpointed():
    before = _tracker()
    t0 = 1_700_000_000.0
    for i, f in enumerate(_plate_frames("MN456", 4)):
        before.update(f, t0 + i * 0.1)
    [saved] = before.provisional()
    after = _tracker()
    after.recover([saved], t0 + 3.0)
    other = []
    for i, f in enumerate(_plate_frames("PQ789", 3)):          # another vehicle comes by meanwhile
        other += after.update(f, t0 + 3.0 + i * 0.1)
    assert other == []
    released = after.expire(t0 + 3.0 + 0.5 + 2.0 + 0.1)         # past the track timeout + grace
    assert [(e.event_id, e.plate) for e in released if e.plate == "MN456"] == [(saved.event_id, "MN456")]
    assert [e.plate for e in after.flush()] in (["PQ789"], [])  # PQ789 may have ended with the expiry
    assert not after._recovered


def test_sigkill_of_watch_loses_no_vehicle_in_view_and_stores_it_once(tmp_path):
    plate_ = camfakes.jpegs(_plate_frames("RS246", 1))[0]
    cam = camfakes.MjpegCamera([plate_] * 2000, fps=20, loop=False)   # the car waits at the barrier
    db = f"sqlite:///{tmp_path / 'reads.db'}"
    args = [sys.executable, "-c", FAKE_CLI, "watch", "--engine", "fake-blocks", "--camera", "gate", "--store",
            "--db", db, "--media", str(tmp_path / "media"), "--spool", str(tmp_path / "spool"), cam.url]
    checkpoint = tmp_path / "spool" / "tracks" / "watch-gate.json"
    try:
        first = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: checkpoint.is_file() and "RS246" in checkpoint.read_text(), 60, "a checkpointed track")
        killed_at = dt.datetime.now(dt.timezone.utc)
        first.kill()                                             # SIGKILL: no flush, no goodbye
        out1, _ = first.communicate(timeout=30)
        assert out1 == ""                                        # the vehicle had not become an event yet
        second = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        sent = cam.sent
        wait_for(lambda: cam.sent >= sent + 20, 60, "frames after the restart")
        second.send_signal(signal.SIGTERM)
        out2, err2 = second.communicate(timeout=60)
    finally:
        for p in ("first", "second"):
            proc = locals().get(p)
            if proc is not None and proc.poll() is None:
                proc.kill()
        cam.close()
    assert second.returncode == 0, err2
    assert "in view when the last run ended" in err2
    events = [json.loads(line) for line in out2.splitlines()]
    saved = json.loads(checkpoint.read_text()) if checkpoint.exists() else []
    assert saved == []                                            # a clean stop leaves no checkpoint
    assert [e["plate"] for e in events] == ["RS246"]
    rows = stored(db)
    assert rows == [(events[0]["event_id"], "RS246")]
    assert dt.datetime.fromisoformat(events[0]["first_seen"]) < killed_at   # seen by the killed run, too


# -- the camera service: alerts raised while the database was locked ---------------------------

def test_camera_service_stores_and_alerts_every_vehicle_seen_while_sqlite_was_locked(tmp_path, monkeypatch):
    pytest.importorskip("fastapi", reason="needs the [server] extra")
    from plateread.alerts.webhook import verify
    from test_cameras_service import Service

    monkeypatch.setenv("PLATEREAD_SQLITE_BUSY_MS", "100")
    plates = [p for i in range(5) for p in (f"AB{120 + i}", "XY987")]         # every other one a hit
    frames = camfakes.jpegs(camfakes.passing(plates, moving=6, gap=8))
    cam = camfakes.MjpegCamera(frames, fps=20, loop=False)
    rec = camfakes.WebhookReceiver()
    db = tmp_path / "reads.db"
    port = camfakes.free_port()
    conf = tmp_path / "plateread.toml"
    conf.write_text(camfakes.service_toml(port, db, {"gate": cam.url}, hook=rec.url, track_timeout=0.3,
                                          watchlist=[("XY987", 0, "vip")]))
    svc = Service(tmp_path, conf, port)
    lock = None
    try:
        svc.start()
        wait_for(lambda: cam.sent >= len(frames) // 5, 60, "the first vehicles")
        lock = hold_lock(db)
        wait_for(lambda: cam.sent >= len(frames) * 3 // 5, 60, "vehicles while the database is locked")
        with svc.api() as c:
            store_health = c.get("/healthz").json()["store"]
        lock.execute("ROLLBACK")
        lock.close()
        lock = None
        wait_for(lambda: cam.sent >= len(frames), 60, "the last vehicle")
        with svc.api() as c:
            wait_for(lambda: c.get("/healthz").json()["store"]["spool"]["cameras"]["pending"] == 0, 60, "the spool")
        wait_for(lambda: len(set(rec.keys())) >= 4, 60, "the alerts")
        assert svc.stop() in (0, -signal.SIGTERM)
    finally:
        if lock is not None:
            lock.close()
        if svc.proc is not None and svc.proc.poll() is None:
            svc.proc.kill()
        cam.close()
        rec.close()
    assert store_health["status"] == "degraded" and store_health["spool"]["cameras"]["pending"] >= 1
    with Store.open(f"sqlite:///{db}", tmp_path / "media") as store:
        reads = store.query(limit=None)
        hits = store.watch_hits(limit=None)
    assert len({r.event_id for r in reads}) == len(reads)                   # nothing twice
    assert len([r for r in reads if r.plate == "XY987"]) >= 4 and len(reads) >= len(plates) - 2
    assert {f"hit-{r.event_id}" for r in hits} == set(rec.keys())           # every hit alerted, nothing else
    assert all(verify("s3", d.timestamp, d.signature, d.body) for d in rec.received)


# -- a worker process of the server dies ---------------------------------------------------------

def worker_pids(pid: int) -> list[int]:
    """The server's child processes (its inference workers), Linux."""
    return [int(c) for t in Path(f"/proc/{pid}/task").glob("*/children") for c in t.read_text().split()]


def test_a_killed_inference_worker_is_replaced_and_no_request_is_lost(tmp_path):
    pytest.importorskip("fastapi", reason="needs the [server] extra")
    import httpx

    from test_server import start_server, wait_up

    proc, base, log = start_server(["--no-auth", "--workers", "2"], tmp_path, "srv")
    car = (REPO / "examples" / "car.jpg").read_bytes()
    try:
        wait_up(proc, base, log)
        children = worker_pids(proc.pid)
        assert len(children) == 2                                # one forked process per worker
        os.kill(children[0], signal.SIGKILL)                     # a crash in native code, say
        time.sleep(0.5)
        with httpx.Client(base_url=base, timeout=60) as c:
            answers = [c.post("/v1/plate-reader/", files={"upload": ("car.jpg", car, "image/jpeg")})
                       for _ in range(6)]
            assert [a.status_code for a in answers] == [201] * 6   # the idle worker's job went to its successor
            assert all(a.json()["results"] for a in answers)
            assert c.get("/healthz").json()["status"] == "ok"
        now = worker_pids(proc.pid)
        assert len(now) == 2 and children[0] not in now
        assert "inference worker" in log.read_text() and "starting it again" in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_erasing_a_plate_also_erases_its_reads_waiting_in_the_journal(locked_sqlite, tmp_path, capsys):
    from plateread.cli.main import main

    store, db = locked_sqlite
    lock = hold_lock(db)
    waiting = SpooledWriter(store, tmp_path / "spool", "watch")     # the database is away: both wait
    waiting.add_event(event("ER123"))
    waiting.add_event(event("OK456"))
    lock.execute("ROLLBACK")
    lock.close()
    where = ["--db", f"sqlite:///{db}", "--media", str(tmp_path / "media"), "--spool", str(tmp_path / "spool")]
    out = tmp_path / "access.json"
    assert main(["reads", "--export-plate", "ER 123", "--out", str(out), *where]) == 0   # the right of access sees it
    assert "1 read(s) waiting in the spool" in capsys.readouterr().out
    exported = json.loads(out.read_text())
    assert exported["counts"]["waiting"] == 1 and [r["plate"] for r in exported["waiting"]] == ["ER123"]
    assert main(["reads", "--erase-plate", "ER-123", *where]) == 0
    assert "1 read(s) waiting in the spool" in capsys.readouterr().out
    back = SpooledWriter(store, tmp_path / "spool", "watch").start()   # the database is back
    assert back.wait_empty(15)
    back.close()
    assert [p for _, p in stored(f"sqlite:///{db}")] == ["OK456"]      # the erasure was not undone


def _hanging_reader():
    time.sleep(3600)   # a worker stuck before it is ready (a lock a forking thread left held, say)


def test_a_worker_process_that_never_gets_ready_is_killed_and_reported(monkeypatch):
    pytest.importorskip("fastapi", reason="the server needs the [server] extra")
    from plateread.server import pool as pool_mod
    from plateread.server.metrics import Metrics

    monkeypatch.setattr(pool_mod, "LOAD_TIMEOUT_S", 1.0)
    pool = pool_mod.InferencePool(_hanging_reader, workers=1, queue_size=1, store=None, metrics=Metrics(),
                                  processes=True)
    pool.start()
    try:
        assert pool.ready.wait(20)
        assert "not ready after 1 s" in (pool.load_error or "")
        proc = pool._threads[0]
        proc.join(10)
        assert not proc.is_alive()            # its feeding thread gave up; the child was killed
    finally:
        pool.close(1.0)
