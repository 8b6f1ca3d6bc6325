"""Load held: `plateread serve` at a fixed share of its saturation rate for minutes, on loopback.

    python benchmarks/soak.py                                   # 2 workers, storing, 80% for 10 minutes
    python benchmarks/soak.py --minutes 0.5 --saturation-s 10   # a quick check
    python benchmarks/soak.py --rate 6.5 --arrivals poisson     # saturation known: skip measuring it
    python benchmarks/soak.py --url http://127.0.0.1:8080 --token KEY --pid 1234   # an existing server
    python benchmarks/record.py soak "Load held" -- python benchmarks/soak.py

A server is started as serve_load.py starts it (SQLite store in a temporary folder, no rate limit)
but storing every read by default (--no-store: not), since a deployed server keeps its reads.
After a warm-up, the saturation rate is measured closed-loop (2 clients per worker, as
serve_load.py's saturation, for --saturation-s seconds), unless --rate gives it.

Then the load is open-loop: requests are due on a fixed schedule at --load times the saturation
rate (evenly spaced, or Poisson arrivals), whatever the server answers; a pool of sender threads
(each with its own keep-alive connection) takes the next due request when free, so a slow answer
does not hold back the next one, and latency runs from the time a request was due, not from the
time it was sent (no coordinated omission). The photos are serve_load.py's (1280x720 JPEGs of
the labelled test splits, else the example photo).

Every --sample-s seconds the server's resident memory (/proc/PID/status; --pid for an existing
server) and the counts are sampled; a line per minute goes to stderr as it runs. At the end,
stdout gets the summary that record.py files: offered and achieved rates, latency p50/p95/p99/max,
errors by kind (HTTP statuses other than 201, timeouts, connection errors; the goal is none),
memory at start (after the warm-up and saturation phases), at end, its maximum and its growth (a
linear fit over the run, and the last minute against the first), a table per minute, the store
check (the store holds exactly the reads the 201 answers reported: nothing lost, nothing extra)
and warnings in the server's log. Exits 1 only when the server died; asserts nothing else.
"""
from __future__ import annotations

import argparse
import collections
import http.client
import json
import math
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import DEFAULT_DATA, SIZES, stamp, write_json  # noqa: E402
from serve_load import (load_level, memory_mib, multipart, percentiles, photos, process_cpu_s,  # noqa: E402
                        start_server)

#: a sender reconnects before sending on a connection idle this long (uvicorn drops idle
#: keep-alive connections after 5 s; a send on a dropped one would count as a client-made error)
IDLE_RECONNECT_S = 3.0


