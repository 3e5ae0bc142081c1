"""`citypark simulate`: realistic, slightly imperfect traffic that ingest turns into a live district."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import poll
from tests.ingest.harness import ROOT, count_rows

pytestmark = pytest.mark.slow
COUNTED = {"zqdxj-garage", "cqgc-garage", "lss-counted-lot"}


def simulate(settings: Any, *args: str, mqtt_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CITYPARK_DATABASE_URL=settings.database_url,
               CITYPARK_MQTT_TOPIC_ROOT=settings.mqtt_topic_root, CITYPARK_MQTT_URL=mqtt_url or settings.mqtt_url)
    return subprocess.run([sys.executable, "-c", "from app.cli import main; main()", "simulate", *args],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=60, check=True)


def parse(line: str) -> tuple[list[str], Any]:
    topic, payload = line.split("\t", 1)
    try:
        body = json.loads(payload)
    except ValueError:
        body = None
    return topic.split("/"), body


async def test_dry_run_traffic_looks_like_the_district(db_settings: Any) -> None:
    started = datetime.now(UTC)
    out = simulate(db_settings, "--dry-run", "--duration", "3", "--rate", "400", "--seed", "7", "--speed", "60",
                   "--as", "json")
    lines = out.stdout.splitlines()
    messages = [parse(line) for line in lines]
    kinds = Counter(t[-1] for t, _ in messages)
    assert kinds["occupancy"] > 2097
    assert kinds["heartbeat"] > 100
    assert {t[3] for t, _ in messages if t[-1] == "count"} == COUNTED
    assert all(t[0] == db_settings.mqtt_topic_root for t, _ in messages)
    sensors = {t[3] for t, b in messages if t[-1] == "occupancy" and isinstance(b, dict)}
    assert len({s for s in sensors if not s.startswith("unknown-")}) > 2080  # all but a few malformed
    states: dict[str, set[bool]] = {}
    for t, b in messages:
        if t[-1] == "occupancy" and isinstance(b, dict) and isinstance(b.get("occupied"), bool):
            states.setdefault(t[3], set()).add(b["occupied"])
    assert sum(len(v) == 2 for v in states.values()) > 20  # cars come and go
    backdated = [b for t, b in messages if t[-1] == "occupancy" and isinstance(b, dict)
                 and datetime.fromisoformat(b["observed_at"]) < started - timedelta(minutes=1)]
    assert backdated  # parked cars were there before the simulator started
    malformed = sum(1 for t, b in messages if b is None or t[3].startswith("unknown-")
                    or (t[-1] == "occupancy" and not isinstance(b.get("occupied"), bool)))
    duplicates = sum(n - 1 for n in Counter(lines).values() if n > 1)
    assert 0 < malformed < 0.02 * len(lines)
    assert 0 < duplicates < 0.03 * len(lines)


async def test_simulated_district_comes_alive_through_ingest(fresh_db: Any, broker: Any, ingest_factory: Any) -> None:
    settings = await fresh_db()
    ingest = ingest_factory(settings, broker.url)
    await poll(ingest.subscribed, timeout=20)
    simulate(settings, "--duration", "3", "--rate", "300", "--seed", "8", mqtt_url=broker.url)
    await poll(lambda: count_rows(settings, "SELECT count(*) >= 2000 FROM space_state WHERE occupied IS NOT NULL"),
               timeout=30)
    await poll(lambda: count_rows(settings, "SELECT count(*) FROM facility_counts WHERE free IS NOT NULL"), timeout=10)
    unexpected = await count_rows(settings, "SELECT count(*) FROM rejected_messages WHERE split_part(reason, ':', 1) "
                                  "NOT IN ('bad_json', 'invalid_field', 'unknown_sensor')")
    assert unexpected == 0
    # Heartbeats may sit in a batch still being written when the first count has landed.
    await poll(lambda: count_rows(settings, "SELECT count(*) > 30 FROM sensors WHERE rssi_dbm IS NOT NULL"),
               timeout=10)
    # the demo's LoRaWAN curb sensors came through ChirpStack: start-up frames, then their state
    await poll(lambda: count_rows(settings, "SELECT count(DISTINCT sensor_id) >= 110 FROM occupancy_events "
                                  "WHERE source = 'chirpstack'"), timeout=10)
    assert await count_rows(settings, "SELECT count(DISTINCT sensor_id) FROM sensor_resets") >= 110
    assert ingest.alive()
