"""Readiness checks: is the database answering, is the broker accepting connections."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

import asyncpg
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from app.core.mqtt_url import parse_mqtt_url
from app.core.settings import Settings


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str


async def check_database(settings: Settings, timeout: float = 2.0) -> Check:
    try:
        conn = await asyncpg.connect(settings.asyncpg_dsn, timeout=timeout)
        try:
            await conn.fetchval("SELECT postgis_version()", timeout=timeout)
        finally:
            await conn.close()
    except Exception as exc:  # any failure means "not ready", with its reason
        return Check(False, f"{type(exc).__name__}: {exc}"[:300])
    return Check(True, "ok")


async def check_broker(settings: Settings, timeout: float = 2.0) -> Check:
    try:
        await asyncio.wait_for(asyncio.to_thread(_mqtt_connect, settings, timeout), timeout + 1)
    except Exception as exc:
        return Check(False, f"{type(exc).__name__}: {exc}"[:300])
    return Check(True, "ok")


def _mqtt_connect(settings: Settings, timeout: float) -> None:
    target = parse_mqtt_url(settings.mqtt_url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect_timeout = timeout
    if target.tls:
        client.tls_set_context(ssl.create_default_context())
    if target.username:
        client.username_pw_set(target.username, target.password)
    result: list[object] = []
    client.on_connect = lambda c, u, f, rc, p: result.append(rc)
    client.connect(target.host, target.port, keepalive=10)
    try:
        for _ in range(int(timeout * 20)):
            client.loop(timeout=0.05)
            if result:
                break
    finally:
        client.disconnect()
    if not result:
        raise TimeoutError("no CONNACK from broker")
    if getattr(result[0], "is_failure", False):
        raise ConnectionError(f"broker refused: {result[0]}")
