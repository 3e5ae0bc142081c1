"""Admins create and revoke keys over HTTP; `citypark keys revoke` does it from the shell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import app_client, make_committed_key

ROOT = Path(__file__).resolve().parents[2]


async def test_admin_creates_and_revokes_keys(client: httpx.AsyncClient, make_key) -> None:  # type: ignore[no-untyped-def]
    admin = await make_key("admin")
    new_key = {"role": "operator", "operator_id": "tiedong-city"}
    created = await client.post("/v1/admin/keys", headers=admin, json=new_key)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["role"], body["operator_id"]) == ("operator", "tiedong-city")
    assert body["key"].startswith(body["prefix"])
    key = {"Authorization": f"Bearer {body['key']}"}
    url = "/v1/operators/tiedong-city/facilities/s219-00/count"
    assert (await client.post(url, headers=key, json={})).status_code == 422  # authorised, bad body
    assert (await client.delete(f"/v1/admin/keys/{body['id']}", headers=admin)).status_code == 204
    refused = await client.post(url, headers=key, json={})
    assert refused.status_code == 401
    assert refused.json()["error"] == "unauthorized"
    assert (await client.delete(f"/v1/admin/keys/{body['id']}", headers=admin)).status_code == 404


async def test_admin_key_rules(client: httpx.AsyncClient, make_key) -> None:  # type: ignore[no-untyped-def]
    admin = await make_key("admin")
    for body, status in (({"role": "operator"}, 422), ({"role": "driver", "operator_id": "tiedong-city"}, 422),
                         ({"role": "operator", "operator_id": "nobody"}, 404), ({"role": "root"}, 422)):
        response = await client.post("/v1/admin/keys", headers=admin, json=body)
        assert response.status_code == status, (body, response.text)


async def test_cli_revokes_a_key_by_its_value(fresh_db) -> None:  # type: ignore[no-untyped-def]
    settings = await fresh_db()
    key = await make_committed_key(settings, "driver")
    plain = key["Authorization"].removeprefix("Bearer ")
    env = {**os.environ, "CITYPARK_DATABASE_URL": settings.database_url}
    out = subprocess.run([sys.executable, "-c", "from app.cli import main; main()", "keys", "revoke", plain],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("revoked ")
    async with app_client(settings) as client:
        response = await client.post("/v1/assignments", headers=key, json={"lat": 41.11, "lon": 122.99})
        assert response.status_code == 401
