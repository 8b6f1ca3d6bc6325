"""Photos per second of ``plateread batch`` with 1 and 2 workers, against ``plateread read`` on one
core, and on a cluster started by hand (``dask scheduler`` + ``dask worker`` on loopback).

    python benchmarks/batch.py                          # 240 photos of 1280x720, default engine
    python benchmarks/batch.py --photos 120 --write     # also put the table into docs/BATCH.md

Test photos of the labelled sets (examples/car.jpg when they are absent) are resized to 1280x720
and written as JPEG (quality 90) into a temporary folder, cycled up to --photos files. Every run
reads that folder from disk (decode + detection + OCR + formats + Parquet). Batch rates count from
the moment the workers have their models loaded to the last partition back (the startup is shown
apart); ``plateread read`` is timed as a whole process pinned to one core, less its time for one
photo (start-up and model load). "ms per photo" is the wall time of one photo inside a worker
(decode to plates, from the rows' processing_time), or read's time per photo; "CPU ms per photo"
is the CPU time the reading processes spent per photo (all their threads). On a machine busy with
other work the wall figures grow and the CPU figure much less: it is the better guide to cost.
Prints a markdown table; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import DEFAULT_DATA, REPO, stamp, test_photos, update_section, write_json  # noqa: E402

from plateread.batch import ReaderSpec, run_batch  # noqa: E402
from plateread.batch.job import _connect  # noqa: E402  (the cluster plateread batch --workers N starts)
from plateread.reader import DEFAULT_ENGINE  # noqa: E402

SIZE = (1280, 720)


def make_photos(folder: Path, data: str, count: int) -> int:
    imgs = test_photos(data, per_set=20) or [cv2.imread(str(REPO / "examples" / "car.jpg"))]
    payloads = [cv2.imencode(".jpg", cv2.resize(i, SIZE, interpolation=cv2.INTER_AREA),
                             [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for i in imgs]
    for k in range(count):
        (folder / f"photo{k:06d}.jpg").write_bytes(payloads[k % len(payloads)])
    return len(payloads)


def time_read(folder: Path, one: Path, engine: str, photos: int) -> dict[str, float]:
    """``plateread read`` as its own process on CPU 0: the folder, and one photo for the start-up."""
    def run(path: Path) -> tuple[float, float]:
        cmd = [sys.executable, "-m", "plateread.cli.main", "read", str(path), "--engine", engine,
               "--format", "jsonl", "-o", os.devnull, "--no-progress"]
        c0, t = children_cpu(), time.perf_counter()
        subprocess.run(cmd, check=False, preexec_fn=lambda: os.sched_setaffinity(0, {0}),
                       stdout=subprocess.DEVNULL)
        return time.perf_counter() - t, children_cpu() - c0

    startup, startup_cpu = run(one)
    total, total_cpu = run(folder)
    seconds = total - startup
    return {"wall_s": total, "startup_s": startup, "seconds": seconds, "images_per_s": photos / seconds,
            "ms_per_image": 1000 * seconds / photos, "cpu_ms_per_image": 1000 * (total_cpu - startup_cpu) / photos}


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _cpu() -> float:  # runs in each worker: the process's CPU seconds so far (all its threads)
    import psutil

    t = psutil.Process().cpu_times()
    return t.user + t.system


def batch(folder: Path, out: Path, spec: ReaderSpec, partition_size: int, client) -> dict:
    """One job on ``client``'s cluster; adds the CPU seconds its workers spent per photo."""
    shutil.rmtree(out, ignore_errors=True)
    before = client.run(_cpu)
    t = time.perf_counter()
    s = run_batch([str(folder)], str(out), spec=spec, partition_size=partition_size, progress=False,
                  client=client)
    d = s.to_dict()
    d["wall_s"] = time.perf_counter() - t
    after = client.run(_cpu)
    d["cpu_ms_per_image"] = 1000 * sum(after[w] - before.get(w, 0.0) for w in after) / max(1, s.images)
    d["ms_per_image"] = s.busy_ms / max(1, s.images)
    d["files_bytes"] = sum(p.stat().st_size for p in out.glob("part-*.parquet"))
    return d


def local(folder: Path, out: Path, spec: ReaderSpec, partition_size: int, workers: int) -> dict:
    """The LocalCluster ``plateread batch --workers N`` starts (the same helper starts it)."""
    t = time.perf_counter()
    client, cluster = _connect(None, workers, None)
    try:
        start = time.perf_counter() - t
        d = batch(folder, out, spec, partition_size, client)
        d["cluster_start_s"] = start
        return d
    finally:
        client.close()
        cluster.close()


#: as plateread batch's LocalCluster: no statistical profiler in the workers (docs/BATCH.md)
PROFILE_OFF = "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED"


