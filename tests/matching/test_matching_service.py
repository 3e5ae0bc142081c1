"""Service pieces without a database: the batch plan and the fast path's query parsing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from starlette.requests import Request

from app.api import hot
from app.api.routes.spaces import FreeSpacesQuery
from app.assignments import service
from app.assignments.eligibility import Eligibility
from app.assignments.runtime import Batcher
from app.core.errors import InvalidInput
from matching import CostModel

# Two drivers, two spaces 60 m apart on a line: A at the west end, B between.
A = service.AssignmentRequest(41.1000, 122.9900)
B = service.AssignmentRequest(41.1000, 122.9910, dest_lat=41.1000, dest_lon=122.9903)
WEST = service.Option("f", "west", 41.1000, 122.9901, 0.0)
EAST = service.Option("f", "east", 41.1000, 122.9908, 0.0)


def test_plan_solves_the_batch_jointly_and_keeps_others_picks_out() -> None:
    batch = service.Batch([A, B], [set(), set()])
    options = service.plan(batch, [[WEST, EAST], [WEST, EAST]], eligibility=Eligibility(),
                           now=datetime.now(UTC))
    assert [o.space_id for o in options[0]] == ["west"]
    assert [o.space_id for o in options[1]] == ["east"]


def test_plan_for_one_driver_ranks_by_cost() -> None:
    batch = service.Batch([B], [set()])
    options = service.plan(batch, [[EAST, WEST]], eligibility=Eligibility(), now=datetime.now(UTC))
    assert [o.space_id for o in options[0]] == ["west", "east"]


@pytest.mark.parametrize("seed", range(40))
def test_one_driver_priced_as_columns_ranks_as_the_engine_does(seed: int) -> None:
    """The one-driver path (no Space objects) orders and excludes exactly as CostModel.cost
    over :func:`service.to_space`: closing times, time limits, stays, accessible/EV needs."""
    rng = np.random.default_rng(seed)
    now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    facilities = [f"f{i}" for i in range(4)]
    el = Eligibility(closes_at={f: now + timedelta(minutes=float(rng.uniform(0, 300)))
                                for f in facilities if rng.random() < 0.5},
                     limit_min={f"s{j}": int(rng.choice([15, 60, 120])) for j in range(30) if rng.random() < 0.3})
    options = [service.Option(str(rng.choice(facilities)), f"s{j}", 41.1 + rng.normal(0, 0.003),
                              122.99 + rng.normal(0, 0.003), 0.0, bool(rng.random() < 0.2),
                              bool(rng.random() < 0.2)) for j in range(30)]
    request = service.AssignmentRequest(41.1 + rng.normal(0, 0.005), 122.99, 41.1, 122.99 + rng.normal(0, 0.002),
                                        accessible=bool(rng.random() < 0.3), ev=bool(rng.random() < 0.3),
                                        stay_minutes=float(rng.choice([30, 90, 240])) if rng.random() < 0.7 else None)
    ranked = service.plan(service.Batch([request], [set()]), [options], eligibility=el, now=now)[0]
    origin = (request.lat, request.lon)
    driver = service.to_driver("0", request, origin)
    model = CostModel()
    costs = [model.cost(driver, service.to_space(o, origin, el, now)) for o in options]
    expected = [options[j] for j in np.argsort(costs, kind="stable") if np.isfinite(costs[j])]
    assert [o.space_id for o in ranked] == [o.space_id for o in expected]


def _query(raw: str) -> FreeSpacesQuery:
    return hot.query(Request({"type": "http", "query_string": raw.encode(), "headers": []}), FreeSpacesQuery)


def test_free_spaces_query_is_parsed_strictly() -> None:
    plain = _query("lat=41.1&lon=122.99&limit=5&ev=true")
    assert (plain.lat, plain.lon, plain.limit, plain.radius_m, plain.accessible, plain.ev, plain.format) == (
        41.1, 122.99, 5, None, False, True, "json")
    for odd in ("lat=91&lon=1", "lat=1", "lat=1&lon=1&format=xml", "lat=1&lon=1&limit=0", "lat=1&lon=1&ev=maybe",
                "lat=nan&lon=1", "lat=inf&lon=1", "lat=1&lon=1&radius_m=0", "lat=1&lat=2&lon=1",
                "lat=1&lon=1&limit=%C2%B2", "lat=%D9%A4%D9%A1&lon=1", "lat=1&lon=1&limit=" + "9" * 5000):
        with pytest.raises(InvalidInput) as caught:
            _query(odd)
        assert caught.value.detail.startswith("query."), (odd, caught.value.detail)
    with pytest.raises(InvalidInput, match="query.lat: given more than once"):
        _query("lat=1&lon=1&lat=2")
    # escapes read as what they stand for; unknown parameters are ignored, as by every route
    assert _query("lat=41%2E1&lon=122.99&limit=5&ev=tru%65&x=1") == plain


async def test_batcher_solves_by_size_or_by_time() -> None:
    sizes: list[int] = []

    async def solve(batch: service.Batch, _conn: object) -> list[list[service.Option]]:
        sizes.append(len(batch.requests))
        return [[WEST] for _ in batch.requests]

    full = Batcher(window_s=3600, solve=solve, max_size=3)  # the window would never end in this test
    results = await asyncio.wait_for(asyncio.gather(*(full.propose(A, set()) for _ in range(3))), timeout=60)
    assert sizes == [3]
    assert results == [[WEST]] * 3
    short = Batcher(window_s=0.05, solve=solve, max_size=3)
    await asyncio.wait_for(asyncio.gather(*(short.propose(A, set()) for _ in range(2))), timeout=60)
    assert sizes == [3, 2]  # two requests: solved together when the window ended
