"""Fuzz every write endpoint (and one public read by id) with hostile input: never a 5xx, and
every error is the contract's ``{"error", "detail"}``. Bounded: a few dozen examples each."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from app.api.main import create_app
from app.core.settings import Settings
from tests.conftest import make_committed_key
from tests.fuzz import strategies as hostile

EXAMPLES = settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
async def target(fresh_db: Any) -> tuple[Settings, dict[str, dict[str, str]]]:
    db: Settings = await fresh_db(max_holds_per_driver=1000)
    keys = {"admin": await make_committed_key(db, "admin"), "driver": await make_committed_key(db, "driver"),
            "operator": await make_committed_key(db, "operator", "tiedong-city")}
    return db, keys


@pytest.fixture(scope="module")
def client(target: tuple[Settings, dict[str, dict[str, str]]]) -> Iterator[TestClient]:
    with TestClient(create_app(target[0]), raise_server_exceptions=False) as c:
        yield c


def check(response: Any) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body.get("error"), str), body
        assert isinstance(body.get("detail"), str), body


def send(client: TestClient, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return client.request(method, path, content=raw, headers={**headers, "Content-Type": "application/json"})


def test_inventory(client: TestClient, target: Any) -> None:
    @EXAMPLES
    @given(doc=hostile.inventories, operator=st.one_of(st.just("tiedong-city"), hostile.ids))
    def run(doc: Any, operator: str) -> None:
        check(send(client, "PUT", f"/v1/operators/{quote(operator, safe='')}/inventory", doc, target[1]["admin"]))

    run()


def test_rules(client: TestClient, target: Any) -> None:
    @EXAMPLES
    @given(rule=hostile.rules)
    def run(rule: Any) -> None:
        check(send(client, "POST", "/v1/admin/rules", rule, target[1]["admin"]))

    run()


def test_keys(client: TestClient, target: Any) -> None:
    @EXAMPLES
    @given(key=hostile.keys)
    def run(key: Any) -> None:
        check(send(client, "POST", "/v1/admin/keys", key, target[1]["admin"]))

    run()


def test_pushes(client: TestClient, target: Any) -> None:
    @EXAMPLES
    @given(sensor=hostile.ids, body=hostile.occupancy_bodies, count=hostile.count_bodies)
    def run(sensor: str, body: Any, count: Any) -> None:
        operator = target[1]["operator"]
        check(send(client, "POST", f"/v1/operators/tiedong-city/sensors/{quote(sensor, safe='')}/occupancy",
                   body, operator))
        check(send(client, "POST", f"/v1/operators/tiedong-city/facilities/{quote(sensor, safe='')}/count",
                   count, operator))

    run()


def test_assignments(client: TestClient, target: Any) -> None:
    @EXAMPLES
    @given(body=hostile.positions, where=st.one_of(st.just(None), hostile.ids))
    def run(body: Any, where: str | None) -> None:
        driver = target[1]["driver"]
        check(send(client, "POST", "/v1/assignments", body, driver))
        assignment = quote(where, safe="") if where else str(uuid.uuid4())
        check(send(client, "POST", f"/v1/assignments/{assignment}/position", body, driver))
        check(client.post(f"/v1/assignments/{assignment}/cancel", headers=driver))

    run()


def test_raw_bodies_and_paths(client: TestClient, target: Any) -> None:
    @EXAMPLES
    @given(raw=st.binary(max_size=200) | st.sampled_from([b'{"lat": 41.1\x00}', b'{"a": "\\u0000"}', b"\xff\xfe{}"]),
           fid=hostile.ids)
    def run(raw: bytes, fid: str) -> None:
        check(send(client, "POST", "/v1/admin/rules", raw, target[1]["admin"]))
        check(send(client, "PUT", "/v1/operators/tiedong-city/inventory", raw, target[1]["admin"]))
        check(client.get(f"/v1/facilities/{quote(fid, safe='')}/history"))
        check(client.get("/v1/facilities", params={"q": fid}))

    run()


def test_hot_routes_over_http(client: TestClient, target: Any) -> None:
    """The three hot routes with raw query strings, bodies and content types, as a client sends
    them (the input guard, the limits and the handler in front): never a 5xx, always the error body."""

    @EXAMPLES
    @given(query=hostile.query_strings, body=hostile.raw_bodies, content_type=hostile.content_types,
           chunked=st.booleans())
    def run(query: str, body: bytes, content_type: str, chunked: bool) -> None:
        raw_query = quote(query, safe="=&;%")  # the client's own escapes (%C2%B2, %00, a lone %) stay as sent
        check(client.get(f"/v1/spaces/free?{raw_query}"))
        check(client.get(f"/v1/facilities?{raw_query}"))
        kind = content_type.encode("utf-8", "replace").replace(b"\r", b"").replace(b"\n", b"")  # bytes, as on the wire
        headers: Any = {**target[1]["driver"], "Content-Type": kind}
        content: Any = iter([body[:7], body[7:]]) if chunked else body  # a generator: sent chunked
        check(client.post("/v1/assignments", content=content, headers=headers))

    run()
