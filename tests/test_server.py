"""`plateread serve`, for real: a uvicorn server in a subprocess on a free loopback port, driven
over HTTP (httpx, requests, raw sockets, a browser) the way Plate Recognizer clients drive it."""
from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the server tests need the [server] extra (pip install -e '.[test]')")
pytest.importorskip("uvicorn", reason="the server tests need the [server] extra")
pytest.importorskip("multipart", reason="the server tests need python-multipart (the [server] extra)")
pytest.importorskip("prometheus_client", reason="the server tests need prometheus-client (the [server] extra)")
httpx = pytest.importorskip("httpx", reason="the server tests need httpx (the [test] extra)")

from plateread.cli.main import main  # noqa: E402
from plateread.server import compat  # noqa: E402
from plateread.server.auth import RECHECK_S, Principal, RateLimiter, SessionSigner, token_from_header  # noqa: E402
from plateread.server.config import ServerConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CAR = REPO / "examples" / "car.jpg"         # the default engine reads YO76317 in it
CAR_BYTES = CAR.read_bytes()
PLATE = "yo76317"
WORKERS, QUEUE, TIMEOUT_S = 2, 2, 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_token(db: str, name: str, *extra: str) -> str:
    out = subprocess.run([sys.executable, "-m", "plateread", "tokens", "create", name, "--db", db, "--format", "json",
                          *extra], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["token"]


class Server:
    def __init__(self, url: str, db: str, media: Path, token: str, slow_token: str, proc: subprocess.Popen) -> None:
        self.url, self.db, self.media, self.token, self.slow_token, self.proc = url, db, media, token, slow_token, proc

    def client(self, token: str | None = "default", **kw) -> "httpx.Client":
        headers = {"Authorization": f"Token {self.token if token == 'default' else token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, follow_redirects=False, **kw)

    def wait_idle(self, timeout: float = 15) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if httpx.get(self.url + "/healthz").json()["slots_used"] == 0:
                return
            time.sleep(0.1)
        raise AssertionError("the server never became idle")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    db, media = str(tmp / "reads.db"), tmp / "media"
    # the tokens CLI makes the keys; the store keeps only their hashes
    token = make_token(db, "main", "--rate", "1000")
    slow = make_token(db, "slow", "--rate", "0.2")                      # one request per 5 s
    port = free_port()
    env = {**os.environ, "XDG_DATA_HOME": str(tmp / "xdg"), "PYTHONUNBUFFERED": "1"}
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "plateread", "serve", "--port", str(port), "--db", db, "--media", str(media),
         "--workers", str(WORKERS), "--queue", str(QUEUE), "--store", "--max-upload-mb", "1",
         "--max-megapixels", "1.5", "--timeout", str(TIMEOUT_S), "--allow-url-host", "127.0.0.1",
         "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(tmp))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None:
            log.close()
            pytest.fail(f"the server exited with {proc.returncode}:\n{(tmp / 'server.log').read_text()}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the server did not start within 90 s")
        time.sleep(0.2)
    yield Server(url, db, media, token, slow, proc)
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def read_car(c: "httpx.Client", path: str = "/v1/plate-reader/", **data) -> "httpx.Response":
    return c.post(path, files={"upload": ("car.jpg", CAR_BYTES, "image/jpeg")}, data=data)


def check_snapshot_schema(body: dict) -> None:
    """Every field Plate Recognizer documents, with its type, always present."""
    assert isinstance(body["processing_time"], float)
    assert isinstance(body["filename"], str) and body["version"] == 1
    assert body["camera_id"] is None or isinstance(body["camera_id"], str)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", body["timestamp"])
    assert isinstance(body["usage"]["calls"], int) and isinstance(body["usage"]["max_calls"], int)
    assert isinstance(body["results"], list)
    for r in body["results"]:
        assert set(r) >= {"box", "plate", "region", "score", "candidates", "dscore", "vehicle"}
        assert all(isinstance(r["box"][k], int) for k in ("xmin", "ymin", "xmax", "ymax"))
        assert r["plate"] == r["plate"].lower() and isinstance(r["plate"], str)
        assert isinstance(r["region"]["code"], str) and isinstance(r["region"]["score"], float)
        assert isinstance(r["score"], float) and isinstance(r["dscore"], float)
        assert r["candidates"] and all(set(c) == {"plate", "score"} for c in r["candidates"])
        assert r["candidates"][0]["plate"] == r["plate"]
        assert r["vehicle"]["type"] == "Unknown" and isinstance(r["vehicle"]["score"], float)
        assert set(r["vehicle"]["box"]) == {"xmin", "ymin", "xmax", "ymax"}


# ---- the Snapshot API ----------------------------------------------------------------------------

def test_snapshot_schema_on_both_paths_without_redirect(server):
    with server.client() as c:
        for path in ("/v1/plate-reader/", "/v1/plate-reader"):
            res = read_car(c, path)
            assert res.status_code == 201, res.text
            body = res.json()
            check_snapshot_schema(body)
            assert [r["plate"] for r in body["results"]] == [PLATE]
            assert body["filename"] == "car.jpg" and body["camera_id"] is None
            r = body["results"][0]
            assert 560 <= r["box"]["xmin"] < r["box"]["xmax"] <= 720          # the plate, not the car
            assert len(r["plateread"]["corners"]) == 4 and len(r["plateread"]["char_scores"]) == 7
            assert body["plateread"]["image_width"] == 1280 and body["plateread"]["read_ids"]
        assert c.get("/v1/plate-reader/").status_code == 405


def test_home_assistant_integration_request(server):
    """The exact call of robmarkcole/HASS-plate-recognizer (requests, `server:` pointing here), and
    every field it reads from the answer and from /v1/statistics/."""
    requests = pytest.importorskip("requests")
    headers = {"Authorization": f"Token {server.token}"}
    config = {"detection_rule": "strict", "region": "strict"}
    res = requests.post(server.url + "/v1/plate-reader/",
                        data=dict(regions=None, camera_id="platerecognizer_driveway", mmc=False,
                                  config=json.dumps(config)),
                        files={"upload": CAR_BYTES}, headers=headers, timeout=10)
    assert res.status_code == 201
    response = res.json()
    vehicles = [{"plate": r["plate"], "confidence": r["score"], "region_code": r["region"]["code"],
                 "vehicle_type": r["vehicle"]["type"],
                 "box_y_centre": r["box"]["ymin"] + (r["box"]["ymax"] - r["box"]["ymin"]) / 2,
                 "box_x_centre": r["box"]["xmin"] + (r["box"]["xmax"] - r["box"]["xmin"]) / 2}
                for r in response["results"]]
    assert vehicles[0]["plate"] == PLATE and vehicles[0]["vehicle_type"] == "Unknown"
    assert {c["plate"] for r in response["results"] for c in r["candidates"]} >= {PLATE}
    assert "orientation" not in response["results"][0]                   # mmc=False arrives as "False"
    stats = response["usage"]
    assert stats["max_calls"] - stats["calls"] > 0
    assert response["camera_id"] == "platerecognizer_driveway"
    stats = requests.get(server.url + "/v1/statistics/", headers=headers, timeout=10).json()
    assert stats["total_calls"] - stats["usage"]["calls"] > 0
    assert set(stats["usage"]) == {"year", "month", "resets_on", "calls"}


def test_frigate_plate_recognizer_request(server):
    """ljmerza/frigate_plate_recognizer: `api_url` without the trailing slash, regions from its
    config, 200 or 201 accepted, results[0].plate/score and its candidates read."""
    requests = pytest.importorskip("requests")
    res = requests.post(server.url + "/v1/plate-reader", data=dict(regions=["gb", "us"]),
                        files={"upload": CAR_BYTES}, headers={"Authorization": f"Token {server.token}"}, timeout=10,
                        allow_redirects=False)
    assert res.status_code in (200, 201)
    top = (res.json().get("results") or [])[0]
    assert top.get("plate") == PLATE and 0 < top.get("score") <= 1
    assert [c.get("plate") for c in top.get("candidates") or []][0] == PLATE


def test_node_red_base64_upload_strings_and_repeated_regions(server):
    """node-red-contrib-plate-recognizer: base64 text in 'upload', mmc as "true", a JS ISO
    timestamp, regions repeated; with a state-level code as Plate Recognizer knows them."""
    stamp = "2024-05-01T08:30:00.000Z"
    fields = [("upload", base64.b64encode(CAR_BYTES).decode()), ("mmc", "true"), ("camera_id", "gate-2"),
              ("timestamp", stamp), ("regions", "us-ca"), ("regions", "gb,xx"), ("unknown_field", "ignored")]
    with server.client() as c:
        res = c.post("/v1/plate-reader/", files=[(k, (None, v)) for k, v in fields])
    assert res.status_code == 201, res.text
    body = res.json()
    check_snapshot_schema(body)
    r = body["results"][0]
    assert r["plate"] == PLATE and r["model_make"] == [] and r["color"] == [] and r["orientation"] == []
    assert body["timestamp"] == "2024-05-01T08:30:00.000000Z" and body["camera_id"] == "gate-2"
    data_uri = "data:image/jpeg;base64," + base64.b64encode(CAR_BYTES).decode()
    with server.client() as c:
        assert c.post("/v1/plate-reader", data={"upload": data_uri}).json()["results"][0]["plate"] == PLATE
        # JSON bodies too (a user script)
        res = c.post("/v1/plate-reader/", json={"upload": base64.b64encode(CAR_BYTES).decode(), "regions": ["gb"]})
    assert res.status_code == 201 and res.json()["results"][0]["plate"] == PLATE


def test_config_thresholds_modes_and_unknown_values(server):
    with server.client() as c:
        def plates(config: dict | str) -> list[str]:
            res = read_car(c, config=config if isinstance(config, str) else json.dumps(config))
            assert res.status_code == 201, res.text
            return [r["plate"] for r in res.json()["results"]]

        assert plates({"threshold_o": 0.999}) == []                      # read score 0.99
        assert plates({"threshold_d": 0.95}) == []                       # detection score 0.6
        assert plates({"threshold_d": 0.2, "threshold_o": "0.5"}) == [PLATE]
        assert plates({"mode": "fast"}) == [PLATE]
        assert plates({"mode": "redaction"}) == [PLATE]
        # values and keys it does not understand are ignored, booleans as strings included
        assert plates({"threshold_d": "abc", "mode": "turbo", "detection_mode": "vehicle", "foo": "True",
                       "region": "False", "detection_rule": "strict"}) == [PLATE]
        res = read_car(c, config="{not json")
        assert res.status_code == 400 and "config" in res.json()["detail"]
        # region strict keeps only reads that fit the requested regions' formats
        strict = read_car(c, regions="br", config=json.dumps({"region": "strict"})).json()["results"]
        assert strict == [] and plates({"region": "strict"}) == [PLATE]   # strict without regions: a no-op


def test_bad_input_is_400_with_detail(server):
    with server.client() as c:
        res = c.post("/v1/plate-reader/", files={"upload": ("x.jpg", b"this is not an image", "image/jpeg")})
        assert res.status_code == 400 and "not an image" in res.json()["detail"]
        res = c.post("/v1/plate-reader/", data={"camera_id": "x"})
        assert res.status_code == 400 and "upload" in res.json()["detail"]
        res = c.post("/v1/plate-reader/", data={"upload": "%%% not base64 %%%"})
        assert res.status_code == 400 and "base64" in res.json()["detail"]
        res = read_car(c, timestamp="yesterday-ish")
        assert res.status_code == 400 and "timestamp" in res.json()["detail"]
        res = read_car(c, camera_id="c" * 65)
        assert res.status_code == 400
        res = c.post("/v1/plate-reader/", content=b"raw", headers={"Content-Type": "text/plain"})
        assert res.status_code == 400


def test_auth_errors_are_403(server):
    with server.client(token=None) as c:
        res = read_car(c)
        assert res.status_code == 403 and res.json() == {"detail": "Authentication credentials were not provided."}
        assert c.get("/v1/statistics/").status_code == 403
        assert c.get("/api/reads").status_code == 403
    for bad in ("Token " + "0" * 40, "Token " + server.token[:-1] + "x", "Token", "Basic abc"):
        with httpx.Client(base_url=server.url, headers={"Authorization": bad}) as c:
            assert read_car(c).status_code == 403


def test_too_large_upload_and_image_are_413(server):
    with server.client() as c:
        big = np.random.default_rng(0).integers(0, 255, 1_300_000, dtype=np.uint8).tobytes()
        res = c.post("/v1/plate-reader/", files={"upload": ("big.jpg", big, "image/jpeg")})
        assert res.status_code == 413 and "too large" in res.json()["detail"]
        ok, png = cv2.imencode(".png", np.zeros((1000, 2000, 3), np.uint8))  # 2 MP, limit 1.5 MP
        res = c.post("/v1/plate-reader/", files={"upload": ("wide.png", png.tobytes(), "image/png")})
        assert res.status_code == 413 and "pixels" in res.json()["detail"]


def test_per_token_rate_is_429_with_retry_after(server):
    with server.client(token=server.slow_token) as c:
        codes = [read_car(c).status_code for _ in range(3)]
        res = read_car(c)
    assert codes[0] == 201 and 429 in codes[1:]
    assert res.status_code == 429 and int(res.headers["Retry-After"]) >= 1
    assert re.fullmatch(r"Request was throttled\. Expected available in \d+ seconds?\.", res.json()["detail"])


def test_full_pool_answers_429_at_once_and_slow_uploads_time_out(server):
    """Slots are taken before the body is read: uploads that stall hold them, the next request is
    refused at once (no memory for a backlog), and the stalled ones are cut off at the timeout."""
    server.wait_idle()
    host, port = server.url.rsplit("/", 1)[1].split(":")
    socks = []
    for _ in range(WORKERS + QUEUE):
        s = socket.create_connection((host, int(port)))
        s.sendall((f"POST /v1/plate-reader/ HTTP/1.1\r\nHost: {host}\r\nAuthorization: Token {server.token}\r\n"
                   "Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 5000\r\n\r\n--xyz\r\n").encode())
        socks.append(s)
    try:
        end = time.monotonic() + 5
        while httpx.get(server.url + "/healthz").json()["slots_used"] < len(socks) and time.monotonic() < end:
            time.sleep(0.05)
        with server.client() as c:
            t0 = time.monotonic()
            res = read_car(c)
            assert res.status_code == 429 and "busy" in res.json()["detail"] and res.headers["Retry-After"] == "1"
            assert time.monotonic() - t0 < 2
        s = socks[0]
        s.settimeout(TIMEOUT_S + 5)
        assert s.recv(200).startswith(b"HTTP/1.1 408")
    finally:
        for s in socks:
            s.close()
    server.wait_idle()
    with server.client() as c:
        assert read_car(c).status_code == 201


def test_upload_url_only_from_allowed_hosts(server, tmp_path):
    (tmp_path / "car.jpg").write_bytes(CAR_BYTES)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(tmp_path), **kw)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        port = httpd.server_address[1]
        with server.client() as c:
            res = c.post("/v1/plate-reader/", data={"upload_url": f"http://127.0.0.1:{port}/car.jpg"})
            assert res.status_code == 201 and res.json()["results"][0]["plate"] == PLATE
            assert res.json()["filename"] == "car.jpg"
            res = c.post("/v1/plate-reader/", data={"upload_url": f"http://localhost:{port}/car.jpg"})
            assert res.status_code == 400 and "not allowed" in res.json()["detail"]
            res = c.post("/v1/plate-reader/", data={"upload_url": "file:///etc/passwd"})
            assert res.status_code == 400
    finally:
        httpd.shutdown()


# ---- store, JSON API, tokens -----------------------------------------------------------------------

def test_reads_are_stored_and_searchable_through_the_json_api(server):
    with server.client() as c:
        body = read_car(c, camera_id="api-cam").json()
        rid = body["plateread"]["read_ids"][0]
        assert read_car(c, camera_id="api-cam", store="false").json()["plateread"]["read_ids"] == []
        one = c.get(f"/api/reads/{rid}").json()
        assert (one["plate"], one["camera"], one["kind"]) == (PLATE.upper(), "api-cam", "image")
        assert len(one["corners"]) == 4 and one["frame_url"] and one["crop_url"].startswith("/media/")
        crop = c.get(one["crop_url"])
        assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"
        assert cv2.imdecode(np.frombuffer(crop.content, np.uint8), cv2.IMREAD_COLOR).shape[1] > 100
        found = c.get("/api/reads", params={"plate": "YO-76318", "fuzzy": 1, "camera": "api-cam"}).json()
        assert [r["id"] for r in found["reads"]] == [rid]
        assert c.get("/api/reads", params={"plate": "YO76318"}).json()["reads"] == []
        page = c.get("/api/reads", params={"limit": 1, "offset": 1}).json()
        assert len(page["reads"]) == 1 and page["next_offset"] == 2
        assert c.get("/api/reads/999999").status_code == 404
        assert c.get("/api/reads", params={"since": "last tuesday"}).status_code == 400

        assert c.post("/api/watchlist", json={"plate": "YO 76318", "fuzzy": 1, "label": "api-test"}).status_code == 201
        hits = c.get("/api/reads", params={"hits": True, "camera": "api-cam"}).json()["reads"]
        assert hits and all(h["watchlist"] == ["api-test"] for h in hits)
        assert {"plate": "YO76318", "fuzzy": 1} .items() <= c.get("/api/watchlist").json()[0].items()
        assert c.delete("/api/watchlist/YO76318").status_code == 204
        assert c.delete("/api/watchlist/YO76318").status_code == 404
        assert c.post("/api/watchlist", json={"plate": ""}).status_code == 422
        assert {"name": "api-cam"}.items() <= next(x for x in c.get("/api/cameras").json()
                                                    if x["name"] == "api-cam").items()
        assert c.get("/media/../../etc/passwd").status_code == 404
    with server.client(token=None) as c:
        assert c.get(one["crop_url"]).status_code == 403                 # crops are personal data
    docs = httpx.get(server.url + "/openapi.json").json()
    assert {"/v1/plate-reader/", "/v1/statistics/", "/api/reads", "/api/watchlist"} <= set(docs["paths"])
    assert httpx.get(server.url + "/docs").status_code == 200


def test_tokens_cli_create_list_revoke(server, capsys):
    db = ("--db", server.db, "--media", str(server.media))
    assert main(["tokens", "create", "script", "--rate", "5", *db]) == 0
    captured = capsys.readouterr()
    secret = captured.out.strip()
    assert re.fullmatch(r"[0-9a-f]{40}", secret) and "only time" in captured.err
    assert main(["tokens", "create", "script", *db]) == 2 and "exists already" in capsys.readouterr().err
    with server.client(token=secret) as c:
        assert read_car(c).status_code == 201
        assert c.get("/v1/statistics/").json()["usage"]["calls"] == 1
    assert main(["tokens", "list", "--format", "json", *db]) == 0
    listed = {t["name"]: t for t in json.loads(capsys.readouterr().out)}
    assert listed["script"]["calls_this_month"] == 1 and listed["script"]["rate"] == 5
    assert listed["script"]["prefix"] == secret[:8] and secret not in json.dumps(listed)
    assert main(["tokens", "list", *db]) == 0 and "script" in capsys.readouterr().out
    import sqlite3

    with sqlite3.connect(server.db) as con:                             # only the hash is stored
        assert all(secret not in str(row) for row in con.execute("SELECT * FROM api_tokens"))
    assert main(["tokens", "revoke", "script", *db]) == 0
    assert main(["tokens", "revoke", "script", *db]) == 1
    capsys.readouterr()
    time.sleep(RECHECK_S)                    # an accepted token is trusted that long before it is checked again
    with server.client(token=secret) as c:
        assert read_car(c).json() == {"detail": "Invalid token."}


def start_server(args: list[str], tmp: Path, name: str) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    log = tmp / f"{name}.log"
    env = {**os.environ, "XDG_DATA_HOME": str(tmp / "xdg"), "PYTHONUNBUFFERED": "1"}
    env.pop("PLATEREAD_DB", None)
    env.pop("PLATEREAD_MEDIA", None)
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "plateread", "serve", "--port", str(port), "--workers", "1",
                                 "--log-level", "warning", *args], stdout=fh, stderr=subprocess.STDOUT, env=env,
                                cwd=str(tmp))
    return proc, f"http://127.0.0.1:{port}", log