def hand_started(folder: Path, out: Path, spec: ReaderSpec, partition_size: int, workers: int, tmp: Path) -> dict:
    """The deployment path: ``dask scheduler`` and ``dask worker`` processes on loopback."""
    from distributed import Client

    sched_file = tmp / "scheduler.json"
    dask = [sys.executable, "-m", "dask"]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(dask + ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                      "--scheduler-file", str(sched_file)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        while not sched_file.exists():
            time.sleep(0.1)
            if time.perf_counter() - t0 > 60:
                raise RuntimeError("dask scheduler did not start")
        procs.append(subprocess.Popen(dask + ["worker", "--scheduler-file", str(sched_file), "--nworkers",
                                              str(workers), "--nthreads", "1", "--host", "127.0.0.1",
                                              "--no-dashboard"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      env={**os.environ, PROFILE_OFF: "False"}))
        address = json.loads(sched_file.read_text())["address"]
        with Client(address) as client:
            client.wait_for_workers(workers, timeout=120)
            cluster_up = time.perf_counter() - t0
            d = batch(folder, out, spec, partition_size, client)
        d["cluster_start_s"] = cluster_up
        return d
    finally:
        for p in reversed(procs):  # only the processes started here
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def load_note() -> str:
    try:
        load1 = os.getloadavg()[0]
    except OSError:
        return ""
    return f"load average {load1:.1f} on {os.cpu_count()} cores when the run ended"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="folder holding the sets (default ../shared/data)")
    ap.add_argument("--engine", default=DEFAULT_ENGINE)
    ap.add_argument("--photos", type=int, default=240, help="photos in the job (default 240)")
    ap.add_argument("--partition-size", type=int, default=20, help="images per partition (default 20)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=1,
                    help="run every configuration this many times, in turn, and keep each one's best "
                         "(on a busy machine: less of the other load's luck in the comparison)")
    ap.add_argument("--no-read", action="store_true", help="skip the plateread read baseline")
    ap.add_argument("--no-hand-started", action="store_true", help="skip the dask scheduler + dask worker run")
    ap.add_argument("--note", default="", help="a remark printed with the figures (e.g. what else ran)")
    ap.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    ap.add_argument("--write", action="store_true", help="update the measured block of docs/BATCH.md")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="plateread-batch-bench-"))
    try:
        folder = tmp / "photos"
        folder.mkdir()
        distinct = make_photos(folder, args.data, args.photos)
        spec = ReaderSpec.from_kwargs(engine=args.engine)
        report: dict = {"engine": args.engine, "photos": args.photos, "distinct": distinct,
                        "partition_size": args.partition_size, "rounds": args.rounds, "runs": {}, "all": []}

        def keep(name: str, r: dict) -> None:
            report["all"].append({"run": name, **r})
            best = report["runs"].get(name)
            if best is None or r["images_per_s"] > best["images_per_s"]:
                report["runs"][name] = r

        for _ in range(args.rounds):
            if not args.no_read:
                keep("read, 1 core", time_read(folder, next(folder.iterdir()), args.engine, args.photos))
            for n in args.workers:
                keep(f"batch, LocalCluster, {n} worker(s)", local(folder, tmp / f"out{n}", spec, args.partition_size, n))
            if not args.no_hand_started:
                n = max(args.workers)
                keep(f"batch, dask scheduler + dask worker, {n} worker(s)",
                     hand_started(folder, tmp / "out-hand", spec, args.partition_size, n, tmp))
        report["load"] = load_note()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    runs = report["runs"]
    lines = ["| run | photos/s | reading s | start-up s | ms per photo | CPU ms per photo |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, r in runs.items():
        start = r.get("cluster_start_s", 0.0) + r.get("startup_s", 0.0)
        lines.append(f"| {name} | {r['images_per_s']:.1f} | {r['seconds']:.1f} | {start:.1f} | "
                     f"{r['ms_per_image']:.0f} | {r['cpu_ms_per_image']:.0f} |")
    rates = {k: v["images_per_s"] for k, v in runs.items()}
    one = next((v for k, v in rates.items() if k.endswith(", 1 worker(s)") and "LocalCluster" in k), None)
    two = next((v for k, v in rates.items() if k.endswith(", 2 worker(s)") and "LocalCluster" in k), None)
    hand = next((v for k, v in rates.items() if "dask scheduler" in k), None)
    notes = []
    if one and two:
        notes.append(f"2 workers / 1 worker: {two / one:.2f}x (goal 1.8x); 2 workers: {two:.1f} photos/s (goal 60)")
        hours = 1e6 / two / 3600
        cpu = next(v["cpu_ms_per_image"] for k, v in runs.items() if k.endswith(", 2 worker(s)") and "LocalCluster" in k)
        part = next(v for k, v in runs.items() if k.endswith(", 2 worker(s)") and "LocalCluster" in k)
        notes.append(f"a million photos at that rate: {hours:.1f} h on this machine ({2 * hours:.1f} core-hours "
                     f"of wall time); by the workers' CPU time, {cpu * 1e6 / 3.6e6:.1f} CPU core-hours; "
                     f"{part['files_bytes'] / max(1, part['images']) / 1024 * 1e6 / 1024 / 1024:.2f} GiB of Parquet")
    if two and hand:
        notes.append(f"hand-started cluster / LocalCluster: {hand / two:.2f}x the photos/s")
    if "read, 1 core" in rates and one:
        notes.append(f"batch with 1 worker vs plateread read on one core: {one / rates['read, 1 core']:.2f}x")
    body = "\n".join([
        stamp().rstrip(),
        f"Engine `{args.engine}`, {args.photos} JPEG photos of {SIZE[0]}x{SIZE[1]} ({distinct} distinct), "
        f"partitions of {args.partition_size}, best of {args.rounds} round(s). "
        + (report["load"] + "." if report["load"] else ""),
        *([f"**{args.note}**"] if args.note else []),
        "", *lines, "", *[f"- {n}" for n in notes]])
    print(body)
    if args.json:
        write_json(args.json, report)
    if args.write:
        update_section(REPO / "docs" / "BATCH.md", "batch-speed", body, title="# plateread batch\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