@dataclass
class Tally:
    """What the senders saw, under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    due: int = 0                                # requests taken off the schedule
    done: list = field(default_factory=list)   # (t answered, latency from due, latency from sent, lag, kind)
    plates: int = 0                             # plates with text in 201 answers
    read_ids: set = field(default_factory=set)  # read ids the 201 answers reported
    id_count: int = 0                           # ... counted with repeats
    store_errors: int = 0                       # 201 answers with a store_error
    spooled: int = 0                            # 201 answers whose reads were journalled, stored later


def arrivals(rate: float, kind: str, seed: int):
    """Due times in seconds from the start: every 1/rate, or Poisson at ``rate``."""
    rng, t, k = random.Random(seed), 0.0, 0
    while True:
        if kind == "even":
            yield k / rate
            k += 1
        else:
            t += rng.expovariate(rate)
            yield t


def open_loop(url: str, token: str, bodies: list[tuple[bytes, str]], rate: float, kind: str, seconds: float,
              senders: int, timeout: float, seed: int, stop: threading.Event, tally: Tally) -> tuple[float, list]:
    """Starts the senders; returns the start time (perf_counter) and their threads."""
    u = urllib.parse.urlsplit(url)
    schedule, take = arrivals(rate, kind, seed), threading.Lock()
    start = time.perf_counter() + 0.2
    headers = {"Authorization": f"Token {token}"}

    def sender() -> None:
        conn, used = None, 0.0
        while not stop.is_set():
            with take:
                due = next(schedule)
                if due >= seconds:
                    return
                k = tally.due
                tally.due += 1
            wait = start + due - time.perf_counter()
            if wait > 0 and stop.wait(wait):
                return
            if conn is not None and time.perf_counter() - used > IDLE_RECONNECT_S:
                conn.close()
                conn = None
            if conn is None:
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
            body, ctype = bodies[k % len(bodies)]
            sent = time.perf_counter()
            answer = None
            try:
                conn.request("POST", "/v1/plate-reader/", body, {**headers, "Content-Type": ctype})
                res = conn.getresponse()
                data = res.read()
                kind_ = "ok" if res.status == 201 else f"HTTP {res.status}"
                if res.status == 201:
                    answer = json.loads(data)
            except TimeoutError:
                kind_ = "timeout"
            except (OSError, http.client.HTTPException, ValueError) as exc:
                kind_ = f"connection ({type(exc).__name__})"
            if kind_ != "ok":
                conn.close()
                conn = None
            now = used = time.perf_counter()
            with tally.lock:
                tally.done.append((now - start, now - start - due, now - sent, sent - start - due, kind_))
                if answer is not None:
                    pr = answer.get("plateread") or {}
                    ids = pr.get("read_ids") or []
                    tally.plates += sum(1 for r in answer.get("results", []) if r.get("plate"))
                    tally.read_ids.update(ids)
                    tally.id_count += len(ids)
                    tally.store_errors += pr.get("store_error") is not None
                    tally.spooled += bool(pr.get("spooled"))
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(senders)]
    for t in threads:
        t.start()
    return start, threads


def workers_of(url: str, timeout: float) -> int | None:
    u = urllib.parse.urlsplit(url)
    try:
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
        c.request("GET", "/healthz")
        return int(json.loads(c.getresponse().read())["workers"])
    except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError):
        return None


def window(done: list, t0: float, t1: float) -> dict:
    """Answers received in [t0, t1): counts, errors by kind, latency (from due) of the 201s."""
    rows = [d for d in done if t0 <= d[0] < t1]
    ok = [d[1] for d in rows if d[4] == "ok"]
    errors = collections.Counter(d[4] for d in rows if d[4] != "ok")
    return {"answers": len(rows), "ok": len(ok), "errors": sum(errors.values()), "by_kind": dict(errors),
            **percentiles(ok), "max_ms": round(1000.0 * max(ok), 1) if ok else float("nan")}


def slope_mib_per_h(samples: list[dict]) -> float:
    pts = [(s["t_s"] / 3600.0, s["rss_mib"]) for s in samples if "rss_mib" in s]
    if len(pts) < 2:
        return float("nan")
    t, m = np.array(pts).T
    return round(float(np.polyfit(t, m, 1)[0]), 1)


def mean_rss(samples: list[dict], t0: float, t1: float) -> float:
    vals = [s["rss_mib"] for s in samples if "rss_mib" in s and t0 <= s["t_s"] <= t1]
    return round(float(np.mean(vals)), 1) if vals else float("nan")


def last_read_id(tmp: Path) -> int:
    """The newest read id in the started server's store (the warm-up and saturation phases store too)."""
    with sqlite3.connect(tmp / "reads.db") as db:
        return int(db.execute("SELECT COALESCE(MAX(id), 0) FROM reads").fetchone()[0])


def store_check(tmp: Path, tally: Tally, after_id: int) -> dict:
    """The reads stored during the held load against the ids the 201 answers reported (reads stored
    before, by the warm-up and saturation phases, left out), and the store's size on disk."""
    with sqlite3.connect(tmp / "reads.db") as db:
        ids = {r[0] for r in db.execute("SELECT id FROM reads WHERE id > ?", (after_id,))}
    media = [p for p in (tmp / "media").rglob("*") if p.is_file()]
    disk = sum(p.stat().st_size for p in [tmp / "reads.db", *media] if p.exists())
    return {"stored_reads": len(ids), "plates_answered": tally.plates, "ids_answered": tally.id_count,
            "unique_ids_answered": len(tally.read_ids), "store_errors": tally.store_errors,
            "spooled_answers": tally.spooled, "missing": len(tally.read_ids - ids),
            "unreported": len(ids - tally.read_ids), "media_files": len(media), "disk_mib": round(disk / 2**20, 1),
            "nothing_lost": (tally.store_errors == 0 and not tally.read_ids - ids and len(ids) == tally.plates
                             and tally.id_count == len(tally.read_ids))}