def wait_up(proc: subprocess.Popen, url: str, log: Path, timeout: float = 90) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"the server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail("the server did not start")


def test_built_in_defaults_print_a_first_token_and_no_auth_needs_none(tmp_path):
    """`plateread serve` with no options: SQLite in the user data folder and a first token
    printed once; `--no-auth` on loopback: no token at all."""
    plain, plain_url, plain_log = start_server([], tmp_path, "plain")
    open_, open_url, open_log = start_server(["--no-auth", "--db", str(tmp_path / "open.db")], tmp_path, "open")
    try:
        wait_up(plain, plain_url, plain_log)
        wait_up(open_, open_url, open_log)
        secret = re.search(r"^\s+([0-9a-f]{40})$", plain_log.read_text(), re.M).group(1)
        assert (tmp_path / "xdg" / "plateread" / "reads.db").is_file()
        with httpx.Client(base_url=plain_url, headers={"Authorization": f"Token {secret}"}, timeout=30) as c:
            assert read_car(c).json()["results"][0]["plate"] == PLATE
        with httpx.Client(base_url=plain_url, timeout=30) as c:
            assert read_car(c).status_code == 403
        with httpx.Client(base_url=open_url, timeout=30, follow_redirects=False) as c:
            body = read_car(c).json()
            assert body["results"][0]["plate"] == PLATE and body["usage"]["calls"] == 1
            assert body["plateread"]["read_ids"] == []                          # no --store: nothing kept
            assert c.get("/v1/statistics/").json()["usage"]["calls"] == 1
            assert c.get("/").status_code == 200 and c.get("/login").status_code == 303
    finally:
        for proc in (plain, open_):
            proc.terminate()
        for proc in (plain, open_):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    # uvicorn shuts down gracefully, then re-raises the signal it caught
    assert plain.returncode in (0, -15) and "Traceback" not in plain_log.read_text() + open_log.read_text()


