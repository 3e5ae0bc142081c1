"""The authorisation matrix: every endpoint of the app × every kind of caller → expected status.

The endpoint list comes from the app's own OpenAPI description, so an endpoint added without
a row in ``WHO`` fails this test. ``WHO`` follows the "who" column of CONTRACT.md:

- ``public``: anyone (a bad key may be refused with 401, never 403);
- ``driver``: driver keys (and admin);
- ``owner``: the driver who created the assignment; another driver gets 404;
- ``operator``: the operator of ``{operator_id}``; another operator's key gets 403;
- ``enforcement`` / ``admin``: those roles only;
- ``manager``: manager keys (and admin) — the management endpoints; a manager key may read
  nothing else that needs a role and write nothing at all.

No key, an unknown key and a revoked key get 401 on every non-public endpoint. "Admitted"
means the request got past authorisation: any status but 401/403, and never a 5xx.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import create_engine
from app.core.settings import Settings
from app.keys import service as keys_service
from tests.conftest import app_client, make_committed_key

WHO: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "public",
    ("GET", "/readyz"): "public",
    ("GET", "/metrics"): "public",
    ("GET", "/v1/facilities"): "public",
    ("GET", "/v1/facilities/{facility_id}"): "public",
    ("GET", "/v1/facilities/{facility_id}/history"): "public",
    ("GET", "/v1/facilities/{facility_id}/forecast"): "public",
    ("GET", "/v1/forecast/near"): "public",
    ("GET", "/v1/spaces/free"): "public",
    ("POST", "/v1/assignments"): "driver",
    ("GET", "/v1/assignments/{assignment_id}"): "owner",
    ("POST", "/v1/assignments/{assignment_id}/cancel"): "owner",
    ("POST", "/v1/assignments/{assignment_id}/position"): "owner",
    ("GET", "/v1/assignments/{assignment_id}/events"): "owner",
    ("POST", "/v1/operators/{operator_id}/sensors/{sensor_id}/occupancy"): "operator",
    ("POST", "/v1/operators/{operator_id}/facilities/{facility_id}/count"): "operator",
    ("PUT", "/v1/operators/{operator_id}/inventory"): "operator",
    ("POST", "/v1/operators/{operator_id}/facilities/{facility_id}/passages"): "operator",
    ("GET", "/v1/facilities/{facility_id}/sensors"): "public",
    ("GET", "/v1/enforcement/violations"): "enforcement",
    ("GET", "/v1/enforcement/violations.csv"): "enforcement",
    ("GET", "/v1/enforcement/hotspots"): "enforcement",
    ("GET", "/v1/enforcement/patrol"): "enforcement",
    ("POST", "/v1/admin/keys"): "admin",
    ("DELETE", "/v1/admin/keys/{key_id}"): "admin",
    ("GET", "/v1/admin/rules"): "admin",
    ("POST", "/v1/admin/rules"): "admin",
    ("GET", "/v1/admin/rules/{rule_id}"): "admin",
    ("DELETE", "/v1/admin/rules/{rule_id}"): "admin",
    # standards (issue 15): NGSI-LD reads and DATEX II are public; any operator (or admin) subscribes
    ("GET", "/ngsi-ld/v1/entities"): "public",
    ("GET", "/ngsi-ld/v1/entities/{entity_id}"): "public",
    ("GET", "/ngsi-ld/v1/types"): "public",
    ("GET", "/ngsi-ld/v1/types/{type_name}"): "public",
    ("GET", "/ngsi-ld/contexts/{name}"): "public",
    ("POST", "/ngsi-ld/v1/subscriptions"): "any_operator",
    ("GET", "/ngsi-ld/v1/subscriptions"): "any_operator",
    ("GET", "/ngsi-ld/v1/subscriptions/{subscription_id}"): "any_operator",
    ("DELETE", "/ngsi-ld/v1/subscriptions/{subscription_id}"): "any_operator",
    ("GET", "/datex2/v3/parking-table"): "public",
    ("GET", "/datex2/v3/parking-status"): "public",
    # management (issue 16): read-only, city-wide, manager keys (and admin)
    ("GET", "/v1/management/utilization"): "manager",
    ("GET", "/v1/management/sharing"): "manager",
    ("GET", "/v1/management/pricing"): "manager",
    ("GET", "/v1/management/pressure"): "manager",
    ("GET", "/v1/management/facilities/{facility_id}/heat"): "manager",
}
# Endpoints of CONTRACT.md: they must exist (the others in WHO are additions).
CONTRACT = {k for k in WHO if not k[1].startswith("/v1/admin") and not k[1].endswith((".csv", "/heat"))}
CALLERS = ("anonymous", "wrong", "revoked", "driver", "other_driver", "operator", "other_operator",
           "enforcement", "manager", "admin")
ADMITTED = "admitted"
PUBLIC = "public"
ALLOWED = {
    "driver": {"driver", "other_driver", "admin"},
    "owner": {"driver", "admin"},
    "operator": {"operator", "admin"},
    "any_operator": {"operator", "other_operator", "admin"},
    "enforcement": {"enforcement", "admin"},
    "manager": {"manager", "admin"},
    "admin": {"admin"},
}


def expected(who: str, caller: str) -> Any:
    if who == "public":
        return PUBLIC
    if caller in ("anonymous", "wrong", "revoked"):
        return 401
    if caller in ALLOWED[who]:
        return ADMITTED
    if who == "owner" and caller == "other_driver":
        return 404
    return 403


def test_expectations_are_those_of_the_contract() -> None:
    assert expected("owner", "other_driver") == 404
    assert expected("operator", "other_operator") == 403
    assert expected("enforcement", "driver") == 403
    assert expected("admin", "operator") == 403
    assert expected("manager", "enforcement") == 403
    assert expected("enforcement", "manager") == 403
    assert expected("manager", "manager") == ADMITTED
    assert {expected("driver", c) for c in ("anonymous", "wrong", "revoked")} == {401}


@dataclass
class World:
    settings: Settings
    headers: dict[str, dict[str, str]]
    path_values: dict[str, str]


async def _sql(settings: Settings, statement: str) -> Any:
    engine = create_engine(settings, pool_size=1)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(statement))
            return result.scalar() if result.returns_rows else None
    finally:
        await engine.dispose()


async def _revoked_key(settings: Settings) -> tuple[dict[str, str], str]:
    """A revoked driver key, and the id of another (live) key for the admin to revoke."""
    engine = create_engine(settings, pool_size=1)
    try:
        async with AsyncSession(engine) as session, session.begin():
            plain, row = await keys_service.create_key(session, role="driver")
            await keys_service.revoke_key(session, key_id=row.id)
            _, target = await keys_service.create_key(session, role="driver")
            return {"Authorization": f"Bearer {plain}"}, str(target.id)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
async def world(fresh_db: Any) -> World:
    settings: Settings = await fresh_db()
    # every space known free, so that a driver can be assigned one
    await _sql(settings, "UPDATE space_state SET occupied = false, observed_at = now(), since = now(), "
                         "last_seen = now()")
    headers = {
        "anonymous": {}, "wrong": {"Authorization": "Bearer cpk_" + "x" * 43},
        "driver": await make_committed_key(settings, "driver"),
        "other_driver": await make_committed_key(settings, "driver"),
        "operator": await make_committed_key(settings, "operator", "tiedong-city"),
        "other_operator": await make_committed_key(settings, "operator", "shared-parking"),
        "enforcement": await make_committed_key(settings, "enforcement"),
        "manager": await make_committed_key(settings, "manager"),
        "admin": await make_committed_key(settings, "admin"),
    }
    headers["revoked"], key_id = await _revoked_key(settings)
    sensor = await _sql(settings, "SELECT id FROM sensors WHERE operator_id = 'tiedong-city' ORDER BY id LIMIT 1")
    rule = await _sql(settings, "SELECT min(id) FROM parking_rules")
    values = {"operator_id": "tiedong-city", "sensor_id": sensor, "facility_id": "s219-00",
              "key_id": key_id, "rule_id": str(rule), "assignment_id": str(uuid.uuid4()),
              "entity_id": "urn:ngsi-ld:ParkingSpot:none", "type_name": "ParkingSpot", "name": "citypark.jsonld",
              "subscription_id": "urn:ngsi-ld:Subscription:none"}
    return World(settings, headers, values)


@pytest.fixture(scope="module")
async def api(world: World) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(world.settings) as client:
        created = await client.post("/v1/assignments", headers=world.headers["driver"],
                                    json={"lat": 41.112, "lon": 122.997})
        assert created.status_code == 201, created.text
        world.path_values["assignment_id"] = created.json()["id"]
        yield client


def operations(client: httpx.AsyncClient) -> list[tuple[str, str]]:
    schema = client.app.openapi()  # type: ignore[attr-defined]
    return sorted((method.upper(), path) for path, item in schema["paths"].items()
                  for method in item if method in {"get", "post", "put", "patch", "delete"})


def body_for(method: str, path: str) -> Any:
    now = datetime.now(UTC).isoformat()
    ring = [[122.99, 41.13], [122.991, 41.13], [122.991, 41.131], [122.99, 41.131], [122.99, 41.13]]
    bodies = {
        "/v1/assignments": {"lat": 41.112, "lon": 122.997},
        "/position": {"lat": 41.112, "lon": 122.997},
        "/occupancy": {"occupied": True, "observed_at": now},
        "/count": {"free": 3, "observed_at": now},
        "/inventory": {"type": "FeatureCollection", "features": [
            {"type": "Feature", "id": "matrix-lot", "geometry": {"type": "Polygon", "coordinates": [ring]},
             "properties": {"feature": "facility", "name": "matrix", "kind": "lot", "capacity": 1}}]},
        "/v1/admin/keys": {"role": "driver"},
        "/v1/admin/rules": {"facility_id": "s219-00", "max_stay_minutes": 60, "from": "08:00", "to": "20:00"},
    }
    if method in ("GET", "DELETE"):
        return None
    return next((b for suffix, b in bodies.items() if path.endswith(suffix)), None)


async def call(client: httpx.AsyncClient, world: World, method: str, path: str, caller: str) -> httpx.Response:
    url = path.format(**world.path_values)
    params = {"lat": 41.112, "lon": 122.997} if method == "GET" else None
    request = client.request(method, url, params=params, json=body_for(method, path), headers=world.headers[caller])
    return await asyncio.wait_for(request, timeout=15)


def test_every_endpoint_has_a_row(api: httpx.AsyncClient) -> None:
    present = set(operations(api))
    assert not present - set(WHO), f"endpoints without a row in WHO: {sorted(present - set(WHO))}"
    assert not CONTRACT - present, f"endpoints of CONTRACT.md missing from the app: {sorted(CONTRACT - present)}"


@pytest.mark.parametrize("caller", CALLERS)
async def test_matrix(api: httpx.AsyncClient, world: World, caller: str) -> None:
    failures = []
    for method, path in operations(api):
        want = expected(WHO.get((method, path), "admin"), caller)
        if path.endswith("/events") and want == ADMITTED:
            continue  # an admitted caller gets an endless stream; its denials are checked
        try:
            response = await call(api, world, method, path, caller)
        except Exception as exc:  # the app raised (a 500 in production): record it, go on
            failures.append(f"{method} {path} as {caller}: raised {type(exc).__name__}: {str(exc)[:200]}")
            continue
        if not _matches(want, caller, response.status_code):
            failures.append(f"{method} {path} as {caller}: {response.status_code}, expected {want}: "
                            f"{response.text[:200]}")
        elif response.status_code in (401, 403, 404) and want != PUBLIC:
            if path.startswith("/ngsi-ld/"):  # RFC 7807 ProblemDetails, with citypark's two fields
                assert {"type", "title", "error", "detail"} <= set(response.json())
            else:
                assert set(response.json()) == {"error", "detail"}
    assert not failures, "\n".join(failures)


def _matches(want: Any, caller: str, status: int) -> bool:
    if status >= 500:
        return False
    if want == PUBLIC:
        return status != 403 and (status != 401 or caller in ("wrong", "revoked"))
    if want == ADMITTED:
        return status not in (401, 403)
    return bool(status == want)


async def test_a_manager_writes_nothing(api: httpx.AsyncClient, world: World) -> None:
    """Every endpoint that changes something refuses a manager key (403), whatever its row says."""
    writes = [(m, p) for m, p in operations(api) if m != "GET"]
    assert writes
    for method, path in writes:
        response = await call(api, world, method, path, "manager")
        assert response.status_code == 403, f"{method} {path}: {response.status_code}"
