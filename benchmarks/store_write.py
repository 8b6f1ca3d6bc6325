"""Write throughput of the read store: vehicle events per second, one transaction per event vs
batched, on a fresh SQLite file and (given a URL) PostgreSQL. Prints a markdown table; asserts nothing.

    python benchmarks/store_write.py [--pg postgresql+psycopg://USER:PW@127.0.0.1/DB] [--seconds 2]

"single" calls Store.add_event per event (a commit each: what a live camera does); "single + crop"
also encodes and saves a 60x200 plate crop per event (content-addressed JPEG); "batched" calls
Store.add_events with --batch events per transaction. The PostgreSQL run writes into the given
database and deletes its rows afterwards (use a scratch database)."""
from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
import uuid
from typing import Callable

import numpy as np
from sqlalchemy import delete

from plateread.store import Store
from plateread.store.models import Read
from plateread.types import Box, Candidate
from plateread.video.events import VehicleEvent

T0 = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
SOURCE = "benchmark:store_write"


def make_event(i: int, crop: np.ndarray | None = None) -> VehicleEvent:
    plate = f"BM{i % 100000:05d}"
    at = T0 + dt.timedelta(seconds=i)
    return VehicleEvent(uuid.uuid4().hex, f"cam-{i % 4}", i, plate, 0.9, at, at + dt.timedelta(seconds=2), 10,
                        Box(10, 20, 210, 80), (Candidate(plate, 0.9), Candidate(plate[:-1] + "8", 0.05)),
                        "us", 0.8, SOURCE, best_crop=crop)


def timed(seconds: float, step: Callable[[int], int]) -> tuple[int, float]:
    """Runs ``step(i)`` (which returns how many events it wrote) until ``seconds`` have passed."""
    n, i, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        n += step(i)
        i += 1
    return n, time.perf_counter() - start


def bench(label: str, url: str, media: str, seconds: float, batch: int) -> list[tuple[str, str, int, float]]:
    rng = np.random.default_rng(0)
    rows = []
    with Store.open(url, media) as store:
        counter = iter(range(10**9))

        def single(_: int) -> int:
            store.add_event(make_event(next(counter)))
            return 1

        def single_crop(_: int) -> int:  # a new crop each time, so every event writes a file
            store.add_event(make_event(next(counter), rng.integers(0, 255, (60, 200, 3), dtype=np.uint8)))
            return 1

        def batched(_: int) -> int:
            report = store.add_events([make_event(next(counter)) for _ in range(batch)], batch_size=batch)
            assert not report.failed, report.failed[:3]
            return len(report.ids)

        for mode, fn in (("single", single), ("single + crop", single_crop), (f"batched ({batch})", batched)):
            n, secs = timed(seconds, fn)
            rows.append((label, mode, n, n / secs))
        with store.engine.begin() as conn:
            conn.execute(delete(Read).where(Read.source == SOURCE))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pg", metavar="URL", default=os.environ.get("PLATEREAD_TEST_PG_URL"),
                    help="PostgreSQL URL (default: $PLATEREAD_TEST_PG_URL; skipped when unset)")
    ap.add_argument("--seconds", type=float, default=2.0, help="time per mode (default 2)")
    ap.add_argument("--batch", type=int, default=500, help="events per transaction when batched (default 500)")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows += bench("SQLite (WAL, file)", f"sqlite:///{tmp}/reads.db", f"{tmp}/media", args.seconds, args.batch)
        if args.pg:
            rows += bench("PostgreSQL", args.pg, f"{tmp}/pg-media", args.seconds, args.batch)
    print("| database | mode | events | events/s |")
    print("|---|---|---:|---:|")
    for label, mode, n, rate in rows:
        print(f"| {label} | {mode} | {n} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