def test_no_auth_only_on_loopback(tmp_path, capsys):
    with pytest.raises(ValueError, match="loopback"):
        ServerConfig(host="0.0.0.0", auth=False)
    ServerConfig(host="::1", auth=False)
    assert main(["serve", "--host", "0.0.0.0", "--no-auth", "--db", str(tmp_path / "x.db")]) == 2
    assert "loopback" in capsys.readouterr().err


# ---- dashboard, live feed, metrics ----------------------------------------------------------------

def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def login(server: Server) -> "httpx.Client":
    c = server.client(token=None)
    page = c.get("/login")
    assert page.status_code == 200 and "content-security-policy" in page.headers
    bad = c.post("/login", data={"token": "nope", "csrf": csrf_of(page.text)})
    assert bad.status_code == 403 and "not valid" in bad.text
    assert c.post("/login", data={"token": server.token, "csrf": "forged"}).status_code == 403
    res = c.post("/login", data={"token": server.token, "csrf": csrf_of(c.get("/login").text)})
    assert res.status_code == 303 and res.headers["location"] == "/"
    cookie = res.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    return c


def test_dashboard_pages_render_and_escape_user_input(server):
    evil = "<script>alert(1)</script>"
    with server.client() as api:
        rid = read_car(api, camera_id=evil).json()["plateread"]["read_ids"][0]
    with server.client(token=None) as anon:
        assert anon.get("/").status_code == 303 and anon.get("/watchlist").headers["location"] == "/login"
    c = login(server)
    try:
        home = c.get("/")
        assert home.status_code == 200 and PLATE.upper() in home.text
        assert evil not in home.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in home.text
        assert "default-src 'self'" in home.headers["content-security-policy"]
        assert home.headers["x-frame-options"] == "DENY" and home.headers["cache-control"] == "no-store"
        detail = c.get(f"/reads/{rid}")
        assert detail.status_code == 200 and "<polygon" in detail.text and "<rect class=\"box\"" in detail.text
        assert evil not in detail.text
        assert evil not in c.get("/cameras").text and "&lt;script&gt;" in c.get("/cameras").text
        fuzzy = c.get("/", params={"plate": "YO76318", "fuzzy": 1})
        assert f"/reads/{rid}" in fuzzy.text
        # forms need the session's CSRF token
        assert c.post("/watchlist", data={"plate": "YO76317", "label": evil}).status_code == 403
        res = c.post("/watchlist", data={"plate": "YO76317", "label": evil, "csrf": csrf_of(home.text)})
        assert res.status_code == 303
        watch = c.get("/watchlist").text
        assert evil not in watch and "&lt;script&gt;" in watch
        hits = c.get("/", params={"hits": "1"}).text
        assert f"/reads/{rid}" in hits and 'class="badge"' in hits
        assert c.post("/watchlist/remove", data={"plate": "YO76317", "csrf": csrf_of(watch)}).status_code == 303
        up = c.post("/upload", data={"csrf": csrf_of(home.text), "camera": "desk", "store": "1"},
                    files={"upload": ("car.jpg", CAR_BYTES, "image/jpeg")})
        assert up.status_code == 200 and "data:image/jpeg;base64," in up.text and PLATE.upper() in up.text
        assert c.get("/reads/999999").status_code == 404
        assert c.post("/logout", data={"csrf": csrf_of(home.text)}).status_code == 303
    finally:
        c.close()


