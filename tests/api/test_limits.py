"""Rate limits (429 + Retry-After, per key or address, shared in Redis), body size limits (413), CORS."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY

from app.api.limits import Rate, SharedLimiter, parse_rate
from app.core.settings import Settings
from tests.conftest import app_client, make_committed_key
from tests.ingest.harness import free_port
from tests.scale.harness import redis_server


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


def test_storage_must_be_redis_or_memory() -> None:
    with pytest.raises(ValueError, match="CITYPARK_RATE_LIMIT_STORAGE"):
        SharedLimiter(Rate(1, 60), "mongodb://x", "p")


async def test_moving_window_in_memory() -> None:
    limiter = SharedLimiter(Rate(2, 60), "memory://", "p")
    assert [await limiter.hit("a") for _ in range(2)] == [0, 0]
    wait = await limiter.hit("a")
    assert 50 < wait <= 60  # the first of the two leaves the window in about a minute
    assert await limiter.hit("b") == 0  # clients have their own windows


def _unique_prefix() -> str:
    return f"citypark-test:{secrets.token_hex(6)}"


async def test_two_limiters_on_one_redis_share_the_limit() -> None:
    prefix = _unique_prefix()
    one, two = (SharedLimiter(Rate(3, 60), "redis://127.0.0.1:6379/0", prefix) for _ in range(2))
    results = [await (one if i % 2 else two).hit("addr:1.2.3.4") for i in range(6)]
    assert [r == 0 for r in results] == [True, True, True, False, False, False]
    assert one.shared
    assert two.shared


def _metric(name: str) -> float:
    value = REGISTRY.get_sample_value(name)
    assert value is not None
    return value


async def test_redis_down_falls_back_to_memory_and_comes_back(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    limiter = SharedLimiter(Rate(2, 60), f"redis://127.0.0.1:{port}/0", _unique_prefix())
    before = _metric("citypark_rate_limit_local_decisions_total")
    results = [await limiter.hit("addr:5.6.7.8") for _ in range(3)]
    assert [r == 0 for r in results] == [True, True, False]  # still limited, in this process
    assert not limiter.shared
    assert _metric("citypark_rate_limit_shared") == 0
    assert _metric("citypark_rate_limit_local_decisions_total") - before == 3
    assert "rate-limit store unreachable" in caplog.text
    async with redis_server(port, tmp_path):
        from tests.conftest import poll

        await poll(lambda: limiter.shared, timeout=15)
        assert await limiter.hit("addr:5.6.7.8") == 0  # counted afresh in Redis
        assert _metric("citypark_rate_limit_shared") == 1
    await limiter.close()


@pytest.fixture
async def limited(fresh_db) -> AsyncIterator[tuple[object, Settings]]:  # type: ignore[no-untyped-def]
    settings: Settings = await fresh_db(rate_limit="3/minute", max_body_bytes=2000, inventory_max_body_bytes=2000,
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
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    driver = await make_committed_key(settings, "driver")
    assert (await client.get("/v1/facilities", headers=driver)).status_code == 200  # another client
    assert (await client.get("/healthz")).status_code == 200  # operations endpoints are not limited


async def test_a_new_random_token_per_request_is_limited_by_address(limited) -> None:  # type: ignore[no-untyped-def]
    client, _ = limited
    statuses = []
    for _ in range(5):
        token = "cpk_" + secrets.token_urlsafe(32)  # shaped like a key, never issued
        statuses.append((await client.get("/v1/facilities", headers={"Authorization": f"Bearer {token}"})
                         ).status_code)
    assert [s == 429 for s in statuses] == [False, False, False, True, True]  # (public: 200 or 401)
    other = {"Authorization": "Bearer " + secrets.token_hex(40)}  # not even key-shaped
    assert (await client.get("/v1/facilities", headers=other)).status_code == 429


async def test_a_valid_key_is_its_own_client_whatever_the_address(limited) -> None:  # type: ignore[no-untyped-def]
    client, settings = limited
    driver = await make_committed_key(settings, "driver")
    for _ in range(3):
        assert (await client.get("/v1/facilities")).status_code == 200  # the address is used up
    statuses = [(await client.get("/v1/facilities", headers=driver)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


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


@pytest.mark.parametrize("path", ["/v1/facilities", "/ngsi-ld/v1/types", "/datex2/v3/parking-status"])
async def test_random_bearer_tokens_escape_no_limit_on_any_api(fresh_db, path: str) -> None:  # type: ignore[no-untyped-def]
    """Issue 13 item 9, as reported: 5 requests, a new random bearer token each, under 2/minute."""
    settings: Settings = await fresh_db(rate_limit="2/minute")
    async with app_client(settings) as client:
        tokens = [("cpk_" if i % 2 else "") + secrets.token_urlsafe(32) for i in range(5)]  # key-shaped or not
        responses = [await client.get(path, headers={"Authorization": f"Bearer {t}"}) for t in tokens]
        assert [r.status_code == 429 for r in responses] == [False, False, True, True, True], path
        assert responses[2].json()["error"] == "rate_limited"
        assert responses[2].json()["detail"]
        if path.startswith("/ngsi-ld/"):  # a ProblemDetails there as well
            assert responses[2].json()["status"] == 429
        assert (await client.get("/readyz")).status_code in {200, 503}  # operations stay unlimited


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(fresh_db) -> None:  # type: ignore[no-untyped-def]
    settings: Settings = await fresh_db(rate_limit="2/minute", forwarded_allow_ips="127.0.0.1")  # httpx's client
    async with app_client(settings) as client:
        one = [(await client.get("/v1/facilities", headers={"X-Forwarded-For": "203.0.113.5"})).status_code
               for _ in range(3)]
        other = await client.get("/v1/facilities", headers={"X-Forwarded-For": "198.51.100.7, 127.0.0.1"})
    assert one == [200, 200, 429]
    assert other.status_code == 200  # another client behind the same proxy


async def test_forwarded_addresses_are_ignored_unless_the_proxy_is_trusted(fresh_db) -> None:  # type: ignore[no-untyped-def]
    settings: Settings = await fresh_db(rate_limit="2/minute")
    async with app_client(settings) as client:
        statuses = [(await client.get("/v1/facilities", headers={"X-Forwarded-For": f"203.0.113.{i}"})).status_code
                    for i in range(3)]
    assert statuses == [200, 200, 429]  # a client cannot name a new address per request
