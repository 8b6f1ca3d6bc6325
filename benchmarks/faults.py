"""Faults survived: real database and disk faults under a live load, and what was stored, lost, duplicated.

    python benchmarks/faults.py [--scenarios watch-pg,watch-sqlite,serve-pg,cameras-sqlite,media-full]
                                [--vehicles 40] [--requests 30] [--outage-s 5] [--seed 1] [--json]

Bigger runs of the scenarios of tests/test_outages.py, with its helpers (and those of
tests/camfakes.py, tests/pgcluster.py, tests/test_server.py, tests/test_cameras_service.py):

- watch-pg: `plateread watch --store` (engine fake-blocks) on a live MJPEG camera on loopback
  showing --vehicles distinct plates one after another (25 fps); mid-stream a private PostgreSQL
  cluster is stopped with `pg_ctl -m immediate` (a crash), kept down --outage-s, then started.
- watch-sqlite: the same against SQLite, locked by another connection (BEGIN EXCLUSIVE) for
  --outage-s; PLATEREAD_SQLITE_BUSY_MS=100 so the journal takes over at once (with the default
  10 s a shorter lock is simply waited out).
- serve-pg: `plateread serve --store --no-auth` on loopback with the default (learned) engine;
  5 photos (examples/car.jpg, each upload named apart) before, --requests during a PostgreSQL
  outage (spread over --outage-s, the outage lasts until the last is answered) and 5 after.
- cameras-sqlite: `plateread serve --config` running one camera (fake-blocks, the same kind of
  stream) with a webhook target and every fourth plate watchlisted; SQLite locked --outage-s
  mid-stream. Alerts are counted by idempotency key at the receiver.
- media-full: `plateread watch --store` on a folder of --vehicles passing plates with the media
  folder on a small tmpfs (mounted in a private namespace with `unshare -rm`) that fills up after a
  few images: reads must still be stored, without their images.

Per scenario: the fault's duration (from the first blow to the database answering again),
the reads expected (watch: events printed on stdout, and the plates the stream showed; serve:
plates in the 201 answers; camera service: the events its camera counted), the rows stored,
lost (expected but not stored: goal 0) and duplicated (rows beyond one per event id, or per
answered read), with notes: the journal backlog, the writer's own outage log, alerts delivered.
Scenarios whose prerequisites are missing (PostgreSQL server binaries, unshare, the [server]
extra) print a reason instead. SIGKILL of a watcher is measured by benchmarks/kill_watch.py.
Progress goes to stderr, the markdown table to stdout. Asserts nothing.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import signal
import string
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import camfakes  # noqa: E402  (registers the fake-blocks engine)
import pgcluster  # noqa: E402
import pytest  # noqa: E402  (the test helpers signal with pytest.fail / pytest.skip)
from test_outages import FAKE_CLI, _can_unshare_mount, hold_lock, stored, wait_for  # noqa: E402

from plateread.store import Store  # noqa: E402

SCENARIOS = ("watch-pg", "watch-sqlite", "serve-pg", "cameras-sqlite", "media-full")
FPS = 25
MOVING, GAP = 6, 8                     # frames a plate crosses in, empty frames after it
TRACK_TIMEOUT = "0.25"
BEFORE_AFTER = 5                       # serve-pg: requests before and after the outage
TestOutcome = (pytest.skip.Exception, pytest.fail.Exception)


class Skip(Exception):
    """A scenario whose prerequisites are missing here."""


def progress(msg: str) -> None:
    print(f"[faults {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def make_plates(n: int, rng: random.Random) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        p = "".join(rng.choices(string.ascii_uppercase, k=2)) + "".join(rng.choices(string.digits, k=3))
        if p not in out:
            out.append(p)
    return out


class Backlog:
    """Polls a journal folder and keeps the largest number of records waiting in it."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.max = folder, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            with contextlib.suppress(OSError):
                self.max = max(self.max, sum(1 for p in self.folder.glob("*.json") if not p.name.startswith(".")))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)