def test_live_feed_emits_a_new_read(server):
    c = login(server)
    got: list[dict] = []
    subscribed = threading.Event()

    def listen() -> None:
        with c.stream("GET", "/events", timeout=20) as res:
            assert res.headers["content-type"].startswith("text/event-stream")
            subscribed.set()                                             # the server subscribes before answering
            event = None
            for line in res.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "read":
                    got.append(json.loads(line[6:]))
                    return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    assert subscribed.wait(15)
    with server.client() as api:
        rid = read_car(api, camera_id="live-cam").json()["plateread"]["read_ids"][0]
    t.join(15)
    c.close()
    assert got and got[0]["id"] == rid and got[0]["plate"] == PLATE.upper() and got[0]["camera"] == "live-cam"
    assert got[0]["crop_url"].startswith("/media/")
    with server.client(token=None) as anon:
        assert anon.get("/events").status_code == 403


def test_metrics_and_health(server):
    health = httpx.get(server.url + "/healthz").json()
    assert health["status"] == "ok" and health["workers"] == WORKERS and health["capacity"] == WORKERS + QUEUE
    text = httpx.get(server.url + "/metrics").text
    for needle in ('plateread_http_requests_total{method="POST",route="/v1/plate-reader/",status="201"}',
                   'plateread_http_request_duration_seconds_bucket{le="0.5",route="/v1/plate-reader/"}',
                   "plateread_queue_depth ", "plateread_inference_slots_used ",
                   'plateread_model_load_seconds{worker="0"}',
                   "plateread_plates_read_total ", 'plateread_images_total{outcome="ok"}',
                   'plateread_rejected_requests_total{reason="auth"}'):
        assert needle in text, needle


