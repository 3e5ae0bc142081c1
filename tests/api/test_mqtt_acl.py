"""deploy/mosquitto's password file and ACL keep each operator to ``parking/<its id>/#``.

A private Mosquitto on a free port loads the deploy files as they are (the example password of
every user is ``change-me``); MQTT 5 tells a publisher when the broker refuses a publish.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
PASSWORD = "change-me"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def broker() -> Iterator[int]:
    port = _free_port()
    folder = Path(tempfile.mkdtemp(prefix="citypark-acl-"))  # outside pytest's private tmp: mosquitto
    os.chmod(folder, 0o755)                                   # started as root reads as its own user
    for name in ("acl", "passwd"):
        shutil.copy(DEPLOY / name, folder / name)
        os.chmod(folder / name, 0o644)
    (folder / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {folder}/passwd\n"
        f"acl_file {folder}/acl\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(folder / "mosquitto.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(lambda: _listening(port), "broker did not start")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait(check, what: str, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.02)  # polling a condition against a deadline


class Client:
    """A connected MQTT 5 client recording CONNACK, PUBACK reason codes and messages."""

    def __init__(self, port: int, user: str | None, password: str | None = PASSWORD) -> None:
        self.connack: list[mqtt.ReasonCode] = []
        self.acks: dict[int, mqtt.ReasonCode] = {}
        self.messages: list[str] = []
        self.subscribed = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"acl-{user}-{time.monotonic_ns()}",
                             protocol=mqtt.MQTTv5)
        if user:
            self.c.username_pw_set(user, password)
        self.c.on_connect = lambda c, u, f, rc, p: self.connack.append(rc)
        self.c.on_publish = lambda c, u, mid, rc, p: self.acks.__setitem__(mid, rc)
        self.c.on_message = lambda c, u, m: self.messages.append(m.topic)
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        _wait(lambda: self.connack, "no CONNACK")

    def publish(self, topic: str) -> mqtt.ReasonCode:
        mid = self.c.publish(topic, b'{"occupied": true, "observed_at": "2026-11-29T08:00:00+08:00"}', qos=1).mid
        _wait(lambda: mid in self.acks, "no PUBACK")
        return self.acks[mid]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def test_operators_publish_only_under_their_own_id(broker: int) -> None:
    ingest = Client(broker, "citypark-ingest")
    operator = Client(broker, "tiedong-city")
    try:
        assert not ingest.connack[0].is_failure
        assert not operator.connack[0].is_failure
        ingest.c.subscribe("$share/citypark/parking/#", qos=1)  # as the ingest workers do
        assert ingest.subscribed.wait(5)
        denied = operator.publish("parking/shared-parking/sensors/bay-001790/occupancy")
        allowed = operator.publish("parking/tiedong-city/sensors/mag-000001/occupancy")
        assert denied.is_failure
        assert denied.getName() == "Not authorized"
        assert not allowed.is_failure
        _wait(lambda: ingest.messages, "the allowed message never reached the ingest")
        # per-publisher order: had the refused message been delivered, it would have come first
        assert ingest.messages == ["parking/tiedong-city/sensors/mag-000001/occupancy"]
    finally:
        ingest.close()
        operator.close()


@pytest.mark.parametrize(("user", "password"), [(None, None), ("tiedong-city", "wrong"), ("nobody", PASSWORD)])
def test_unknown_or_anonymous_clients_are_refused(broker: int, user: str | None, password: str | None) -> None:
    client = Client(broker, user, password)
    try:
        assert client.connack[0].is_failure
    finally:
        client.close()