def log_problems(tmp: Path, limit: int = 5) -> tuple[int, list[str]]:
    """Warning/error lines of the server's log (started with --log-level warning): their count and
    the first few distinct ones."""
    try:
        lines = (tmp / "server.log").read_text(errors="replace").splitlines()
    except OSError:
        return 0, []
    bad = [ln for ln in lines if any(w in ln for w in ("WARNING", "ERROR", "Traceback", "CRITICAL"))]
    return len(bad), list(dict.fromkeys(ln.strip()[:200] for ln in bad))[:limit]


def fmt(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:g}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="folder of the labelled sets (default ../shared/data)")
    ap.add_argument("--per-set", type=int, default=5, help="test photos taken from each set")
    ap.add_argument("--workers", type=int, default=2, help="server workers (default 2)")
    ap.add_argument("--no-store", dest="store", action="store_false",
                    help="the server stores nothing (default: it stores every read, crop and frame)")
    ap.add_argument("--minutes", type=float, default=10.0, help="how long the load is held (default 10)")
    ap.add_argument("--load", type=float, default=0.8, help="share of the saturation rate offered (default 0.8)")
    ap.add_argument("--rate", type=float, metavar="R", help="the saturation rate in requests/s, known from "
                    "elsewhere: skips measuring it (the offered rate is --load times R)")
    ap.add_argument("--saturation-s", type=float, default=30.0, help="seconds of the saturation measurement")
    ap.add_argument("--arrivals", choices=("even", "poisson"), default="even",
                    help="requests due evenly spaced (default) or as Poisson arrivals (bursts)")
    ap.add_argument("--senders", type=int, help="sender threads (default: 8 per worker, at least 16)")
    ap.add_argument("--timeout", type=float, default=30.0, help="client timeout per request, s (default 30)")
    ap.add_argument("--sample-s", type=float, default=10.0, help="memory and count sampling period, s")
    ap.add_argument("--seed", type=int, default=0, help="seed of the Poisson arrivals")
    ap.add_argument("--url", help="load this running server instead of starting one (needs --token)")
    ap.add_argument("--token")
    ap.add_argument("--pid", type=int, help="with --url: the server's process id, for its memory")
    ap.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = ap.parse_args()
    if args.minutes <= 0 or not 0 < args.load or (args.rate is not None and args.rate <= 0):
        ap.error("--minutes, --load and --rate must be positive")
    seconds = 60.0 * args.minutes
    jpegs = photos(args.data, args.per_set)
    bodies = [multipart(j, f"photo{i}.jpg") for i, j in enumerate(jpegs)]
    proc = None
    with tempfile.TemporaryDirectory(prefix="plateread-soak-") as tmpdir:
        tmp = Path(tmpdir)
        if args.url:
            url, token, pid = args.url.rstrip("/"), args.token or "", args.pid
            workers = workers_of(url, 10.0) or args.workers
        else:
            proc, url, token = start_server(args.workers, args.store, tmp)
            pid, workers = proc.pid, args.workers
        stop = threading.Event()
        tally = Tally()
        samples: list[dict] = []
        report: dict = {}
        try:
            storing = ", storing every read" if args.store and not args.url else ""
            print(f"soak: server {url} ({workers} worker(s){storing}), {len(jpegs)} photo(s); warming up",
                  file=sys.stderr, flush=True)
            load_level(url, token, bodies, 2 * workers, 3.0)
            if args.rate is None:
                sat = load_level(url, token, bodies, 2 * workers, args.saturation_s, pid)
                saturation = sat["requests_per_s"]
                print(f"soak: saturation {saturation} requests/s ({2 * workers} clients, {args.saturation_s:g} s: "
                      f"p50 {sat['p50_ms']} ms, p99 {sat['p99_ms']} ms, {sat['429']} 429, {sat['errors']} errors)",
                      file=sys.stderr, flush=True)
                if saturation <= 0:
                    raise SystemExit("soak: no request succeeded at saturation; see the server log")
            else:
                sat, saturation = None, args.rate
            rate = args.load * saturation
            senders = args.senders or max(16, 8 * workers)
            print(f"soak: offering {rate:.2f} requests/s ({args.arrivals}) for {args.minutes:g} min with {senders} "
                  "senders", file=sys.stderr, flush=True)
            first_id = last_read_id(tmp) if proc is not None and args.store else 0
            cpu0, mine0 = process_cpu_s(pid), time.process_time()
            start, threads = open_loop(url, token, bodies, rate, args.arrivals, seconds, senders, args.timeout,
                                       args.seed, stop, tally)
            minute = min(60.0, seconds)
            next_line, k = minute, 0
            while True:
                t = min(k * args.sample_s, seconds)
                delay = start + t - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                with tally.lock:
                    done = list(tally.done)
                    due = tally.due
                mem = memory_mib(pid)
                s = {"t_s": round(t, 1), "due": due, "answered": len(done),
                     "ok": sum(1 for d in done if d[4] == "ok")}
                if mem:
                    s.update(rss_mib=round(mem["VmRSS"], 1), hwm_mib=round(mem["VmHWM"], 1))
                samples.append(s)
                if t >= next_line - 1e-6 or t >= seconds:
                    w = window(done, next_line - minute, t + 1e-6)
                    print(f"soak: {t / 60:5.1f} min: {w['answers']} answers, {w['ok']} 201, {w['errors']} errors "
                          f"{w['by_kind'] or ''}, p50 {w['p50_ms']} ms, p99 {w['p99_ms']} ms, "
                          f"RSS {s.get('rss_mib', '?')} MiB", file=sys.stderr, flush=True)
                    next_line += minute
                if proc is not None and proc.poll() is not None:
                    print(f"soak: the server exited (code {proc.returncode})", file=sys.stderr, flush=True)
                    stop.set()
                    break
                if t >= seconds:
                    break
                k += 1
            for th in threads:
                th.join(args.timeout + 5)
            took = time.perf_counter() - start
            cpu1, mine1 = process_cpu_s(pid), time.process_time()
        except KeyboardInterrupt:
            print("soak: interrupted", file=sys.stderr, flush=True)
            stop.set()
            return 130
        finally:
            stop.set()
            if proc is not None:
                died = proc.poll() is not None
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        done = tally.done
        total = window(done, -1.0, float("inf"))
        sent_lag = [d[3] for d in done]
        service = [d[2] for d in done if d[4] == "ok"]
        last_t = max((d[0] for d in done), default=seconds)
        minutes = int(np.ceil(seconds / 60))
        report = {
            "workers": workers, "photos": len(jpegs), "store": None if args.url else args.store,
            "minutes": args.minutes, "arrivals": args.arrivals, "senders": senders, "load": args.load,
            "saturation_rps": saturation, "saturation": sat, "saturation_s": args.saturation_s,
            "offered_rps": round(tally.due / seconds, 2),
            "achieved_rps": round(total["ok"] / max(last_t, seconds), 2), "due": tally.due, **total,
            "service_p99_ms": percentiles(service)["p99_ms"],
            "send_lag_p99_ms": round(1000 * float(np.percentile(sent_lag, 99)), 1) if sent_lag else float("nan"),
            "send_lag_max_ms": round(1000 * max(sent_lag), 1) if sent_lag else float("nan"),
            "samples": samples, "rss_slope_mib_per_h": slope_mib_per_h(samples),
            "rss_first_min_mib": mean_rss(samples, 0, min(60.0, seconds)),
            "rss_last_min_mib": mean_rss(samples, max(0.0, seconds - 60.0), seconds),
            # by the time answers came; the last minute also takes the answers that came after the end
            "minutes_table": [{"minute": m + 1, **window(done, 60.0 * m, 60.0 * (m + 1) if m + 1 < minutes else np.inf)}
                              for m in range(minutes)],
        }
        if cpu0 is not None and cpu1 is not None:
            report["server_cpu_pct"] = round(100.0 * (cpu1 - cpu0) / took, 1)
        report["client_cpu_pct"] = round(100.0 * (mine1 - mine0) / took, 1)
        if proc is not None and args.store:
            report["store_check"] = store_check(tmp, tally, first_id)
        if proc is not None:
            report["server_log_problems"], report["server_log_sample"] = log_problems(tmp)
            report["server_died"] = died
    print_summary(report, len(done) < tally.due)
    if args.json:
        write_json(args.json, report)
    return 1 if report.get("server_died") else 0


