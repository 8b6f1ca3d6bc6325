"""Alerts: outbox rows written with their event, delivery with retries to a real webhook receiver
that fails first, and to a real Mosquitto broker (QoS 1, topics, Home Assistant discovery) that
goes away and comes back; on SQLite and, with PLATEREAD_TEST_PG_URL, PostgreSQL."""
from __future__ import annotations

import datetime as dt
import json
import time
import uuid

import pytest

import camfakes
from plateread.alerts.matching import alerts_for, watchlist_hits
from plateread.alerts.mqtt import MqttSender, MqttTarget
from plateread.alerts.outbox import Dispatcher, RetryPolicy
from plateread.alerts.webhook import WebhookSender, WebhookTarget, sign, verify
from plateread.store import OutboxEntry, Store, StoreError
from plateread.types import Box, Candidate
from plateread.video.events import VehicleEvent
from test_store import db_url, store  # noqa: F401  (fixtures: SQLite and, with PLATEREAD_TEST_PG_URL, PostgreSQL)

pytest.importorskip("httpx", reason="webhooks need httpx (the [server] extra)")
FAST = RetryPolicy(min_s=0.05, max_s=0.2)
SECRET = "test-secret"


def event(plate: str, camera: str = "gate-1") -> VehicleEvent:
    t = dt.datetime.now(dt.timezone.utc)
    return VehicleEvent(uuid.uuid4().hex, camera, 1, plate, 0.9, t - dt.timedelta(seconds=2), t, 8,
                        Box(10, 20, 90, 44), (Candidate(plate, 0.9),), source="rtsp://u:pw@cam/1")


def wait_for(cond, timeout: float = 15.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


HOOK = WebhookTarget("ops", "http://127.0.0.1:9/hook", SECRET)           # hits only
MQTT = MqttTarget("127.0.0.1")                                          # every event + hits


def test_alerts_follow_the_stores_watchlist_rule_and_are_stored_with_their_event(store):
    store.watchlist_add("AB123", fuzzy=1, label="stolen")
    ev = event("AB124")                                                  # one character off
    hits = watchlist_hits(store, ev.plate)
    assert [w.label for w in hits] == ["stolen"]
    entries = alerts_for(ev, hits, [HOOK, MQTT])
    assert sorted((e.kind, e.target) for e in entries) == [("event", "mqtt"), ("hit", "mqtt"), ("hit", "webhook:ops")]
    assert {e.key for e in entries if e.kind == "hit"} == {f"hit-{ev.event_id}"}
    payload = next(e.payload for e in entries if e.kind == "hit")
    assert payload["type"] == "watchlist_hit" and payload["plate"] == "AB124" and "source" not in payload
    assert payload["watchlist"] == [{"plate": "AB123", "fuzzy": 1, "label": "stolen", "reason": None}]
    assert alerts_for(event("ZZ999"), [], [HOOK]) == []                  # no hit, hooks want hits only

    rid = store.add_event(ev, outbox=entries)
    rows = store.outbox()
    assert len(rows) == 3 and {r.read_id for r in rows} == {rid} and all(r.state == "pending" for r in rows)
    # one transaction: when the outbox insert fails (a duplicate key here), the read is not stored either
    before = len(store.query())
    dup = event("AB123")
    with pytest.raises(StoreError):
        store.add_event(dup, outbox=[OutboxEntry("k", "mqtt", "event", {}), OutboxEntry("k", "mqtt", "event", {})])
    assert len(store.query()) == before and store.query(plate="AB123") == []


def test_webhook_retries_with_backoff_signs_and_keys(store):
    store.watchlist_add("AB123")
    rec = camfakes.WebhookReceiver(fail_first=3)
    target = WebhookTarget("ops", rec.url, SECRET)
    disp = Dispatcher(store, [WebhookSender(target)], FAST, poll_s=0.1)
    disp.start()
    try:
        ids = []
        for plate in ("AB123", "CD456", "AB123"):
            ev = event(plate)
            ids.append(store.add_event(ev, outbox=alerts_for(ev, watchlist_hits(store, plate), [target])))
            disp.notify()
        assert wait_for(lambda: len(rec.received) == 2), (rec.attempts, store.outbox())
    finally:
        disp.stop()
        rec.close()
    assert rec.attempts == 5                                 # 3 refused, then each hit once
    assert len(set(rec.keys())) == 2
    for d in rec.received:
        assert verify(SECRET, d.timestamp, d.signature, d.body)
        assert not verify("other", d.timestamp, d.signature, d.body)
        assert not verify(SECRET, d.timestamp, d.signature, d.body + b" ")
        assert d.payload["key"] == d.key and d.payload["read_id"] in (ids[0], ids[2])
    rows = store.outbox()
    assert all(r.state == "delivered" for r in rows)
    assert sum(r.attempts for r in rows) == 5 and all(r.attempts >= 1 for r in rows)   # every try is counted
    assert verify(SECRET, "100", sign(SECRET, 100, b"{}"), b"{}", now=150)
    assert not verify(SECRET, "100", sign(SECRET, 100, b"{}"), b"{}", now=1000)   # too old: a replay


def test_gone_receiver_gives_the_alert_up(store):
    store.watchlist_add("AB123")
    rec = camfakes.WebhookReceiver(fail_first=99, status=410)
    target = WebhookTarget("gone", rec.url, SECRET)
    disp = Dispatcher(store, [WebhookSender(target)], FAST, poll_s=0.1)
    disp.start()
    try:
        ev = event("AB123")
        store.add_event(ev, outbox=alerts_for(ev, watchlist_hits(store, "AB123"), [target]))
        disp.notify()
        assert wait_for(lambda: store.outbox(state="dead"))
    finally:
        disp.stop()
        rec.close()
    row = store.outbox()[0]
    assert row.state == "dead" and row.last_error == "HTTP 410" and rec.attempts == 1
    assert store.outbox_retry(row.id) and store.outbox()[0].state == "pending"


def test_purge_removes_old_alerts_too(store):
    ev = event("AB123")
    store.add_event(ev, outbox=alerts_for(ev, [], [MQTT]))
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=40)
    rep = store.purge(30, now=later)
    assert (rep.reads, rep.outbox) == (1, 1) and store.outbox() == []


