"""`plateread serve --config`, for real: a server subprocess running two live MJPEG cameras on
loopback beside the API, alerting a webhook receiver that refuses deliveries for a while and a
Mosquitto broker; SIGKILLed mid-run and started again (every hit delivered at least once, exactly
once after dropping duplicate keys, signatures valid); cameras added and removed by the API and
by SIGHUP without touching the others; health in the API, the dashboard and /metrics."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx", reason="needs the [server] extra")
pytest.importorskip("fastapi", reason="needs the [server] extra")
pytest.importorskip("paho.mqtt", reason="needs paho-mqtt (the [server] extra)")

import camfakes  # noqa: E402
from plateread.alerts.webhook import verify  # noqa: E402
from plateread.store import Store  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SECRET = "e2e-secret"
LAUNCH = ("import sys; sys.path.insert(0, sys.argv.pop(1)); import camfakes; "
          "from plateread.cli.main import main; sys.exit(main(sys.argv[1:]))")
pytestmark = pytest.mark.skipif(camfakes.MOSQUITTO is None,
                                reason="needs Debian's mosquitto (apt-get install mosquitto; .ci/run installs it)")


def config(port: int, db: Path, hook: str, mqtt_port: int, cams: dict[str, str]) -> str:
    return camfakes.service_toml(port, db, cams, hook=hook, secret=SECRET, mqtt_port=mqtt_port, stall_s=6,
                                 watchlist=[("AB123", 0, "stolen"), ("XY987", 1, "vip")])


class Service:
    def __init__(self, tmp: Path, conf: Path, port: int) -> None:
        self.tmp, self.conf, self.url = tmp, conf, f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.token = ""

    def start(self) -> None:
        self.starts += 1
        log = self.tmp / f"server{self.starts}.log"
        env = {**os.environ, "XDG_DATA_HOME": str(self.tmp / "xdg"), "PYTHONUNBUFFERED": "1"}
        self.log = open(log, "w")
        self.proc = subprocess.Popen([sys.executable, "-c", LAUNCH, str(REPO / "tests"), "serve", "--config",
                                      str(self.conf)], stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=self.tmp)
        end = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"the server exited with {self.proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < end, log.read_text()
            time.sleep(0.2)
        found = re.search(r"^\s{4}([0-9a-f]{40})$", log.read_text(), re.M)   # printed once, on the first start
        self.token = found.group(1) if found else self.token

    def api(self) -> "httpx.Client":
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Token {self.token}"}, timeout=20)

    def cameras(self) -> dict[str, dict]:
        with self.api() as c:
            return {x["name"]: x for x in c.get("/api/cameras").json()}

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.log.close()
        return code


def wait_for(cond, timeout: float = 30.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_service_kill_restart_reload_and_health(tmp_path):
    a = camfakes.MjpegCamera(camfakes.jpegs(camfakes.passing(["AB123", "CD456"], moving=6, gap=6)))
    # XY988 is a fuzzy hit of the watchlist's XY987
    b = camfakes.MjpegCamera(camfakes.jpegs(camfakes.passing(["XY988", "EF321"], moving=6, gap=6)))
    c = camfakes.MjpegCamera(camfakes.jpegs(camfakes.passing(["GH555"], moving=6, gap=6)))
    rec = camfakes.WebhookReceiver(fail_first=2)
    broker = camfakes.Broker(tmp_path / "mqtt")
    sub = camfakes.Subscriber(broker.port)
    port, db = camfakes.free_port(), tmp_path / "reads.db"
    conf = tmp_path / "plateread.toml"
    write = lambda cams: conf.write_text(config(port, db, rec.url, broker.port, cams))  # noqa: E731
    write({"a": a.url, "b": b.url})
    svc = Service(tmp_path, conf, port)
    try:
        svc.start()
        assert svc.token, "the first start prints a token"
        wait_for(lambda: len(set(rec.keys())) >= 3, what="three hits at the webhook")

        # the receiver goes down; hits pile up in the outbox; then the server is SIGKILLed
        rec.fail_first = 10**9
        seen = rec.attempts
        wait_for(lambda: rec.attempts > seen + 2, what="failed deliveries")
        assert svc.stop(signal.SIGKILL) == -signal.SIGKILL
        with Store.open(f"sqlite:///{db}", tmp_path / "media") as store:
            pending_at_kill = [r for r in store.outbox(500, state="pending") if r.target == "webhook:ops"]
        assert pending_at_kill, "the kill should leave undelivered hits behind"

        rec.fail_first = 0                                   # the receiver is back
        svc.start()
        wait_for(lambda: {r.key for r in pending_at_kill} <= set(rec.keys()), what="hits pending at the kill")
        cams = svc.cameras()
        wait_for(lambda: all(svc.cameras()[n]["health"]["online"] for n in "ab"), what="both cameras online")
        wait_for(lambda: svc.cameras()["a"]["health"]["events"] >= 1, what="an event from a after the restart")
        h = svc.cameras()["a"]["health"]
        assert h["frames_in"] > 0 and h["frames_processed"] > 0 and h["events"] >= 1 and h["last_event_at"]
        assert cams["a"]["reads"] > 0 and {"dropped", "reconnects", "restarts"} <= set(h)

        with svc.api() as api:                                # the outbox over the API
            listed = api.get("/api/alerts", params={"state": "delivered", "limit": 500}).json()
            assert {r.key for r in pending_at_kill} <= {x["key"] for x in listed["alerts"]}
            assert listed["targets"]["webhook:ops"]["delivered"] >= len(pending_at_kill)
            assert api.post(f"/api/alerts/{listed['alerts'][0]['id']}/retry").status_code == 404   # delivered

        # reload by the API: c added, b removed, a untouched
        write({"a": a.url, "c": c.url})
        a_before = svc.cameras()["a"]["health"]
        with svc.api() as api:
            assert httpx.post(svc.url + "/api/reload").status_code == 403     # authenticated only
            report = api.post("/api/reload").json()
        assert report == {"added": ["c"], "removed": ["b"], "restarted": [], "unchanged": ["a"]}
        wait_for(lambda: (svc.cameras()["c"]["health"] or {}).get("events", 0) >= 1, what="events from c")
        after = svc.cameras()
        assert after["b"]["health"] is None and after["b"]["reads"] > 0      # gone from the service, reads stay
        assert after["a"]["health"]["restarts"] == 0 and after["a"]["health"]["started_at"] == a_before["started_at"]
        assert after["a"]["health"]["events"] > a_before["events"]            # a kept reading through the reload

        # a broken file is refused and changes nothing; SIGHUP reloads the fixed one
        conf.write_text("[[camera]]\nname = 'x y'\n")
        with svc.api() as api:
            bad = api.post("/api/reload")
        assert bad.status_code == 400 and "nothing changed" in bad.json()["detail"]
        write({"a": a.url, "b": b.url, "c": c.url})
        svc.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: (svc.cameras()["b"]["health"] or {}).get("online"), what="b back after SIGHUP")
        assert svc.cameras()["a"]["health"]["restarts"] == 0

        # health on /metrics and on the dashboard
        metrics = httpx.get(svc.url + "/metrics").text
        assert 'plateread_camera_online{camera="a"} 1.0' in metrics
        assert re.search(r'plateread_camera_frames_processed_total\{camera="c"\} [1-9]', metrics)
        assert 'plateread_outbox_messages{state="delivered",target="webhook:ops"}' in metrics
        assert re.search(r'plateread_alerts_delivered_total\{target="mqtt"\} [1-9]', metrics)
        with httpx.Client(base_url=svc.url, timeout=20) as web:
            csrf = re.search(r'name="csrf" value="([^"]+)"', web.get("/login").text).group(1)
            assert web.post("/login", data={"token": svc.token, "csrf": csrf}).status_code == 303
            page = web.get("/cameras").text
            assert 'data-camera="a"' in page and "online" in page and "Reload the config file" in page
            alerts = web.get("/alerts").text
            assert "webhook:ops" in alerts and "delivered" in alerts and "stolen" in alerts
            live = None                                       # camera events arrive on the live feed
            with web.stream("GET", "/events", timeout=15) as feed:
                for line in feed.iter_lines():
                    if line.startswith("data:"):
                        live = json.loads(line[5:])
                        break
            assert live and live["camera"] in ("a", "b", "c") and live["kind"] == "event"
        # SIGTERM: tracks flushed, outbox drained (uvicorn re-raises the signal after a graceful stop)
        assert svc.stop() in (0, -signal.SIGTERM)
    finally:
        if svc.proc is not None and svc.proc.poll() is None:
            svc.proc.kill()
        for cam in (a, b, c):
            cam.close()
        rec.close()
        sub.close()
        broker.close()

    # every hit the store holds reached the webhook and MQTT, exactly once after dropping duplicates
    with Store.open(f"sqlite:///{db}", tmp_path / "media") as store:
        hits = store.watch_hits(limit=None)
        rows = store.outbox(10_000)
    hit_keys = {f"hit-{r.event_id}" for r in hits}
    assert len(hit_keys) >= 5 and {r.plate for r in hits} >= {"AB123", "XY988"}
    assert all(r.state == "delivered" for r in rows), [r.to_dict() for r in rows if r.state != "delivered"]
    webhook = {}
    for d in rec.received:
        assert verify(SECRET, d.timestamp, d.signature, d.body), "bad signature"
        webhook.setdefault(d.key, []).append(d.payload)
    assert set(webhook) == hit_keys                           # every hit, and nothing else
    assert all(p[0]["key"] == k and p[0]["type"] == "watchlist_hit" for k, p in webhook.items())
    mqtt_alerts = {json.loads(body)["key"] for _, body, _, _ in sub.on("plateread/alerts")}
    assert mqtt_alerts == hit_keys
    events_topics = {t for t, *_ in sub.messages if t.endswith("/events")}
    assert events_topics == {"plateread/a/events", "plateread/b/events", "plateread/c/events"}


def test_the_example_config_runs_as_written(tmp_path):
    """examples/plateread.toml with the real engine; flags move only the port and the database."""
    port = camfakes.free_port()
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg"), "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "plateread", "serve", "--config",
                             str(REPO / "examples" / "plateread.toml"), "--port", str(port),
                             "--db", str(tmp_path / "reads.db"), "--log-level", "warning"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: proc.poll() is None and _up(url), timeout=60, what="the example server")
        token = re.search(r"^\s{4}([0-9a-f]{40})$", (tmp_path / "server.log").read_text(), re.M).group(1)
        api = httpx.Client(base_url=url, headers={"Authorization": f"Token {token}"}, timeout=20)

        def demo() -> dict:
            return next(c for c in api.get("/api/cameras").json() if c["name"] == "demo")
        wait_for(lambda: (demo()["health"] or {}).get("events", 0) >= 1, timeout=40, what="the demo car's event")
        # the camera counts an event when it ends; the store writes it a moment later (spooled)
        wait_for(lambda: api.get("/api/reads").json()["reads"], timeout=20, what="the event stored")
        reads = api.get("/api/reads", params={"hits": "true"}).json()["reads"]
        assert reads and reads[0]["plate"] == "YO76317" and reads[0]["watchlist"] == ["demo"], \
            (api.get("/api/reads").json()["reads"], demo())
        alerts = api.get("/api/alerts").json()["alerts"]
        assert alerts and alerts[0]["target"] == "webhook:example" and alerts[0]["plate"] == "YO76317"
        api.close()
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
