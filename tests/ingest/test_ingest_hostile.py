"""10,000 malformed or hostile messages among good ones: each is rejected with a reason and
kept in rejected_messages, the good events are stored exactly once, the worker keeps running."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from tests.conftest import poll
from tests.ingest.harness import Publisher, assert_history_and_state, count_rows, make_truth, sensors_of

pytestmark = pytest.mark.slow
N_HOSTILE = 10_000


def hostile(root: str, n: int) -> tuple[str, bytes, str]:
    """The n-th hostile message and the reason it must be rejected for; ``"n": n`` marks it."""
    t = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    ok = t.isoformat()
    occ = f"{root}/tiedong-city/sensors/bay-000001/occupancy"
    count = f"{root}/zhanqian-underground/facilities/zqdxj-garage/count"
    cases: list[tuple[str, Any, str]] = [
        (occ, f'{{"n": {n}, "occupied": tru', "bad_json"),
        (occ, f'["n": {n}]', "bad_json"),
        (occ, f'[{{"n": {n}}}]', "bad_json"),
        (occ, {"n": n, "occupied": "yes", "observed_at": ok}, "invalid_field"),
        (occ, {"n": n, "occupied": True, "observed_at": 1764403200}, "invalid_field"),
        (occ, {"n": n, "occupied": True, "observed_at": ok, "seq": "1"}, "invalid_field"),
        (occ, {"n": n, "occupied": True, "observed_at": ok, "pad": "x" * 6000}, "payload_too_large"),
        (f"{root}/tiedong-city/sensors/ghost-{n}/occupancy", {"n": n, "occupied": True, "observed_at": ok},
         "unknown_sensor"),
        (f"{root}/shared-parking/sensors/bay-000001/occupancy", {"n": n, "occupied": True, "observed_at": ok},
         "wrong_operator"),
        (occ, {"n": n, "occupied": True, "observed_at": (t + timedelta(days=2)).isoformat()}, "timestamp_in_future"),
        (occ, {"n": n, "occupied": True, "observed_at": "1999-12-31T23:59:59+08:00"}, "timestamp_before_2000"),
        (occ, {"n": n, "occupied": True, "observed_at": "2026-13-45T99:00:00Z"}, "bad_timestamp"),
        (count, {"n": n, "free": -3, "observed_at": ok}, "free_negative"),
        (count, {"n": n, "free": 421, "observed_at": ok}, "free_above_capacity"),
        (f"{root}/zhanqian-underground/facilities/nowhere/count", {"n": n, "free": 1, "observed_at": ok},
         "unknown_facility"),
        (f"{root}/tiedong-city/sensors/bay-000001/explode", {"n": n, "observed_at": ok}, "bad_topic"),
        (occ, f'{{"n": {n}, "x": "\\u0000", "occupied": null}}', "invalid_field"),  # JSON escapes
        (occ, f'{{"n": {n}, "x": "\u0000"}}', "bad_json"),  # a raw control character
        (occ, f'{{"n": {n}}}'.encode() + b"\xff\xfe\x00", "bad_json"),
    ]
    topic, body, reason = cases[n % len(cases)]
    payload = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
    return topic, payload, reason


async def test_ten_thousand_hostile_messages(fresh_db: Any, broker: Any, ingest_factory: Any) -> None:
    settings = await fresh_db()
    ingest = ingest_factory(settings, broker.url)
    await poll(ingest.subscribed, timeout=20)
    root = settings.mqtt_topic_root
    bad = [hostile(root, n) for n in range(N_HOSTILE)]
    truth = make_truth(settings, await sensors_of(settings, 100), 10, seed=6)
    stream = [(t, p) for t, p, _ in bad] + truth.messages
    random.Random(6).shuffle(stream)
    publisher = Publisher(broker.url)
    publisher.publish(stream)
    publisher.close()
    await poll(lambda: _rejected_at_least(settings, N_HOSTILE), timeout=60)
    await assert_history_and_state(settings, truth)
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        rows = await conn.fetch("SELECT payload, reason FROM rejected_messages")
    finally:
        await conn.close()
    got = {int(m.group(1)): r["reason"].split(":")[0] for r in rows
           if (m := re.search(r'"n": (\d+)', r["payload"]))}
    want = {n: reason for n, (_, _, reason) in enumerate(bad)}
    assert len(rows) == N_HOSTILE
    assert got == want
    assert Counter(want.values())["payload_too_large"] > 500
    assert ingest.alive()


async def _rejected_at_least(settings: Any, n: int) -> bool:
    return await count_rows(settings, "SELECT count(*) FROM rejected_messages") >= n
