"""Forecasts from the database: as_of never leaks, fallbacks, the endpoints, far drivers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

from app.core.db import raw_connection
from app.forecast import cli as forecast_cli
from app.forecast import service, synthetic
from app.history import service as history
from tests.conftest import app_client
from tests.forecast.conftest import OPERATOR, START, load_history


async def forecast_at(settings: Any, as_of: Any, ids: list[str] | None = None) -> list[service.Forecast]:
    async with raw_connection(settings) as conn:
        return await service.forecast(conn, facility_ids=ids, as_of=as_of, horizons=(15, 30, 60, 120),
                                      country=settings.forecast_holidays)


async def test_as_of_never_sees_later_data(forecast_db: dict[str, Any], tmp_path: Path) -> None:
    settings = forecast_db["settings"]
    trained_until = START + timedelta(days=28)
    model_id, metrics, _ = await forecast_cli.train_once(settings, until=trained_until, days=28,
                                                        max_samples=60_000, fast=True)
    assert model_id is not None
    assert metrics["facilities"] == 12
    as_of = START + timedelta(days=29, hours=3, minutes=7)
    lots = [f"fc-{i:04d}" for i in range(12)]
    before = await forecast_at(settings, as_of, lots)
    assert {f.model for f in before} == {"gradient_boosting"}
    # later data, wildly different (every lot full), and a newer model trained on it
    hist = synthetic.generate(12, 5, start=as_of + timedelta(seconds=1), seed=3, prefix="fc", closures=False)
    hist.free[:] = 0
    path = tmp_path / "later.csv"
    synthetic.write_counts_csv(hist, path)
    async with raw_connection(settings) as conn, conn.transaction():
        assert (await history.import_history(conn, path, operator_id=OPERATOR)).inserted > 0
    later_model, _, _ = await forecast_cli.train_once(settings, until=as_of + timedelta(days=5), days=30,
                                                      max_samples=60_000, fast=True)
    assert later_model is not None
    assert later_model != model_id
    after = await forecast_at(settings, as_of, lots)
    assert [f.as_json() for f in after] == [f.as_json() for f in before]
    moved = await forecast_at(settings, as_of + timedelta(days=2), lots)
    # the later data is read by a later as_of: full lots now, fewer spaces in 15 minutes
    assert sum(f.free[0] or 0 for f in moved) < 0.8 * sum(f.free[0] or 0 for f in before)


async def test_little_history_falls_back(forecast_db: dict[str, Any], tmp_path: Path) -> None:
    settings = forecast_db["settings"]
    end = forecast_db["end"]
    hist = synthetic.generate(2, 4, start=end - timedelta(days=4), seed=5, prefix="new", closures=False)
    hist.free[1, :-2] = np.nan  # the second lot has two counts
    await load_history(settings, hist, tmp_path / "new.csv")
    got = {f.facility_id: f for f in await forecast_at(settings, end, ["new-0000", "new-0001"])}
    profile, persist = got["new-0000"], got["new-0001"]
    assert profile.model == "weekly_profile"
    assert persist.model == "persistence"
    for p in profile.as_json()["points"]:
        assert 0 <= p["free_p10"] <= p["free"] <= p["free_p90"] <= profile.total
        assert 0 <= p["p_any_free"] <= 1
    assert persist.free[0] == round(float(hist.free[1, -1]), 1)


async def test_the_endpoints(forecast_db: dict[str, Any]) -> None:
    settings = forecast_db["settings"]
    as_of = (START + timedelta(days=30)).isoformat()
    async with app_client(settings) as client:
        r = await client.get("/v1/facilities/fc-0001/forecast", params={"horizons": "15,45", "as_of": as_of})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["facility_id"] == "fc-0001"
        assert body["model"] == "gradient_boosting"
        assert [p["horizon_min"] for p in body["points"]] == [15, 45]
        assert body["trained_at"].endswith("Z")
        assert body["points"][0]["at"] == (START + timedelta(days=30, minutes=15)).isoformat().replace("+00:00", "Z")
        for params, status in (({"horizons": "15,x"}, 422), ({"horizons": "999"}, 422),
                               ({"as_of": "2026-10-01T00:00:00"}, 422)):
            assert (await client.get("/v1/facilities/fc-0001/forecast", params=params)).status_code == status
        assert (await client.get("/v1/facilities/nope/forecast")).json()["error"] == "not_found"
        async with raw_connection(settings) as conn:
            board = await service.build_board(conn, now=START + timedelta(days=30), country="CN")
        client.app.state.forecast_board = board  # type: ignore[attr-defined]
        lat, lon = float(board.lat[0]), float(board.lon[0])
        r = await client.get("/v1/forecast/near", params={"lat": lat, "lon": lon, "radius_m": 5000,
                                                          "eta_min": 30, "limit": 5})
        assert r.status_code == 200
        assert int(r.headers["X-Total-Count"]) > 5
        first = r.json()
        assert len(first) == 5
        assert 'rel="next"' in r.headers["Link"]
        keys = [(-(x["p_any_free"] if x["p_any_free"] is not None else -1), x["distance_m"]) for x in first]
        assert keys == sorted(keys)
        seen = [x["id"] for x in first]
        url = r.headers["Link"].split(">")[0].lstrip("<")
        while url:
            r = await client.get(url)
            seen += [x["id"] for x in r.json()]
            url = r.headers.get("Link", "").split(">")[0].lstrip("<")
        total = int(r.headers["X-Total-Count"])
        assert len(seen) == len(set(seen)) == total


def test_a_far_driver_is_sent_where_a_space_is_likeliest() -> None:
    from app.assignments.service import AssignmentRequest

    ids = ["near-full", "far-free", "mid"]
    lat = np.array([41.1000, 41.1060, 41.1030])
    lon = np.array([123.0000, 123.0000, 123.0000])
    p = np.array([[0.1] * 16, [0.95] * 16, [0.93] * 16])
    board = service.Board(START, {}, ids, ids, lat, lon, p, p * 10)
    far = AssignmentRequest(41.2, 123.0, 41.1, 123.0, radius_m=1000)  # 11 km away: ~28 min
    assert service.goal_for_far_driver(far, board) == (41.1030, 123.0)  # within 5 points of the best, nearer
    close = AssignmentRequest(41.101, 123.0, 41.1, 123.0, radius_m=1000)
    assert service.goal_for_far_driver(close, board) is None
    said = AssignmentRequest(41.101, 123.0, 41.1, 123.0, radius_m=1000, eta_min=40)
    assert service.goal_for_far_driver(said, board) == (41.1030, 123.0)
    assert service.goal_for_far_driver(AssignmentRequest(41.2, 123.0, radius_m=1000), board) is None


async def test_assignments_accept_eta_min(forecast_db: dict[str, Any]) -> None:
    from tests.conftest import make_committed_key

    settings = forecast_db["settings"]
    key = await make_committed_key(settings, "driver")
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        lat, lon = await conn.fetchrow("SELECT ST_Y(geom), ST_X(geom) FROM spaces LIMIT 1")
    finally:
        await conn.close()
    async with app_client(settings) as client:
        r = await client.post("/v1/assignments", headers=key,
                              json={"lat": lat, "lon": lon, "dest_lat": lat, "dest_lon": lon, "eta_min": 30})
        assert r.status_code in (201, 409), r.text
        bad = await client.post("/v1/assignments", headers=key, json={"lat": lat, "lon": lon, "eta_min": -1})
        assert bad.status_code == 422