def stop_proc(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def outage(begin: Callable[[], None], end: Callable[[], None], seconds: float,
           during: Callable[[], None] | None = None) -> float:
    """Runs the fault: begin, ``during`` (or a sleep) for at least ``seconds``, end; returns its
    length, from the first blow to the database answering again."""
    t0 = time.monotonic()
    begin()
    if during is not None:
        during()
    time.sleep(max(0.0, seconds - (time.monotonic() - t0)))
    end()
    return time.monotonic() - t0


def writer_log(err: str) -> str:
    back = re.findall(r"is back after ([0-9.]+) s", err)
    seen = err.count("unavailable")
    if not seen:
        return "the writer saw no outage"
    return f"writer: {seen}× unavailable, back after {', '.join(back) or '-'} s"


def pg_cluster(stack: contextlib.ExitStack) -> pgcluster.PgCluster:
    why = pgcluster.why_not()
    if why is not None:
        raise Skip(why)
    progress("starting a private PostgreSQL cluster")
    pg = pgcluster.PgCluster()
    stack.callback(pg.close)
    return pg


@contextlib.contextmanager
def sqlite_busy_ms(ms: str):
    old = os.environ.get("PLATEREAD_SQLITE_BUSY_MS")
    os.environ["PLATEREAD_SQLITE_BUSY_MS"] = ms
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PLATEREAD_SQLITE_BUSY_MS", None)
        else:
            os.environ["PLATEREAD_SQLITE_BUSY_MS"] = old


def release(lock_box: list) -> None:
    while lock_box:
        con = lock_box.pop()
        with contextlib.suppress(Exception):
            con.execute("ROLLBACK")
        con.close()


# -- 1, 2: watch --store on a live camera while the database is away ---------------------------

def watch_outage(kind: str, args: argparse.Namespace, rng: random.Random, tmp: Path,
                 stack: contextlib.ExitStack) -> dict[str, Any]:
    plates = make_plates(args.vehicles, rng)
    media, spool = tmp / "media", tmp / "spool"
    lock_box: list = []
    if kind == "pg":
        pg = pg_cluster(stack)
        url = pg.url
        begin, end = (lambda: pg.stop("immediate")), pg.start
    else:
        stack.enter_context(sqlite_busy_ms("100"))
        db = tmp / "reads.db"
        url = f"sqlite:///{db}"
        begin, end = (lambda: lock_box.append(hold_lock(db))), (lambda: release(lock_box))
        stack.callback(release, lock_box)
    Store.open(url, media).close()                          # migrated before the camera starts
    frames = camfakes.jpegs(camfakes.passing(plates, moving=MOVING, gap=GAP))
    cam = camfakes.MjpegCamera(frames, fps=FPS, loop=False)
    stack.callback(cam.close)
    out_f = stack.enter_context(open(tmp / "watch.out", "w"))
    err_f = stack.enter_context(open(tmp / "watch.err", "w"))
    progress(f"watch --store on {len(plates)} vehicles ({len(frames) / FPS:.0f} s of stream), {kind} outage")
    proc = subprocess.Popen(
        [sys.executable, "-c", FAKE_CLI, "watch", "--engine", "fake-blocks", "--camera", "gate", "--store",
         "--db", url, "--media", str(media), "--spool", str(spool), "--track-timeout", TRACK_TIMEOUT, cam.url],
        cwd=REPO, stdout=out_f, stderr=err_f, text=True)
    stack.callback(stop_proc, proc, signal.SIGKILL, 5)
    backlog = Backlog(spool / "watch")
    stack.callback(backlog.close)
    start_at = int(len(frames) * rng.uniform(0.25, 0.4))
    stream_s = len(frames) / FPS
    wait_for(lambda: cam.sent >= start_at, stream_s + 90, "the vehicles before the outage")
    progress(f"{'stopping PostgreSQL (immediate)' if kind == 'pg' else 'locking SQLite'} at frame {cam.sent}")
    fault_s = outage(begin, end, args.outage_s)
    progress(f"database back after {fault_s:.1f} s at frame {cam.sent}/{len(frames)}")
    wait_for(lambda: cam.done, stream_s * 3 + 60, "the last vehicle")
    time.sleep(1.0)
    code = stop_proc(proc)
    backlog.close()
    out_f.close()
    err_f.close()
    err = (tmp / "watch.err").read_text()
    events = [json.loads(line) for line in (tmp / "watch.out").read_text().splitlines() if line.strip()]
    rows = stored(url)
    emitted = {e["event_id"]: e["plate"] for e in events}
    ids = [k for k, _ in rows]
    missed = sorted(set(plates) - set(emitted.values()))
    left = [p for p in (spool / "watch").glob("*.json")]
    notes = [f"journal backlog max {backlog.max}", writer_log(err)]
    if missed:
        notes.append(f"not read by the camera: {len(missed)} ({', '.join(missed)})")
    misread = sorted(p for p in emitted.values() if p not in plates)
    if misread:
        notes.append(f"misreads: {', '.join(misread)}")
    if set(ids) - set(emitted):
        notes.append(f"{len(set(ids) - set(emitted))} stored events not printed")
    if left:
        notes.append(f"{len(left)} records left in the journal")
    if code != 0:
        notes.append(f"watch exit code {code}")
    return {"fault_s": fault_s, "expected": len(emitted), "expected_text": f"{len(emitted)} events ({len(plates)} shown)",
            "stored": len(set(ids) & set(emitted)), "lost": len(set(emitted) - set(ids)),
            "duplicated": len(ids) - len(set(ids)), "notes": notes}


# -- 3: serve --store while PostgreSQL is down ------------------------------------------------

def serve_outage(args: argparse.Namespace, rng: random.Random, tmp: Path, stack: contextlib.ExitStack) -> dict[str, Any]:
    try:
        import httpx
        from test_server import start_server, wait_up
    except TestOutcome as exc:
        raise Skip(str(exc)) from None
    pg = pg_cluster(stack)
    car = (REPO / "examples" / "car.jpg").read_bytes()
    proc, base, log = start_server(["--no-auth", "--store", "--db", pg.url, "--media", str(tmp / "media"),
                                    "--spool", str(tmp / "spool")], tmp, "srv")
    stack.callback(stop_proc, proc, signal.SIGKILL, 5)
    progress("serve --store: waiting for the server")
    wait_up(proc, base, log)
    answers: dict[str, dict] = {}          # upload name -> answer of a 201
    refused: list[str] = []
    client = stack.enter_context(httpx.Client(base_url=base, timeout=60))

    def post(name: str) -> None:
        r = client.post("/v1/plate-reader/", files={"upload": (name, car, "image/jpeg")})
        if r.status_code == 201:
            answers[name] = r.json()
        else:
            refused.append(f"{r.status_code}")

    n = 0

    def send(count: int, spread_s: float = 0.0) -> None:
        nonlocal n
        t0 = time.monotonic()
        for i in range(count):
            n += 1
            post(f"req{n:03d}.jpg")
            time.sleep(max(0.0, t0 + spread_s * (i + 1) / count - time.monotonic()))

    health: dict[str, Any] = {}

    def during() -> None:
        send(args.requests, args.outage_s)
        health.update(client.get("/healthz").json()["store"])

    progress(f"{BEFORE_AFTER} requests before, {args.requests} during the outage, {BEFORE_AFTER} after")
    send(BEFORE_AFTER)
    fault_s = outage(lambda: pg.stop("immediate"), pg.start, args.outage_s, during)
    progress(f"PostgreSQL back after {fault_s:.1f} s")
    send(BEFORE_AFTER)
    with contextlib.suppress(AssertionError):
        wait_for(lambda: client.get("/healthz").json()["store"]["spool"]["api"]["pending"] == 0, 60, "the spool")
    final = client.get("/healthz").json()["store"]["spool"]["api"]
    stop_proc(proc)
    engine_rows = stored_sources(pg.url)
    expected = {name: [r["plate"].upper() for r in a["results"] if r.get("plate")] for name, a in answers.items()}
    by_source: dict[str, list[str]] = {}
    for _, source, plate in engine_rows:
        by_source.setdefault(source, []).append(plate)
    lost = sum(max(0, len(p) - len(by_source.get(s, []))) for s, p in expected.items())
    dup = sum(max(0, len(p) - len(expected.get(s, []))) for s, p in by_source.items())
    dup += len(engine_rows) - len({k for k, _, _ in engine_rows})
    spooled = sum(1 for a in answers.values() if a["plateread"].get("spooled"))
    errors = sum(1 for a in answers.values() if a["plateread"].get("store_error"))
    plates = sorted({p for ps in expected.values() for p in ps})
    notes = [f"{len(answers)}/{n} answered 201 ({', '.join(plates)})", f"{spooled} answered as journalled",
             f"backlog at the end of the outage {health.get('spool', {}).get('api', {}).get('pending')}",
             f"journalled {final.get('journalled')}, set aside {final.get('set_aside')}"]
    if refused:
        notes.append(f"refused: {', '.join(refused)}")
    if errors:
        notes.append(f"{errors} answers with a store error")
    return {"fault_s": fault_s, "expected": sum(map(len, expected.values())),
            "expected_text": f"{sum(map(len, expected.values()))} reads in {len(answers)} answers",
            "stored": sum(min(len(p), len(by_source.get(s, []))) for s, p in expected.items()),
            "lost": lost, "duplicated": dup, "notes": notes}


def stored_sources(url: str) -> list[tuple[str, str, str]]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text("SELECT event_id, source, plate FROM reads ORDER BY id"))]
    finally:
        engine.dispose()