@pytest.mark.skipif(camfakes.MOSQUITTO is None, reason="needs Debian's mosquitto (apt-get install mosquitto)")
def test_mqtt_topics_discovery_and_a_broker_that_drops(tmp_path):
    pytest.importorskip("paho.mqtt", reason="needs paho-mqtt (the [server] extra)")
    store = Store.open(f"sqlite:///{tmp_path / 'reads.db'}", tmp_path / "media")
    store.watchlist_add("AB123", label="stolen")
    broker = camfakes.Broker(tmp_path)
    port = broker.port
    target = MqttTarget("127.0.0.1", port, client_id="plateread-test", timeout_s=2.0)
    sender = MqttSender(target, ["gate-1"])
    disp = Dispatcher(store, [sender], FAST, poll_s=0.1)
    disp.start()
    sub = camfakes.Subscriber(port)
    late = None
    try:
        assert wait_for(lambda: sender._client is not None and sender._client.is_connected())
        for plate in ("CD456", "AB123"):
            ev = event(plate)
            store.add_event(ev, outbox=alerts_for(ev, watchlist_hits(store, plate), [target]))
            disp.notify()
        assert wait_for(lambda: len(sub.on("plateread/alerts")) == 1 and len(sub.on("plateread/gate-1/events")) == 2)
        alert = json.loads(sub.on("plateread/alerts")[0][1])
        assert alert["type"] == "watchlist_hit" and alert["plate"] == "AB123"
        assert alert["watchlist"][0]["label"] == "stolen"

        late = camfakes.Subscriber(port)                     # retained: discovery, status, each camera's last event
        assert wait_for(lambda: late.on("homeassistant/sensor/plateread/gate-1_last_plate/config"))
        topic, body, retained, _ = late.on("homeassistant/sensor/plateread/gate-1_last_plate/config")[0]
        conf = json.loads(body)
        assert retained and conf["state_topic"] == "plateread/gate-1/events"
        assert conf["value_template"] == "{{ value_json.plate }}"
        assert conf["availability_topic"] == "plateread/status" and conf["unique_id"] == "plateread_gate-1_last_plate"
        assert wait_for(lambda: late.on("plateread/status") and late.on("plateread/gate-1/events"))
        assert late.on("plateread/status")[-1][1] == b"online"
        assert json.loads(late.on("plateread/gate-1/events")[-1][1])["plate"] == "AB123"
        late.close()
        sub.close()

        broker.close()                                        # the broker drops: alerts wait in the outbox
        ev = event("AB123")
        store.add_event(ev, outbox=alerts_for(ev, watchlist_hits(store, "AB123"), [target]))
        disp.notify()
        assert wait_for(lambda: any(r.attempts for r in store.outbox(state="pending")))
        broker = camfakes.Broker(tmp_path / "again", port)  # back, on the same port
        sub = camfakes.Subscriber(port)
        assert wait_for(lambda: sub.on("plateread/alerts"), timeout=40), store.outbox()
        assert json.loads(sub.on("plateread/alerts")[0][1])["key"] == f"hit-{ev.event_id}"
        assert wait_for(lambda: all(r.state == "delivered" for r in store.outbox()))
        sender.set_cameras([])                                # a removed camera leaves Home Assistant
        assert wait_for(lambda: any(m[1] == b"" for m in sub.on(
            "homeassistant/sensor/plateread/gate-1_last_plate/config")))
    finally:
        disp.stop()
        for s in (sub, late):
            if s is not None:
                s.close()
        broker.close()
        store.close()
