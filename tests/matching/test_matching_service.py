"""Service pieces without a database: the batch plan and the fast path's query parsing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from app.api import free_spaces_fast
from app.services import matching as service
from app.services.matching_eligibility import Eligibility
from app.services.matching_runtime import Batcher
from app.settings import Settings

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


def test_fast_path_takes_only_plain_valid_queries() -> None:
    settings = Settings()
    plain = free_spaces_fast.parse("lat=41.1&lon=122.99&limit=5&ev=true", settings)
    assert plain == {"lat": 41.1, "lon": 122.99, "limit": 5, "radius_m": settings.default_radius_m,
                     "accessible": False, "ev": True}
    for odd in ("lat=91&lon=1", "lat=1", "lat=1&lon=1&format=geojson", "lat=1&lon=1&limit=0",
                "lat=1&lon=1&ev=yes", "lat=1&lon=1&x=2", "lat=nan&lon=1", "lat=1&lon=1&radius_m=0",
                f"lat=1&lon=1&radius_m={settings.max_radius_m + 1}", "lat=1&lat=2&lon=1"):
        assert free_spaces_fast.parse(odd, settings) is None, odd
    # the plain split and the standard parser (taken for escaped queries) read the same
    for raw, escaped in (("lat=41.1&lon=122.99&limit=5&ev=true", "lat=41%2E1&lon=122.99&limit=5&ev=tru%65"),
                         ("&lat=41.1&&lon=-1&", "lat=41.1&lon=%2D1")):
        assert free_spaces_fast.parse(raw, settings) == free_spaces_fast.parse(escaped, settings) is not None, raw
    assert free_spaces_fast.parse("lat=1&lon=1&ev=", settings) is free_spaces_fast.parse("lat=1&lon=1&ev=+", settings)


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