# -- 4: the camera service with alerts while SQLite is locked ---------------------------------

def service_outage(args: argparse.Namespace, rng: random.Random, tmp: Path, stack: contextlib.ExitStack) -> dict[str, Any]:
    try:
        from test_cameras_service import Service
    except TestOutcome as exc:
        raise Skip(str(exc)) from None
    stack.enter_context(sqlite_busy_ms("100"))
    plates = make_plates(args.vehicles, rng)
    listed = plates[1::4]
    frames = camfakes.jpegs(camfakes.passing(plates, moving=MOVING, gap=GAP))
    cam = camfakes.MjpegCamera(frames, fps=FPS, loop=False)
    stack.callback(cam.close)
    rec = camfakes.WebhookReceiver()
    stack.callback(rec.close)
    db = tmp / "reads.db"
    port = camfakes.free_port()
    conf = tmp / "plateread.toml"
    conf.write_text(camfakes.service_toml(port, db, {"gate": cam.url}, hook=rec.url, track_timeout=TRACK_TIMEOUT,
                                          watchlist=[(p, 0, "wanted") for p in listed]))
    svc = Service(tmp, conf, port)
    lock_box: list = []
    stack.callback(release, lock_box)
    stack.callback(lambda: stop_proc(svc.proc, signal.SIGKILL, 5))
    progress(f"serve --config: one camera, {len(plates)} vehicles, {len(listed)} watchlisted")
    svc.start()
    backlog = Backlog(tmp / "spool" / "cameras")
    stack.callback(backlog.close)
    stream_s = len(frames) / FPS
    start_at = int(len(frames) * rng.uniform(0.25, 0.4))
    wait_for(lambda: cam.sent >= start_at, stream_s + 90, "the vehicles before the lock")
    progress(f"locking SQLite at frame {cam.sent}")
    fault_s = outage(lambda: lock_box.append(hold_lock(db)), lambda: release(lock_box), args.outage_s)
    progress(f"SQLite free after {fault_s:.1f} s at frame {cam.sent}/{len(frames)}")
    wait_for(lambda: cam.done, stream_s * 3 + 60, "the last vehicle")
    time.sleep(1.5)
    with svc.api() as c:
        with contextlib.suppress(AssertionError):
            wait_for(lambda: c.get("/healthz").json()["store"]["spool"]["cameras"]["pending"] == 0, 60, "the spool")
        spool_h = c.get("/healthz").json()["store"]["spool"]["cameras"]
        gate = {x["name"]: x for x in c.get("/api/cameras").json()}.get("gate", {}).get("health") or {}
    with Store.open(f"sqlite:///{db}", tmp / "media") as store:
        hit_keys = {f"hit-{r.event_id}" for r in store.watch_hits(limit=None)}
    with contextlib.suppress(AssertionError):
        wait_for(lambda: hit_keys <= set(rec.keys()), 60, "the alerts")
    svc.stop()
    with Store.open(f"sqlite:///{db}", tmp / "media") as store:
        reads = store.query(limit=None)
        hit_keys = {f"hit-{r.event_id}" for r in store.watch_hits(limit=None)}
    backlog.close()
    ids = [r.event_id for r in reads]
    events = int(gate.get("events", 0))
    keys = rec.keys()
    shown_listed = len(listed)
    notes = [f"journal backlog max {backlog.max}, journalled {spool_h.get('journalled')}",
             (f"alerts delivered {len(set(keys) & hit_keys)}/{len(hit_keys)} hits "
              f"({shown_listed} watchlisted shown), {len(keys) - len(set(keys))} delivered twice, "
              f"{len(set(keys) - hit_keys)} unexpected")]
    missed = sorted(set(plates) - {r.plate for r in reads})
    if missed:
        notes.append(f"not read by the camera: {len(missed)} ({', '.join(missed)})")
    if gate.get("dropped_events"):
        notes.append(f"camera dropped {gate['dropped_events']} events")
    if gate.get("dropped") or gate.get("restarts"):
        notes.append(f"camera: {gate.get('dropped', 0)} live frames dropped (engine busy), "
                     f"{gate.get('restarts', 0)} watcher restarts")
    return {"fault_s": fault_s, "expected": events, "expected_text": f"{events} events ({len(plates)} shown)",
            "stored": len(set(ids)), "lost": max(0, events - len(set(ids))), "duplicated": len(ids) - len(set(ids)),
            "notes": notes}


