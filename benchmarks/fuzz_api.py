"""Long schema-driven fuzz run of `plateread serve` (schemathesis), printing cases tried and failures.

    python benchmarks/fuzz_api.py --examples 1000 --seed 1

Starts a real server on a free loopback port (fresh SQLite store, a fresh token, the default
engine), runs ``schemathesis run`` against its ``/openapi.json`` with the checks the test suite
uses (no 5xx; status codes, content types, headers and bodies as documented), then reports the
test cases generated, the failures, and any traceback in the server's log. Exit status 1 on a
failure. tests/test_fuzz_api.py is the short version.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance,response_headers_conformance")


def start(tmp: Path) -> tuple[str, str, subprocess.Popen]:
    db = str(tmp / "reads.db")
    out = subprocess.run([sys.executable, "-m", "plateread", "tokens", "create", "fuzz", "--db", db, "--format",
                          "json", "--rate", "100000"], capture_output=True, text=True, check=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "plateread", "serve", "--port", str(port), "--db", db, "--media", str(tmp / "media"),
         "--store", "--max-upload-mb", "1", "--max-megapixels", "1.5", "--timeout", "4", "--log-level", "warning"],
        stdout=open(tmp / "server.log", "w"), stderr=subprocess.STDOUT, cwd=str(tmp),
        env={**os.environ, "XDG_DATA_HOME": str(tmp / "xdg")})
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/healthz", timeout=2)  # nosec B310: our own loopback server
            return url, json.loads(out.stdout)["token"], proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("the server did not start:\n" + (tmp / "server.log").read_text())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=1000, help="examples per API operation")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    exe = shutil.which("schemathesis") or shutil.which("st")
    if exe is None:
        raise SystemExit("needs schemathesis: pip install schemathesis")
    tmp = Path(tempfile.mkdtemp(prefix="fuzz-api-"))
    url, token, proc = start(tmp)
    started = time.monotonic()
    try:
        run = subprocess.run(
            [exe, "run", url + "/openapi.json", "-H", f"Authorization: Token {token}", "--seed", str(args.seed),
             "--max-examples", str(args.examples), "--phases", "examples,coverage,fuzzing", "--checks", CHECKS,
             "--no-color"], capture_output=True, text=True)
    finally:
        proc.terminate()
        proc.wait(15)
    out = run.stdout + run.stderr
    cases = re.search(r"(\d+) generated", out)
    failures = re.findall(r"❌ (ST\d+ [^:]+): (\d+)", out)
    tracebacks = (tmp / "server.log").read_text().count("Traceback")
    print(json.dumps({"test_cases": int(cases.group(1)) if cases else None,
                      "failures": {k: int(v) for k, v in failures}, "server_tracebacks": tracebacks,
                      "seconds": round(time.monotonic() - started, 1), "seed": args.seed}, indent=1))
    if run.returncode or tracebacks:
        print(out[-6000:], file=sys.stderr)
    shutil.rmtree(tmp, ignore_errors=True)
    return 1 if run.returncode or tracebacks else 0


if __name__ == "__main__":
    sys.exit(main())