STORE_WORDS = {True: "storing every read (crop and frame, SQLite)", False: "nothing stored",
               None: "storing as the server was told"}


def print_summary(r: dict, unanswered: bool) -> None:
    rss = [s["rss_mib"] for s in r["samples"] if "rss_mib" in s]
    print(stamp())
    sat = (f"measured closed-loop with {2 * r['workers']} clients for {r['saturation_s']:g} s"
           if r.get("saturation") else "given (--rate)")
    print(f"{r['photos']} photo(s) at {SIZES[0][0]}x{SIZES[0][1]}, {r['workers']} worker(s), "
          f"{STORE_WORDS[r['store']]}; "
          f"{r['load']:.0%} of the saturation rate ({r['saturation_rps']} requests/s, {sat}), held "
          f"{r['minutes']:g} min open-loop ({r['arrivals']} arrivals, {r['senders']} senders; latency from the "
          "time each request was due).\n")
    errors = ", ".join(f"{k}: {v}" for k, v in sorted(r["by_kind"].items())) or "none"
    print("| offered req/s | achieved req/s | 201 | errors | p50 ms | p95 ms | p99 ms | max ms | server CPU % "
          "| client CPU % |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {r['offered_rps']} | {r['achieved_rps']} | {r['ok']} | {r['errors']} | {fmt(r['p50_ms'])} | "
          f"{fmt(r['p95_ms'])} | {fmt(r['p99_ms'])} | {fmt(r['max_ms'])} | {r.get('server_cpu_pct', '-')} | "
          f"{r['client_cpu_pct']} |")
    print(f"\nErrors by kind: {errors}." + (" Some requests got no answer (the run was cut short)." if unanswered
                                          else ""))
    print(f"Sending kept to the schedule: send lag p99 {fmt(r['send_lag_p99_ms'])} ms, max "
          f"{fmt(r['send_lag_max_ms'])} ms; p99 from the actual send {fmt(r['service_p99_ms'])} ms.")
    if rss:
        print(f"Server memory (RSS): {rss[0]:.0f} MiB at start (after warm-up), {rss[-1]:.0f} MiB at end, "
              f"{max(rss):.0f} MiB max (peak {r['samples'][-1].get('hwm_mib', 0):.0f} MiB); growth "
              f"{fmt(r['rss_slope_mib_per_h'])} MiB/h (linear fit of {len(rss)} samples"
              f"{'; too short a run for the fit to mean much' if r['minutes'] < 5 else ''}), last minute "
              f"{fmt(r['rss_last_min_mib'])} against first {fmt(r['rss_first_min_mib'])} MiB.")
    else:
        print("Server memory: not known (an existing server without --pid).")
    print("\n| minute | answers | 201 | errors | p50 ms | p99 ms | max ms | RSS MiB at end |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in r["minutes_table"]:
        at = [s for s in r["samples"] if s["t_s"] <= 60.0 * row["minute"] + 1e-6 and "rss_mib" in s]
        print(f"| {row['minute']} | {row['answers']} | {row['ok']} | {row['errors']} | {fmt(row['p50_ms'])} | "
              f"{fmt(row['p99_ms'])} | {fmt(row['max_ms'])} | {at[-1]['rss_mib'] if at else '-'} |")
    c = r.get("store_check")
    if c:
        print(f"\nStore: {c['stored_reads']} reads stored during the held load, {c['plates_answered']} plates in "
              f"the 201 answers, {c['ids_answered']} read ids answered ({c['missing']} of them not in the store; "
              f"{c['unreported']} stored reads without an id in an answer, {c['spooled_answers']} answers journalled "
              f"for later), {c['store_errors']} answers with a store error: "
              f"{'nothing lost' if c['nothing_lost'] else 'MISMATCH'}. {c['media_files']} media files, "
              f"{c['disk_mib']} MiB on disk (the photos repeat and media files are named by content, so this is "
              "no guide to a camera's disk use).")
    else:
        why = "nothing stored" if r["store"] is False else "an existing server"
        print(f"\nStore: not checked ({why}).")
    if "server_log_problems" in r:
        print(f"Server log: {r['server_log_problems']} warning/error line(s)"
              + (": " + " | ".join(f"`{s}`" for s in r["server_log_sample"]) if r["server_log_sample"] else ".")
              + (" THE SERVER DIED during the run." if r.get("server_died") else ""))


if __name__ == "__main__":
    sys.exit(main())
