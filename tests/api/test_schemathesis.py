"""schemathesis against the app's own /openapi.json: no 5xx, and every response matches the
documented status codes, content types and schemas, and every 4xx/5xx is the contract's
``{"error", "detail"}``. ``CITYPARK_FUZZ_EXAMPLES`` examples per operation (50 by default, what
CI runs; set 1000 for a long local run); an admin key gets every operation past authorisation."""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import text

from app.api.main import create_app
from app.core.db import create_engine
from app.core.settings import Settings
from tests.conftest import make_committed_key

MAX_EXAMPLES = int(os.environ.get("CITYPARK_FUZZ_EXAMPLES", "50"))


def error_body(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx/5xx carries the contract's error body (NGSI-LD's ProblemDetails include it)."""
    if response.status_code < 400 or case.operation.method.upper() == "HEAD":
        return None
    body = response.json()
    assert isinstance(body, dict), f"{response.status_code} body is not an object: {response.text[:200]}"
    assert isinstance(body.get("error"), str), f"{response.status_code} without 'error': {response.text[:200]}"
    assert isinstance(body.get("detail"), str), f"{response.status_code} without 'detail': {response.text[:200]}"
    return True


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          error_body]
STREAMS = {"/v1/assignments/{assignment_id}/events"}  # endless for an admitted caller


@pytest.fixture(scope="module")
async def fuzz_target(fresh_db: Any) -> tuple[Settings, dict[str, str]]:
    settings: Settings = await fresh_db()
    engine = create_engine(settings, pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE space_state SET occupied = (random() < 0.5), observed_at = now(), "
                                "since = now(), last_seen = now()"))
    await engine.dispose()
    return settings, await make_committed_key(settings, "admin")


def test_openapi_conformance(fuzz_target: tuple[Settings, dict[str, str]]) -> None:
    db_settings, admin = fuzz_target
    app = create_app(db_settings)
    try:
        _fuzz(app, admin)
    finally:  # schemathesis keeps an app's lifespan running for the whole process unless told
        asgi.shutdown_lifespans()


def _fuzz(app: Any, admin: dict[str, str]) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    calls: dict[str, int] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:
        if operation.path in STREAMS:
            continue

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            label = f"{case.operation.method.upper()} {case.operation.path}"  # one path may have several methods
            calls[label] = calls.get(label, 0) + 1
            case.call_and_validate(headers=admin, checks=CHECKS)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # collect every operation's failures
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)
    assert sum(calls.values()) >= 3 * len(calls) >= 3 * (len(operations) - len(STREAMS) - 2)
