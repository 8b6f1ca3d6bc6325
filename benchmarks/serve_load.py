"""Bounded load on `plateread serve` over loopback, against in-process `Reader.read` on the same photos.

    python benchmarks/serve_load.py                                # 2 workers, 1/2/4/16 clients, 10 s each
    python benchmarks/serve_load.py --duration 5 --concurrency 1 2 8 32 --workers 2
    python benchmarks/serve_load.py --url http://127.0.0.1:8080 --token KEY   # an existing server

A server is started (SQLite store in a temporary folder, no rate limit, nothing stored unless
--store) and N clients post the photos (1280x720 JPEGs of the labelled test splits, else the
example photo) through `POST /v1/plate-reader/` (multipart, keep-alive, http.client: the lightest
client Python has, since it shares the machine with the server) for --duration seconds per level.
Each level prints requests/s (201 answers), p50/p95/p99 latency of the 201s, 429s (refused at once
when the pool is full; clients back off 50 ms), other errors (timeouts, resets, 5xx) and the
server's memory (server + worker processes: summed PSS, and the sum of their peak RSS).

Then the HTTP cost: --rounds rounds of in-process reading (one thread per worker, each with its
own Reader, decoding and reading the same JPEG bytes) alternating with the server at saturation
(2 clients per worker), each --duration seconds; alternating keeps a busy machine's drift out of
the comparison. The cost is the median over rounds of 1 - HTTP rate / in-process rate, and the
same for CPU time per image (the server process's CPU per answered request, which a busy machine
disturbs less than throughput). Each round also reads in one forked process per worker without
HTTP: in-process threads share one GIL, which the server's worker processes do not, so that is the
stricter reference for what HTTP costs. Asserts nothing.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import DEFAULT_DATA, REPO, SIZES, stamp, test_photos, write_json  # noqa: E402

from plateread import Reader  # noqa: E402


def photos(data: str, per_set: int) -> list[bytes]:
    """Test photos at 1280x720 as JPEG bytes (a camera upload); the example photo without the data."""
    imgs = test_photos(data, per_set)
    if not imgs:
        return [(REPO / "examples" / "car.jpg").read_bytes()]
    w, h = SIZES[0]
    quality = [cv2.IMWRITE_JPEG_QUALITY, 90]
    return [cv2.imencode(".jpg", cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA), quality)[1].tobytes()
            for im in imgs]


def percentiles(lat: list[float]) -> dict[str, float]:
    if not lat:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan")}
    a = np.array(lat) * 1000.0
    return {f"p{q}_ms": round(float(np.percentile(a, q)), 1) for q in (50, 95, 99)}


def in_process(jpegs: list[bytes], threads: int, duration: float) -> dict[str, float]:
    readers = [Reader() for _ in range(threads)]
    for r in readers:
        r.read(jpegs[0])                                                  # warm up
    lat: list[float] = []
    lock = threading.Lock()
    end = time.perf_counter() + duration

    def run(reader: Reader, offset: int) -> None:
        i = offset
        while time.perf_counter() < end:
            t = time.perf_counter()
            reader.read(jpegs[i % len(jpegs)])
            with lock:
                lat.append(time.perf_counter() - t)
            i += 1

    start, cpu0 = time.perf_counter(), time.process_time()
    ts = [threading.Thread(target=run, args=(r, k)) for k, r in enumerate(readers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    cpu_ms = (time.process_time() - cpu0) * 1000.0 / max(1, len(lat))
    return {"threads": threads, "images_per_s": round(len(lat) / (time.perf_counter() - start), 2),
            "cpu_ms_per_image": round(cpu_ms, 1), **percentiles(lat)}


def _read_for(jpegs: list[bytes], offset: int, start: float, duration: float, out: Any) -> None:
    """One in-process reading process: its own Reader, reading from ``start`` (wall clock)."""
    reader = Reader()
    reader.read(jpegs[0])                                                 # warm up
    while time.time() < start:
        time.sleep(0.001)
    cpu0, end, n = time.process_time(), time.perf_counter() + duration, 0
    while time.perf_counter() < end:
        reader.read(jpegs[(offset + n) % len(jpegs)])
        n += 1
    out.put((n, time.process_time() - cpu0))


def in_processes(jpegs: list[bytes], processes: int, duration: float) -> dict[str, float]:
    """Reading in ``processes`` forked processes at once, no HTTP: what the machine reads when
    the GIL is not shared (the server's workers are processes too)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    start = time.time() + 5.0                                             # after every Reader loaded
    procs = [ctx.Process(target=_read_for, args=(jpegs, k, start, duration, out)) for k in range(processes)]
    for p in procs:
        p.start()
    got = [out.get(timeout=duration + 120) for _ in procs]
    for p in procs:
        p.join(30)
    n, cpu = sum(g[0] for g in got), sum(g[1] for g in got)
    return {"processes": processes, "images_per_s": round(n / duration, 2),
            "cpu_ms_per_image": round(cpu * 1000.0 / max(1, n), 1)}


def multipart(jpeg: bytes, name: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"{name}\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + jpeg + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the server's worker processes), Linux."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split()]
            except (OSError, ValueError):
                pass
    return out


def process_cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of a process and its live children (Linux; the server's worker
    processes), to cost a request in CPU, which a busy machine disturbs far less than throughput."""
    if pid is None:
        return None
    total = 0.0
    try:
        for p in process_tree(pid):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, TypeError, ValueError, IndexError):
        return None
    return total


def load_level(url: str, token: str, bodies: list[tuple[bytes, str]], clients: int, duration: float,
               pid: int | None = None) -> dict:
    u = urllib.parse.urlsplit(url)
    ok: list[float] = []
    counts = {"429": 0, "errors": 0}
    lock = threading.Lock()
    end = time.perf_counter() + duration

    def run(offset: int) -> None:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=15)
        i = offset
        while time.perf_counter() < end:
            body, ctype = bodies[i % len(bodies)]
            i += 1
            t = time.perf_counter()
            try:
                conn.request("POST", "/v1/plate-reader/", body, {"Authorization": f"Token {token}",
                                                                   "Content-Type": ctype})
                res = conn.getresponse()
                res.read()
                status = res.status
            except (OSError, http.client.HTTPException):
                status = -1
                conn.close()
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=15)
            dt_ = time.perf_counter() - t
            with lock:
                if status == 201:
                    ok.append(dt_)
                elif status == 429:
                    counts["429"] += 1
                else:
                    counts["errors"] += 1
            if status == 429:
                time.sleep(0.05)                                          # a client backs off a little
        conn.close()

    start, cpu0 = time.perf_counter(), process_cpu_s(pid)
    ts = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    took, cpu1 = time.perf_counter() - start, process_cpu_s(pid)
    out = {"clients": clients, "requests_per_s": round(len(ok) / took, 2), **percentiles(ok), **counts}
    if cpu0 is not None and cpu1 is not None and ok:
        out["server_cpu_ms_per_request"] = round((cpu1 - cpu0) * 1000.0 / len(ok), 1)
    return out


def memory_mib(pid: int | None) -> dict[str, float]:
    """Memory of a process and its worker processes in MiB (Linux); {} without it. VmRSS: the
    proportional set size summed over them (pages the forked workers share with the server counted
    once); VmHWM: the sum of each one's peak resident size (an upper bound)."""
    if pid is None:
        return {}
    out = {"VmRSS": 0.0, "VmHWM": 0.0}
    try:
        for p in process_tree(pid):
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    out["VmRSS"] += int(line.split()[1]) / 1024
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM"):
                    out["VmHWM"] += int(line.split()[1]) / 1024
    except OSError:
        return {} if not out["VmRSS"] else out
    return out


def memory_mb(pid: int | None) -> dict[str, float]:
    vals = memory_mib(pid)
    if not vals:
        return {}
    return {"rss_mb": round(vals.get("VmRSS", 0.0)), "peak_mb": round(vals.get("VmHWM", 0.0))}


def start_server(workers: int, store: bool, tmp: Path) -> tuple[subprocess.Popen, str, str]:
    from plateread.store import Store

    db = str(tmp / "reads.db")
    with Store.open(db, tmp / "media") as s:
        _, token = s.token_create("load")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "plateread", "serve", "--port", str(port), "--workers", str(workers), "--db", db,
           "--media", str(tmp / "media"), "--rate-limit", "0", "--log-level", "warning"]
    cmd += ["--store"] if store else []
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(tmp / "server.log", "w"))
    url = f"http://127.0.0.1:{port}"
    end = time.time() + 120
    try:
        while time.time() < end:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    return proc, url, token
            except OSError:
                pass
            if proc.poll() is not None:
                break
            time.sleep(0.3)
    except BaseException:  # Ctrl-C while the models load: leave no server behind
        proc.kill()
        proc.wait()
        raise
    proc.kill()
    raise SystemExit(f"the server did not start:\n{(tmp / 'server.log').read_text()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="folder of the labelled sets (default ../shared/data)")
    ap.add_argument("--per-set", type=int, default=5, help="test photos taken from each set")
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)), help="server workers and "
                    "in-process threads (default: the cores)")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 16], help="client counts")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per level and per comparison phase")
    ap.add_argument("--rounds", type=int, default=3, help="in-process / HTTP comparison rounds (0: skip)")
    ap.add_argument("--store", action="store_true", help="the server stores every read (crop and frame)")
    ap.add_argument("--url", help="measure this running server instead of starting one (needs --token)")
    ap.add_argument("--token")
    ap.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = ap.parse_args()
    jpegs = photos(args.data, args.per_set)
    bodies = [multipart(j, f"photo{i}.jpg") for i, j in enumerate(jpegs)]
    report: dict = {"photos": len(jpegs), "workers": args.workers, "duration_s": args.duration, "store": args.store,
                    "levels": [], "rounds": []}
    proc = None
    with tempfile.TemporaryDirectory() as tmpdir:
        if args.url:
            url, token = args.url.rstrip("/"), args.token or ""
        else:
            proc, url, token = start_server(args.workers, args.store, Path(tmpdir))
        try:
            load_level(url, token, bodies, 2, 2.0)                          # warm up
            for c in args.concurrency:
                pid = proc.pid if proc else None
                level = {**load_level(url, token, bodies, c, args.duration, pid), **memory_mb(pid)}
                report["levels"].append(level)
                print(json.dumps(level), flush=True)
            for _ in range(args.rounds):
                local = in_process(jpegs, args.workers, args.duration)
                remote = load_level(url, token, bodies, 2 * args.workers, args.duration, proc.pid if proc else None)
                procs = in_processes(jpegs, args.workers, args.duration)
                report["rounds"].append({"in_process": local, "http": remote, "in_processes": procs})
                print(json.dumps(report["rounds"][-1]), flush=True)
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(20)
    print()
    print(stamp())
    print(f"{len(jpegs)} photo(s) at {SIZES[0][0]}x{SIZES[0][1]}, {args.workers} worker(s), {args.duration:g} s per "
          f"level{', storing every read' if args.store else ''}.\n")
    print("| clients | requests/s | p50 ms | p95 ms | p99 ms | 429 | errors | server CPU ms/req | server RSS MB "
          "| peak MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for lv in report["levels"]:
        print(f"| {lv['clients']} | {lv['requests_per_s']} | {lv['p50_ms']} | {lv['p95_ms']} | {lv['p99_ms']} | "
              f"{lv['429']} | {lv['errors']} | {lv.get('server_cpu_ms_per_request', '')} | {lv.get('rss_mb', '')} | "
              f"{lv.get('peak_mb', '')} |")
    if report["rounds"]:
        # each round pairs an in-process phase with the HTTP phase right after it; the median of
        # the paired costs keeps a busy machine's drift out of the figure
        costs = [1 - r["http"]["requests_per_s"] / r["in_process"]["images_per_s"] for r in report["rounds"]]
        report["http_cost_pct"] = round(100.0 * float(np.median(costs)), 1)
        print(f"\nSaturation ({2 * args.workers} clients) against in-process reading ({args.workers} threads), "
              f"{len(costs)} alternating rounds: HTTP costs " + ", ".join(f"{100 * c:.1f}%" for c in costs)
              + f" of the throughput (median {report['http_cost_pct']}%).")
        vs_procs = [1 - r["http"]["requests_per_s"] / r["in_processes"]["images_per_s"] for r in report["rounds"]]
        report["http_cost_vs_processes_pct"] = round(100.0 * float(np.median(vs_procs)), 1)
        print(f"Against reading in {args.workers} processes without HTTP (no GIL shared, as the server's workers): "
              + ", ".join(f"{100 * c:.1f}%" for c in vs_procs) + f" (median {report['http_cost_vs_processes_pct']}%).")
        cpu = [r["http"]["server_cpu_ms_per_request"] / r["in_process"]["cpu_ms_per_image"] - 1
               for r in report["rounds"] if "server_cpu_ms_per_request" in r["http"]]
        if cpu:
            report["http_cpu_cost_pct"] = round(100.0 * float(np.median(cpu)), 1)
            print("CPU per image in the server (HTTP, parsing, auth, usage count, read) against in-process: "
                  + ", ".join(f"+{100 * c:.1f}%" for c in cpu) + f" (median +{report['http_cpu_cost_pct']}%).")
    if args.json:
        write_json(args.json, report)
    return 0

if __name__ == "__main__":
    sys.exit(main())
