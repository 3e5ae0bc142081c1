"""Rejections show up in the API's /metrics (counted from rejected_messages)."""

from __future__ import annotations

from typing import Any

from app.api.routes import ingest_metrics
from app.core.db import raw_connection
from app.occupancy import service as occ
from tests.conftest import app_client


async def test_api_metrics_count_rejections_by_reason(fresh_db: Any) -> None:
    settings = await fresh_db()
    async with raw_connection(settings) as conn, conn.transaction():
        await occ.write_batch(conn, [], rejections=[
            occ.Rejection("parking/a/sensors/x/occupancy", b"{", "bad_json: unexpected end"),
            occ.Rejection("parking/a/sensors/x/occupancy", b"{}", "bad_json: nope"),
            occ.Rejection("parking/a/sensors/y/occupancy", b"{}", "unknown_sensor: no sensor 'y'", source="http"),
        ])
    async with app_client(settings) as client:
        await ingest_metrics.refresh(client.app)  # type: ignore[attr-defined]
        text = (await client.get("/metrics")).text
    assert 'citypark_rejected_messages{reason="bad_json",source="mqtt"} 2.0' in text
    assert 'citypark_rejected_messages{reason="unknown_sensor",source="http"} 1.0' in text
