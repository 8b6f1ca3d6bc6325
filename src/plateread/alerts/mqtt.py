"""The MQTT target (paho-mqtt, QoS 1): every event on ``<prefix>/<camera>/events`` (retained, so a
subscriber that connects later sees each camera's last plate), watchlist hits on
``<prefix>/alerts``, and Home Assistant MQTT discovery: each camera is a sensor whose state is
its last plate, with the event as attributes and ``<prefix>/status`` (online/offline, the
client's last will) as availability.

A message counts as delivered when the broker's PUBACK arrives; while the broker is away, sends
fail fast and the outbox retries them, so nothing waits in paho's memory across a crash.
"""
from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Sequence

from .. import __version__
from ..store import OutboxRow
from .outbox import DeliveryError, message_body

log = logging.getLogger("plateread.alerts")


@dataclass(frozen=True)
class MqttTarget:
    """``events``: "all" (every event on the camera topics, the default) or "hits" (alerts only)."""

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    client_id: str | None = None
    prefix: str = "plateread"
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    events: str = "all"
    keepalive: int = 30
    tls: bool = False
    timeout_s: float = 5.0

    @property
    def target(self) -> str:
        return "mqtt"

    def wants(self, kind: str) -> bool:
        return kind == "hit" or self.events == "all"


def topic_for(config: MqttTarget, kind: str, camera: str | None) -> str:
    return f"{config.prefix}/alerts" if kind == "hit" else f"{config.prefix}/{camera or 'unknown'}/events"


def discovery_message(config: MqttTarget, camera: str) -> tuple[str, dict[str, Any]]:
    """(topic, payload) announcing ``camera`` to Home Assistant as a 'last plate' sensor."""
    uid = f"plateread_{camera}_last_plate"
    state = f"{config.prefix}/{camera}/events"
    return (f"{config.discovery_prefix}/sensor/plateread/{camera}_last_plate/config", {
        "name": "Last plate", "unique_id": uid, "object_id": uid, "icon": "mdi:car-back",
        "state_topic": state, "value_template": "{{ value_json.plate }}", "json_attributes_topic": state,
        "availability_topic": f"{config.prefix}/status", "payload_available": "online",
        "payload_not_available": "offline",
        "device": {"identifiers": [f"plateread_{camera}"], "name": f"plateread {camera}",
                   "manufacturer": "plateread", "model": "ANPR camera", "sw_version": __version__}})


class MqttSender:
    def __init__(self, config: MqttTarget, cameras: Sequence[str] = ()) -> None:
        self.config, self.name = config, config.target
        self._cameras: set[str] = set(cameras)
        self._announced: set[str] = set()
        self._lock = threading.Lock()
        self._client: Any = None

    def start(self) -> None:
        import paho.mqtt.client as mqtt

        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.config.client_id or "",
                        protocol=mqtt.MQTTv311, clean_session=True)
        if self.config.username:
            c.username_pw_set(self.config.username, self.config.password)
        if self.config.tls:
            c.tls_set()
        c.will_set(f"{self.config.prefix}/status", "offline", qos=1, retain=True)
        c.reconnect_delay_set(1, 30)
        c.on_connect = self._on_connect
        c.on_disconnect = lambda *a: log.warning("mqtt: disconnected from %s:%d", self.config.host, self.config.port)
        self._client = c
        c.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive)
        c.loop_start()

    def _on_connect(self, client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any = None) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("mqtt: %s:%d refused the connection: %s", self.config.host, self.config.port, reason)
            return
        log.info("mqtt: connected to %s:%d", self.config.host, self.config.port)
        client.publish(f"{self.config.prefix}/status", "online", qos=1, retain=True)
        with self._lock:
            self._announced.clear()
        self._announce()

    def set_cameras(self, names: Sequence[str]) -> None:
        """The cameras to announce; cameras no longer configured are withdrawn from Home Assistant."""
        with self._lock:
            self._cameras = set(names)
        self._announce()

    def _announce(self) -> None:
        c = self._client
        if not self.config.discovery or c is None or not c.is_connected():
            return
        with self._lock:
            new, gone = self._cameras - self._announced, self._announced - self._cameras
            self._announced = set(self._cameras)
        for cam in sorted(new):
            topic, payload = discovery_message(self.config, cam)
            c.publish(topic, json.dumps(payload), qos=1, retain=True)
        for cam in sorted(gone):
            c.publish(discovery_message(self.config, cam)[0], b"", qos=1, retain=True)   # removes the entity

    def send(self, row: OutboxRow) -> None:
        c = self._client
        if c is None or not c.is_connected():
            raise DeliveryError(f"not connected to {self.config.host}:{self.config.port}")
        info = c.publish(topic_for(self.config, row.kind, row.camera), message_body(row), qos=1,
                         retain=row.kind == "event")
        try:
            info.wait_for_publish(self.config.timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise DeliveryError(f"publish failed: {exc}") from None
        if not info.is_published():
            raise DeliveryError(f"no PUBACK within {self.config.timeout_s:g} s")

    def close(self) -> None:
        c, self._client = self._client, None
        if c is None:
            return
        if c.is_connected():   # a clean stop says so; a crash leaves it to the last will
            c.publish(f"{self.config.prefix}/status", "offline", qos=1, retain=True).wait_for_publish(2)
        c.disconnect()
        c.loop_stop()
