"""Fuzz `plateread serve` from its own OpenAPI schema (schemathesis), and throw malformed requests at it.

The contract: no 5xx, every status code and body as the schema documents, and the server still
healthy afterwards. A short seeded version of ``benchmarks/fuzz_api.py`` (docs/RELIABILITY.md).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("fastapi", reason="needs the [server] extra")
pytest.importorskip("uvicorn", reason="needs the [server] extra")
pytest.importorskip("multipart", reason="needs python-multipart (the [server] extra)")
httpx = pytest.importorskip("httpx", reason="needs httpx (the [test] extra)")
schemathesis = pytest.importorskip("schemathesis", reason="needs schemathesis (pip install schemathesis)")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance, response_headers_conformance, response_schema_conformance,
    status_code_conformance)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]


def start_server(tmp, *extra: str) -> tuple[str, str, subprocess.Popen]:
    """A real server on a free loopback port and a token for it (as tests/test_server.py does)."""
    db = str(tmp / "reads.db")
    out = subprocess.run([sys.executable, "-m", "plateread", "tokens", "create", "fuzz", "--db", db,
                          "--format", "json", "--rate", "100000"], capture_output=True, text=True, check=True)
    token = json.loads(out.stdout)["token"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "XDG_DATA_HOME": str(tmp / "xdg"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "plateread", "serve", "--port", str(port), "--db", db, "--media", str(tmp / "media"),
         "--workers", "2", "--store", "--max-upload-mb", "1", "--max-megapixels", "1.5", "--timeout", "4",
         "--log-level", "warning", *extra],
        stdout=open(tmp / "server.log", "w"), stderr=subprocess.STDOUT, env=env, cwd=str(tmp))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return url, token, proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"the server did not start:\n{(tmp / 'server.log').read_text()}")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz-api")
    url, token, proc = start_server(tmp)
    yield url, token
    stop_server(proc)
    log = (tmp / "server.log").read_text()
    assert "Traceback" not in log, log[-4000:]  # no unhandled exception, even one answered with a 4xx


@pytest.fixture(scope="module")
def api_schema(api):
    return schemathesis.openapi.from_url(api[0] + "/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case, api):
    case.call_and_validate(headers={"Authorization": f"Token {api[1]}"}, checks=CHECKS)


BOUNDARY = "xYzZY"
BAD_BODIES = [
    ("multipart/form-data", b"not multipart at all"),                                   # no boundary
    (f"multipart/form-data; boundary={BOUNDARY}", b"--xYzZY\r\nContent-Disposition: form-data; name=\"upload\""),
    (f"multipart/form-data; boundary={BOUNDARY}", b"--xYzZY\r\n\r\n\r\n--xYzZY--\r\n"),  # part with no name
    (f"multipart/form-data; boundary={BOUNDARY}",
     b"--xYzZY\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"a.jpg\"\r\n\r\n\xff\xd8\xff"),  # no end
    (f"multipart/form-data; boundary={BOUNDARY}", b"--xYzZY--\r\n"),                      # no parts
    (f"multipart/form-data; boundary={'b' * 5000}", b"--" + b"b" * 5000 + b"--\r\n"),     # huge boundary
    ("application/json", b'{"upload": "aGVsbG8="}'),
    ("application/json", b"{"),
    ("text/plain", b"hello"),
    ("application/x-www-form-urlencoded", b"upload=%ZZ&regions=" + b"x" * 10000),
    ("image/jpeg", b"\xff\xd8\xff\xe0" + b"\0" * 100),
    ("", b""),
]


@pytest.mark.parametrize("ctype, body", BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_malformed_bodies_are_4xx(api, ctype, body):
    url, token = api
    headers = {"Authorization": f"Token {token}", **({"Content-Type": ctype} if ctype else {})}
    r = httpx.post(url + "/v1/plate-reader/", content=body, headers=headers, timeout=30)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert r.json()["detail"]


def status_or_closed(url: str, headers: dict[str, str]) -> int | None:
    """The status, or None when the server refused by closing the connection."""
    try:
        return httpx.get(url, headers=headers, timeout=30).status_code
    except httpx.TransportError:
        return None


def test_huge_headers_and_cut_connections_leave_it_healthy(api):
    url, token = api
    host, port = url.removeprefix("http://").split(":")
    auth = {"Authorization": f"Token {token}"}
    for headers in ({**auth, "X-Big": "a" * 200_000}, {**auth, **{f"X-{i}": "v" for i in range(5000)}},
                    {"Authorization": "Token " + "t" * 60_000}):
        status = status_or_closed(url + "/api/reads", headers)
        assert status is None or status < 500, status  # refused (431, closed) or served; never 5xx
    # a client that announces a body and hangs up half way; another that sends a byte and stops
    for payload in (b"POST /v1/plate-reader/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                    b"boundary=q\r\nContent-Length: 100000\r\nAuthorization: Token " + token.encode() + b"\r\n\r\n--q\r\n",
                    b"G"):
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(payload)
    assert httpx.get(url + "/healthz", timeout=10).json()["status"] == "ok"