# ---- in a real browser ------------------------------------------------------------------------------

def _browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium (the [test] extra)")
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chrome or not driver:
        pytest.skip("the browser test needs Debian's chromium and chromium-driver (apt-get install chromium "
                    "chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=driver), options=opts)


def test_dashboard_in_a_browser(server, tmp_path):
    """Log in, upload a photo, see the read, search it fuzzily, watch it, see the hit, and see a
    read posted by a client appear live. PLATEREAD_SCREENSHOT=path saves the reads page."""
    browser = _browser()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(browser, 20)
    try:
        browser.get(server.url + "/")
        browser.find_element(By.ID, "token").send_keys(server.token)
        browser.find_element(By.ID, "login").click()
        wait.until(ec.presence_of_element_located((By.ID, "reads")))

        browser.get(server.url + "/upload")
        browser.find_element(By.ID, "upload-file").send_keys(str(CAR))
        browser.find_element(By.ID, "upload-send").click()
        result = wait.until(ec.presence_of_element_located((By.ID, "result")))
        assert PLATE.upper() in result.text
        assert browser.find_element(By.CSS_SELECTOR, "img.annotated").get_property("naturalWidth") == 1280

        browser.get(server.url + "/")
        browser.find_element(By.ID, "search-plate").send_keys("YO76318")
        Select(browser.find_element(By.ID, "search-fuzzy")).select_by_value("1")
        browser.find_element(By.ID, "search").click()
        wait.until(ec.url_contains("plate=YO76318"))                    # not the rows of the page before
        link = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#reads a.plate")))
        assert link.text == PLATE.upper()
        assert browser.find_element(By.CSS_SELECTOR, "#reads img.crop").get_property("naturalWidth") > 0
        link.click()
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "figure.frame svg")))
        browser.find_element(By.NAME, "label").send_keys("stolen")
        browser.find_element(By.ID, "watch-add").click()
        wait.until(ec.presence_of_element_located((By.ID, "watchlist")))
        assert "stolen" in browser.find_element(By.ID, "watchlist").text

        browser.get(server.url + "/")
        wait.until(ec.visibility_of_element_located((By.ID, "live")))    # the event stream is open
        assert "stolen" in browser.find_element(By.CSS_SELECTOR, "#reads tr.hit").text
        before = len(browser.find_elements(By.CSS_SELECTOR, "#reads tbody tr"))
        with server.client() as api:
            rid = read_car(api, camera_id="browser-live").json()["plateread"]["read_ids"][0]
        row = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f'#reads tr[data-id="{rid}"]')))
        assert "browser-live" in row.text and "stolen" in row.text          # live, and flagged as a hit
        assert len(browser.find_elements(By.CSS_SELECTOR, "#reads tbody tr")) == before + 1
        shot = os.environ.get("PLATEREAD_SCREENSHOT")
        if shot:
            browser.save_screenshot(shot)
        assert not [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    finally:
        browser.quit()
        with server.client() as api:
            api.delete("/api/watchlist/YO76317")


# ---- the pieces, without a server ------------------------------------------------------------------

def test_compat_parsing():
    assert compat.parse_regions(["us-ca", "gb,fr", "xx", "None"])[:1] == ("us",)
    assert set(compat.parse_regions(["us-ca", "gb,fr"])) == {"us", "gb", "fr"}
    assert compat.parse_regions(["zz-top"]) == ()
    assert [compat.parse_bool(v) for v in ("True", "false", "1", "on", "maybe", None)] == \
        [True, False, True, True, None, None]
    assert compat.parse_timestamp("2024-05-01T10:00:00+02:00") == dt.datetime(2024, 5, 1, 8, tzinfo=dt.timezone.utc)
    assert compat.parse_timestamp("2024-05-01T08:00:00") == dt.datetime(2024, 5, 1, 8, tzinfo=dt.timezone.utc)
    assert compat.decode_base64_upload("data:image/png;base64," + base64.b64encode(b"abc").decode()) == b"abc"
    assert compat.decode_base64_upload(base64.urlsafe_b64encode(b"\xfb\xff").decode().rstrip("=")) == b"\xfb\xff"
    with pytest.raises(ValueError):
        compat.parse_config("[1, 2]")
    opts = compat.read_options({"threshold_d": "2", "threshold_o": -1, "mode": "FAST", "region": "strict"}, ("us",))
    assert (opts.threshold_d, opts.threshold_o, opts.fast, opts.strict) == (1.0, 0.0, True, True)
    assert token_from_header("token  abc ") == "abc" and token_from_header("Basic abc") is None


def test_rate_limiter_and_session_signing():
    lim = RateLimiter(rate=2.0, burst=2.0)
    who = Principal(1, "a")
    assert [lim.wait(who, now=0.0) for _ in range(3)][:2] == [0.0, 0.0]
    assert lim.wait(who, now=0.0) == pytest.approx(0.5)
    assert lim.wait(who, now=0.6) == 0.0                                 # refilled at 2/s
    assert RateLimiter(0.0, 1.0).wait(who) == 0.0                        # 0: no limit
    signer = SessionSigner(b"k" * 32, 60)
    value = signer.dumps({"tid": 3, "csrf": "x"})
    assert signer.loads(value)["tid"] == 3
    body, mac = value.split(".")
    forged = base64.urlsafe_b64encode(json.dumps({"tid": 1, "csrf": "x", "exp": 2**40}).encode()).decode().rstrip("=")
    assert signer.loads(f"{forged}.{mac}") is None and signer.loads(value + "x") is None
    assert SessionSigner(b"other" * 8, 60).loads(value) is None
    assert SessionSigner(b"k" * 32, -1).loads(SessionSigner(b"k" * 32, -1).dumps({})) is None


def test_request_knobs_reach_the_default_engine_and_are_restored():
    """`threshold_d`, `mode: fast` and `regions` are set on a worker's own reader for one read;
    this fails if the engine attributes they set are renamed."""
    from plateread import Reader
    from plateread.server.pool import ReadOptions, overrides

    reader = Reader()
    det, rec = reader.detector, reader.recognizer
    before = (det.threshold, det.zoom, reader.second_look, rec.region_decoder)
    with overrides(reader, ReadOptions(threshold_d=0.21, fast=True, regions=("gb",)), {}):
        assert det.threshold == 0.21 and det.zoom is False and reader.second_look is None
        assert rec.region_decoder.regions == ["gb"]
        assert reader.read(CAR_BYTES).results                            # and it still reads
    assert (det.threshold, det.zoom, reader.second_look, rec.region_decoder) == before
    with overrides(reader, ReadOptions(redaction=True), {}):
        assert det.threshold == 0.15 and reader.keep_unread is True
        # every box the detector finds at 0.15 comes back, read or not
        from plateread.imaging import load_image
        blank = load_image(CAR_BYTES)
        blank[434:459, 590:712] = 245  # the plate's characters painted over: a plate nobody can read
        boxes = {(d.box.xmin, d.box.ymin) for d in det.detect(blank)}
        assert boxes and boxes == {(r.box.xmin, r.box.ymin) for r in reader.read(blank).results}
    assert reader.read(blank).results == ()  # outside redaction an unread box is no read
    assert reader.keep_unread is False
