"""Manager keys: made by an admin over HTTP or by ``citypark keys create --role manager``; they
read the management views and nothing else that needs a role (the full matrix:
tests/api/test_authz_matrix.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import app_client, make_committed_key

ROOT = Path(__file__).resolve().parents[2]


async def test_manager_keys_from_the_shell_and_over_http(fresh_db: Any) -> None:
    settings = await fresh_db()
    env = {**os.environ, "CITYPARK_DATABASE_URL": settings.database_url}
    out = subprocess.run([sys.executable, "-c", "from app.cli import main; main()", "keys", "create", "--role",
                          "manager"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    shell_key = {"Authorization": f"Bearer {out.stdout.split()[-1]}"}
    admin = await make_committed_key(settings, "admin")
    async with app_client(settings) as client:
        made = await client.post("/v1/admin/keys", headers=admin, json={"role": "manager"})
        assert made.status_code == 201, made.text
        http_key = {"Authorization": f"Bearer {made.json()['key']}"}
        for key in (shell_key, http_key):
            assert (await client.get("/v1/management/utilization", headers=key)).status_code == 200
            assert (await client.get("/v1/enforcement/violations", headers=key)).status_code == 403
            assert (await client.post("/v1/admin/keys", headers=key, json={"role": "manager"})).status_code == 403
        for role in ("driver", "enforcement"):
            other = await make_committed_key(settings, role)
            assert (await client.get("/v1/management/pricing", headers=other)).status_code == 403
