"""Rate limits (429 + Retry-After, per key or address), body size limits (413), CORS."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.api.limits import Rate, TokenBuckets, parse_rate
from app.core.settings import Settings
from tests.conftest import app_client, make_committed_key


@pytest.mark.parametrize(("text", "expected"), [
    ("120/minute", Rate(120, 60)), ("10/s", Rate(10, 1)), ("1000/hour", Rate(1000, 3600)),
    ("50/10s", Rate(50, 10)), ("5 / min", Rate(5, 60)), ("0", None), ("off", None),
])
def test_parse_rate(text: str, expected: Rate | None) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["120", "x/minute", "-1/minute", "0/minute", "10/fortnight"])
def test_parse_rate_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="CITYPARK_RATE_LIMIT"):
        parse_rate(text)


def test_token_bucket_refills_at_the_rate() -> None:
    buckets = TokenBuckets(Rate(2, 60))
    assert buckets.take("a", now=0.0) == 0
    assert buckets.take("a", now=0.0) == 0
    assert buckets.take("a", now=0.0) == pytest.approx(30.0)  # one token per 30 s
    assert buckets.take("b", now=0.0) == 0  # clients have their own buckets
    assert buckets.take("a", now=29.0) == pytest.approx(1.0)
    assert buckets.take("a", now=31.0) == 0


def test_token_buckets_forget_the_oldest_clients() -> None:
    buckets = TokenBuckets(Rate(1, 60), max_clients=3)
    for key in "abcd":
        buckets.take(key, now=0.0)
    assert list(buckets.buckets) == ["b", "c", "d"]


@pytest.fixture
async def limited(fresh_db) -> AsyncIterator[tuple[object, Settings]]:  # type: ignore[no-untyped-def]
    settings: Settings = await fresh_db(rate_limit="3/minute", max_body_bytes=2000,
                                        cors_origins=["https://app.example"])
    async with app_client(settings) as client:
        yield client, settings


async def test_public_reads_are_rate_limited_per_client(limited) -> None:  # type: ignore[no-untyped-def]
    client, settings = limited
    for _ in range(3):
        assert (await client.get("/v1/facilities")).status_code == 200
    response = await client.get("/v1/facilities", headers={"Origin": "https://app.example"})
    assert response.status_code == 429
    assert response.json()["error"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 20
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    driver = await make_committed_key(settings, "driver")
    assert (await client.get("/v1/facilities", headers=driver)).status_code == 200  # another client
    assert (await client.get("/healthz")).status_code == 200  # operations endpoints are not limited


async def test_pushes_are_rate_limited_per_key(limited) -> None:  # type: ignore[no-untyped-def]
    client, settings = limited
    key = await make_committed_key(settings, "operator", "zhanqian-underground")
    url = "/v1/operators/zhanqian-underground/facilities/cqgc-garage/count"
    statuses = [(await client.post(url, headers=key, json={"free": 10, "observed_at": f"2026-11-29T08:0{i}:00+08:00"})
                 ).status_code for i in range(4)]
    assert statuses == [202, 202, 202, 429]


async def test_body_size_limit(limited) -> None:  # type: ignore[no-untyped-def]
    client, settings = limited
    key = await make_committed_key(settings, "operator", "tiedong-city")
    url = "/v1/operators/tiedong-city/inventory"
    big = b'{"type": "FeatureCollection", "features": [' + b" " * 3000 + b"]}"
    response = await client.put(url, headers=key, content=big)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(4):
            yield b" " * 1000

    response = await client.put(url, headers=key, content=chunks())
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


async def test_rate_limit_zero_turns_it_off(client) -> None:  # type: ignore[no-untyped-def]
    statuses = {(await client.get("/v1/facilities", params={"limit": 1})).status_code for _ in range(30)}
    assert statuses == {200}
