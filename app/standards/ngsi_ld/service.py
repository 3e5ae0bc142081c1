"""Answering ``GET /ngsi-ld/v1/entities``: types in a fixed order (OffStreetParking,
OnStreetParking, ParkingGroup, ParkingSpot), each by id (by distance for ``near``), the
filters (id, idPattern, geo in PostGIS, then ``q``), then one ``offset``/``limit`` window over
that concatenation, so following the pages sees every entity exactly once."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.assignments.free_index import FreeIndex
from app.core.settings import Settings
from app.standards.ngsi_ld import entities, query, spot_index
from app.standards.ngsi_ld.entities import TYPES, Filters, Row
from app.standards.ngsi_ld.errors import BadRequestData, ResourceNotFound
from app.standards.ngsi_ld.geo import GeoQuery

MAX_LIMIT = 1000
DEFAULT_LIMIT = 20
FACILITY_TYPES = ("OffStreetParking", "OnStreetParking")
TYPE_PREFIXES = ("https://smartdatamodels.org/dataModel.Parking/",)


@dataclass(frozen=True)
class EntityQuery:
    types: tuple[str, ...] = TYPES
    filters: Filters = field(default_factory=Filters)
    q: query.Query | None = None
    attrs: frozenset[str] | None = None
    offset: int = 0
    limit: int = DEFAULT_LIMIT
    count: bool = False


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    total: int | None
    more: bool


def parse_types(raw: str | None) -> tuple[str, ...]:
    """``type`` (comma-separated, short or expanded names; ``|`` too) in the fixed order."""
    if raw is None:
        return TYPES
    asked = set()
    for name in re.split(r"[,|]", raw):
        name = name.strip()
        for prefix in TYPE_PREFIXES:
            name = name.removeprefix(prefix)
        if not name:
            raise BadRequestData("type: empty type name")
        asked.add(name)
    return tuple(t for t in TYPES if t in asked)


def parse_ids(raw: str | None) -> frozenset[str] | None:
    if raw is None:
        return None
    ids = frozenset(i.strip() for i in raw.split(",") if i.strip())
    for entity_id in ids:
        if ":" not in entity_id:
            raise BadRequestData(f"id: {entity_id!r} is not a URI")
    return ids


def parse_pattern(raw: str | None) -> str | None:
    if raw is None:
        return None
    try:
        re.compile(raw)
    except re.error as exc:
        raise BadRequestData(f"idPattern: {exc}") from None
    return raw


def parse_window(offset: str | None, limit: str | None) -> tuple[int, int]:
    try:
        off = int(offset) if offset is not None else 0
        lim = int(limit) if limit is not None else DEFAULT_LIMIT
    except ValueError:
        raise BadRequestData("offset and limit are whole numbers") from None
    if off < 0 or lim < 0:
        raise BadRequestData("offset and limit may not be negative")
    if lim > MAX_LIMIT:
        raise BadRequestData(f"limit may be at most {MAX_LIMIT}")
    return off, lim


def from_index(request: EntityQuery, index: FreeIndex | None) -> bool:
    """Whether ``request`` asks only for spots and ``index`` can answer it (no database needed)."""
    return request.types == ("ParkingSpot",) and index is not None and spot_index.usable(index)


def find_in_index(request: EntityQuery, index: FreeIndex) -> Page:
    """:func:`find` of a spots-only request, from ``index`` (see :func:`from_index`)."""
    answer = spot_index.spots(index, filters=request.filters, q=request.q, offset=request.offset,
                              limit=request.limit, count=request.count)
    return Page(answer.rows, answer.total, answer.more)


async def find(session: AsyncSession, *, settings: Settings, request: EntityQuery,
               index: FreeIndex | None = None) -> Page:
    """The window of matching entities, whether more follow, and the total when counted.

    With a loaded ``index`` (the process's free-space index) spots come from memory
    (``spot_index``, the same answer), else from PostGIS."""
    now = datetime.now(UTC)
    skip, room, total, more, out = request.offset, request.limit, 0, False, []
    for entity_type in request.types:
        if entity_type == "ParkingSpot" and index is not None and spot_index.usable(index):
            answer = spot_index.spots(index, filters=request.filters, q=request.q, offset=skip, limit=room,
                                      count=request.count)
            out += answer.rows
            more = more or answer.more
            total += answer.total or 0
            continue
        if entity_type == "ParkingSpot" and (request.q is None or entities.spot_q(request.q)):
            filters = replace(request.filters, spot_q=request.q)
            page = await entities.spots(session, settings=settings, filters=filters, offset=skip, limit=room)
            out += page.rows
            more = more or page.more
            if request.count:
                total += await entities.count_spots(session, settings=settings, filters=filters)
            continue
        rows = await _all_of(session, settings=settings, now=now, entity_type=entity_type, request=request)
        window = rows[skip:skip + room]
        out += window
        room -= len(window)
        more = more or len(rows) > skip + len(window)
        skip = max(0, skip - len(rows))
        total += len(rows)
    return Page(out, total if request.count else None, more)


async def _all_of(session: AsyncSession, *, settings: Settings, now: datetime, entity_type: str,
                  request: EntityQuery) -> list[Row]:
    if entity_type in FACILITY_TYPES:
        rows = await entities.facilities(session, settings=settings, now=now, types=(entity_type,),
                                         filters=request.filters)
    elif entity_type == "ParkingGroup":
        rows = await entities.groups(session, settings=settings, filters=request.filters)
    else:
        rows = (await entities.spots(session, settings=settings, filters=request.filters)).rows
    if request.q is not None:
        rows = [r for r in rows if query.matches(request.q, r.kv)]
    return rows


async def get(session: AsyncSession, *, settings: Settings, entity_id: str, index: FreeIndex | None = None) -> Row:
    """One entity by URN; ResourceNotFound if citypark has none."""
    parts = entities.split_urn(entity_id)
    if parts is None:
        if ":" not in entity_id:
            raise BadRequestData(f"{entity_id!r} is not a URI")
        raise ResourceNotFound(f"no entity {entity_id}")
    request = EntityQuery(types=(parts[0],), filters=Filters(ids=frozenset({entity_id})), limit=1)
    page = await find(session, settings=settings, request=request, index=index)
    if not page.rows:
        raise ResourceNotFound(f"no entity {entity_id}")
    return page.rows[0]


async def matching(session: AsyncSession, *, settings: Settings, types: tuple[str, ...], ids: frozenset[str] | None,
                   geo: GeoQuery | None, q: query.Query | None) -> list[Row]:
    """Every entity of ``types`` matching (the notifier's view of a subscription)."""
    request = EntityQuery(types=types, filters=Filters(ids=ids, geo=geo), q=q, limit=MAX_LIMIT * 1000)
    return (await find(session, settings=settings, request=request)).rows


async def type_counts(session: AsyncSession, *, settings: Settings) -> dict[str, int]:
    """How many entities citypark has of each type (types with none are left out)."""
    out = {}
    for entity_type in TYPES:
        page = await find(session, settings=settings,
                          request=EntityQuery(types=(entity_type,), limit=0, count=True))
        if page.total:
            out[entity_type] = page.total
    return out
