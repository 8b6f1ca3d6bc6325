"""The server's own CPU per request: `plateread serve` with the instant fake engine of tests/fakes.py.

    python benchmarks/http_cost.py [--seconds 10] [--clients 2]

The same 1280x720 test photos (the example photo without the data) are decoded and "read" by the
fake engine in-process, one at a time, for CPU per image; then posted to a server (2 worker
processes, fake engine, no store) by --clients clients for --seconds, for the server's CPU per
request (its worker processes included); --worker-threads for workers as threads. The difference is what HTTP, parsing, auth, routing,
the worker hand-off and the answer cost. Asserts nothing.
"""
from __future__ import annotations

import argparse
import http.client
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import fakes  # noqa: E402,F401  (registers the "fake" engine)
import serve_load as sl  # noqa: E402
from report import DEFAULT_DATA, REPO  # noqa: E402

from plateread import Reader  # noqa: E402
from plateread.imaging import load_image  # noqa: E402
from plateread.store import Store  # noqa: E402

LAUNCH = ("import sys; sys.path.insert(0, sys.argv.pop(1)); import fakes; "
          "from plateread.cli.main import main; sys.exit(main(sys.argv[1:]))")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--worker-threads", action="store_true", help="serve's workers as threads, not processes")
    args = ap.parse_args()
    jpegs = sl.photos(args.data, 5)
    bodies = [sl.multipart(j, f"p{i}.jpg") for i, j in enumerate(jpegs)]
    reader = Reader("fake")
    t0, n = time.process_time(), 0
    while time.process_time() - t0 < 5.0:
        reader.read(load_image(jpegs[n % len(jpegs)]))
        n += 1
    in_process = (time.process_time() - t0) / n * 1000.0
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        with Store.open(str(tmp / "r.db")) as s:
            _, token = s.token_create("bench")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        proc = subprocess.Popen([sys.executable, "-c", LAUNCH, str(REPO / "tests"), "serve", "--engine", "fake",
                                 "--port", str(port), "--workers", "2", "--db", str(tmp / "r.db"),
                                 "--rate-limit", "0", "--log-level", "warning",
                                 *(["--worker-threads"] if args.worker_threads else [])],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                    c.request("GET", "/healthz")
                    if c.getresponse().status == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    print("the server did not start", file=sys.stderr)
                    return 1
                time.sleep(0.3)
            url = f"http://127.0.0.1:{port}"
            sl.load_level(url, token, bodies, args.clients, 2.0)                  # warm up
            cpu0 = sl.process_cpu_s(proc.pid)
            res = sl.load_level(url, token, bodies, args.clients, args.seconds)
            cpu1 = sl.process_cpu_s(proc.pid)
        finally:
            proc.terminate()
            proc.wait(30)
    per_request = (cpu1 - cpu0) * 1000.0 / (res["requests_per_s"] * args.seconds)
    print(f"{len(jpegs)} photo(s) at 1280x720, fake engine. In-process decode + read: {in_process:.2f} ms CPU per "
          f"image. Server (2 worker {'threads' if args.worker_threads else 'processes'}, {args.clients} clients, {res['requests_per_s']:.0f} requests/s): "
          f"{per_request:.2f} ms CPU per request, so **{per_request - in_process:.2f} ms** per request for the "
          "HTTP side and the hand-off to a worker.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