# -- 5: the media disk is full ----------------------------------------------------------------

def media_full(args: argparse.Namespace, rng: random.Random, tmp: Path, stack: contextlib.ExitStack) -> dict[str, Any]:
    why = _can_unshare_mount()
    if why is not None:
        raise Skip(why)
    from test_watch import _write_pngs

    plates = make_plates(args.vehicles, rng)
    _write_pngs(tmp / "cam", camfakes.passing(plates, moving=MOVING, gap=GAP))
    media = tmp / "media"
    media.mkdir()
    db = f"sqlite:///{tmp / 'reads.db'}"
    # 64 KiB of tmpfs, 40 KiB of it taken: room for a few images (a page each), ENOSPC after
    script = (f"mount -t tmpfs -o size=64k tmpfs {media} && "
              f"dd if=/dev/zero of={media}/filler bs=4k count=10 2>/dev/null; "
              f"exec {sys.executable} -c \"{FAKE_CLI}\" watch --engine fake-blocks --camera gate --store --db {db} "
              f"--media {media} --spool {tmp / 'spool'} --fps {FPS} --track-timeout {TRACK_TIMEOUT} {tmp / 'cam'}")
    progress(f"watch --store on {len(plates)} vehicles with the media folder on a nearly full tmpfs")
    t0 = time.monotonic()
    proc = subprocess.Popen(["unshare", "-rm", "sh", "-c", script], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    stack.callback(stop_proc, proc, signal.SIGKILL, 5)
    out, err = proc.communicate(timeout=600)
    run_s = time.monotonic() - t0
    events = {e["event_id"]: e["plate"] for e in (json.loads(l) for l in out.splitlines() if l.strip())}
    with Store.open(db, tmp / "media-after") as store:
        reads = store.query(limit=None)
    ids = [r.event_id for r in reads]
    with_crop = sum(1 for r in reads if r.crop_path)
    with_frame = sum(1 for r in reads if r.frame_path)
    notes = [f"images saved: {with_crop} crops" + (f", {with_frame} frames" if with_frame else "")
             + f" for {len(reads)} reads, then ENOSPC",
             "media error logged" if "cannot save images" in err else "no media error logged"]
    missed = sorted(set(plates) - set(events.values()))
    if missed:
        notes.append(f"not read: {len(missed)}")
    if proc.returncode != 0:
        notes.append(f"exit code {proc.returncode}: {err.strip().splitlines()[-1:]}")
    return {"fault_s": run_s, "expected": len(events), "expected_text": f"{len(events)} events ({len(plates)} shown)",
            "stored": len(set(ids) & set(events)), "lost": len(set(events) - set(ids)),
            "duplicated": len(ids) - len(set(ids)), "notes": notes, "fault_note": "whole run"}


RUN = {"watch-pg": lambda a, r, t, s: watch_outage("pg", a, r, t, s),
       "watch-sqlite": lambda a, r, t, s: watch_outage("sqlite", a, r, t, s),
       "serve-pg": serve_outage, "cameras-sqlite": service_outage, "media-full": media_full}
TITLES = {"watch-pg": "`watch --store`, PostgreSQL stopped (immediate)",
          "watch-sqlite": "`watch --store`, SQLite locked",
          "serve-pg": "`serve --store`, PostgreSQL stopped (immediate)",
          "cameras-sqlite": "`serve --config` camera + webhook, SQLite locked",
          "media-full": "`watch --store`, media disk full"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, of {', '.join(SCENARIOS)}")
    ap.add_argument("--vehicles", type=int, default=40, help="distinct plates per camera stream (default 40)")
    ap.add_argument("--requests", type=int, default=30, help="serve-pg: requests during the outage (default 30)")
    ap.add_argument("--outage-s", type=float, default=5.0, help="how long each database fault lasts (default 5)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of markdown")
    args = ap.parse_args()
    chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenarios {unknown}; choose from {', '.join(SCENARIOS)}")

    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    results: dict[str, dict[str, Any]] = {}
    failed = False
    t_all = time.monotonic()
    for name in chosen:
        rng = random.Random(args.seed * 1000 + SCENARIOS.index(name))
        t0 = time.monotonic()
        try:
            with contextlib.ExitStack() as stack:      # servers, cameras, clusters, locks, temp dirs
                tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"plateread-faults-{name}-")))
                try:
                    results[name] = RUN[name](args, rng, tmp, stack)
                except Skip as exc:
                    progress(f"{name}: skipped: {exc}")
                    results[name] = {"skipped": str(exc)}
                except (Exception, *TestOutcome) as exc:  # noqa: BLE001  (reported in the table)
                    failed = True
                    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
                    progress(f"{name}: failed: {type(exc).__name__}: {exc}")
                    results[name] = {"error": f"{type(exc).__name__}: {first}"}
        except KeyboardInterrupt:
            progress(f"interrupted during {name}; cleaned up")
            return 130
        results[name]["wall_s"] = round(time.monotonic() - t0, 1)
        progress(f"{name}: done in {results[name]['wall_s']} s")
    total = time.monotonic() - t_all
    if args.json:
        print(json.dumps({"vehicles": args.vehicles, "requests": args.requests, "outage_s": args.outage_s,
                          "seed": args.seed, "total_s": round(total, 1), "scenarios": results}, indent=1, default=str))
        return 1 if failed else 0
    serve = (f"; serve: the default engine on examples/car.jpg, {BEFORE_AFTER} + {args.requests} + {BEFORE_AFTER} "
             f"requests" if "serve-pg" in chosen else "")
    print(f"Live cameras: fake MJPEG streams on loopback ({FPS} fps, engine fake-blocks), {args.vehicles} distinct "
          f"plates each{serve}. Database faults of {args.outage_s:g} s or more mid-load, seed {args.seed}; "
          f"{total:.0f} s in all.\n")
    print("| scenario | fault s | reads expected | stored | lost (goal 0) | duplicated | notes |")
    print("|---|---:|---|---:|---:|---:|---|")
    for name, r in results.items():
        if "skipped" in r or "error" in r:
            what = f"skipped: {r['skipped']}" if "skipped" in r else f"error: {r['error']}"
            print(f"| {TITLES[name]} | - | - | - | - | - | {what.replace('|', '/')} |")
            continue
        fault = f"{r['fault_s']:.1f}" + (f" ({r['fault_note']})" if r.get("fault_note") else "")
        print(f"| {TITLES[name]} | {fault} | {r['expected_text']} | {r['stored']} | {r['lost']} | {r['duplicated']} | "
              f"{'; '.join(r['notes']).replace('|', '/')} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
