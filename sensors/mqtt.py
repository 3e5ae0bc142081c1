"""paho-mqtt built in one place (MQTT 5), for the ingest worker and the simulator."""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from app.core.mqtt_url import parse_mqtt_url
from app.core.settings import Settings

RECEIVE_MAXIMUM = 65535  # MQTT 5 §3.1.2.11.3: the most unacknowledged QoS 1 messages we accept


def make_client(settings: Settings, *, client_id: str = "", manual_ack: bool = False) -> mqtt.Client:
    """An MQTT 5 client with the URL's credentials and TLS; not yet connected."""
    target = parse_mqtt_url(settings.mqtt_url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                         manual_ack=manual_ack)
    if target.tls:
        client.tls_set_context(ssl.create_default_context())
    if target.username:
        client.username_pw_set(target.username, target.password)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.reconnect_delay_set(1, 10)
    return client


def connect_async(client: mqtt.Client, settings: Settings, *, persistent: bool,
                  receive_maximum: int = RECEIVE_MAXIMUM, keepalive: int = 30) -> None:
    """Start connecting; ``persistent`` = clean start off with the settings' session expiry.

    MQTT 5 §3.1.2.4 and §3.1.2.11.2: with Clean Start 0 and a Session Expiry Interval the broker
    keeps our subscription and queues QoS 1 messages while we are away, then resends the
    unacknowledged ones (same packet ids, DUP set) when we reconnect.
    """
    target = parse_mqtt_url(settings.mqtt_url)
    props = Properties(PacketTypes.CONNECT)
    props.ReceiveMaximum = receive_maximum
    if persistent:
        props.SessionExpiryInterval = settings.mqtt_session_expiry_s
    client.connect_async(target.host, target.port, keepalive=keepalive,
                         clean_start=not persistent, properties=props)
