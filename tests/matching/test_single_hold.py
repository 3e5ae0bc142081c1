"""Issue 13 item 9: the single-row hold (``INSERT_SPACE_HOLD``, the path when the group-commit
writer could not start) re-checks that the space still reads free and fresh, like the batched
``INSERT_SPACE_HOLDS``: an occupied or a stale space is never held."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.assignments import service
from app.core.settings import Settings
from app.keys import service as keys_service
from tests.api.conftest import facility_spaces, set_spaces

REQUEST = service.AssignmentRequest(41.11, 122.99)


async def _driver(db: AsyncSession) -> keys_service.Principal:
    _, key = await keys_service.create_key(db, role="driver")
    await db.flush()
    return keys_service.Principal(key.id, "driver", None)


async def _options(db: AsyncSession, space_ids: list[str]) -> list[service.Option]:
    rows = await db.execute(text("SELECT id, facility_id, ST_Y(geom) AS lat, ST_X(geom) AS lon FROM spaces "
                                 "WHERE id = ANY(:ids)"), {"ids": space_ids})
    by_id = {r.id: service.Option(r.facility_id, r.id, r.lat, r.lon, 10.0) for r in rows}
    return [by_id[s] for s in space_ids]


async def _holds(db: AsyncSession, space_ids: list[str]) -> list[str]:
    rows = await db.execute(text("SELECT space_id FROM assignments WHERE space_id = ANY(:ids) AND status = 'held'"),
                            {"ids": space_ids})
    return sorted(rows.scalars())


async def test_an_occupied_or_stale_space_is_not_held(db: AsyncSession, db_settings: Settings) -> None:
    occupied, stale, never, free = (await facility_spaces(db, "s219-00"))[:4]
    driver = await _driver(db)
    await set_spaces(db, [occupied], occupied=True)
    await set_spaces(db, [stale], occupied=False, age_s=db_settings.stale_after_s + 60)
    await set_spaces(db, [never], occupied=None)
    await set_spaces(db, [free], occupied=False)
    refused = await service.place_hold(db, principal=driver, request=REQUEST,
                                       options=await _options(db, [occupied, stale, never]), settings=db_settings)
    assert refused is None
    assert await _holds(db, [occupied, stale, never]) == []
    created = await service.place_hold(db, principal=driver, request=REQUEST,
                                       options=await _options(db, [occupied, stale, free]), settings=db_settings)
    assert created is not None
    assert created["space_id"] == free  # the first option that still reads free and fresh
    assert created["facility_id"] == "s219-00"
    assert await _holds(db, [occupied, stale, never, free]) == [free]


async def test_a_space_held_by_someone_else_is_not_held_twice(db: AsyncSession, db_settings: Settings) -> None:
    space = (await facility_spaces(db, "s219-00"))[5]
    driver = await _driver(db)
    await set_spaces(db, [space], occupied=False)
    options = await _options(db, [space])
    first = await service.place_hold(db, principal=driver, request=REQUEST, options=options, settings=db_settings)
    second = await service.place_hold(db, principal=driver, request=REQUEST, options=options, settings=db_settings)
    assert first is not None
    assert second is None
