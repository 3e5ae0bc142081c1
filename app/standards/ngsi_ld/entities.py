"""The parking entities, built from live state: facilities (``OffStreetParking`` for lots and
garages, ``OnStreetParking`` for curbs), their accessible / EV / loading groups
(``ParkingGroup``) and every space (``ParkingSpot``). Key-values form; ``render`` makes the rest.

Numbers follow ``app.availability`` (the numbers of ``GET /v1/facilities``): free counts only
fresh readings and leaves held spaces out, a facility with too few fresh readings has no
``availableSpotNumber``. A spot's ``status`` is its sensor's (``app.occupancy.staleness``: silent
or never reported reads ``unknown``), ``closed`` on a no-parking space or a closed facility.
Geo filters and the spots' ordering and paging run in PostGIS.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from app.availability import fiware
from app.availability import service as availability
from app.core.settings import Settings
from app.core.times import iso_utc
from app.occupancy.service import driver_connection
from app.occupancy.staleness import status_sql
from app.standards.ngsi_ld.errors import BadRequestData
from app.standards.ngsi_ld.geo import GeoQuery
from app.standards.ngsi_ld.query import Node, Query

TYPES = ("OffStreetParking", "OnStreetParking", "ParkingGroup", "ParkingSpot")
GROUPS = {"accessible": "onlyDisabled", "ev": "onlyElectricalCharging", "loading": "loadUnloadZone"}
URN = "urn:ngsi-ld:"
PROVIDER = "citypark"


@dataclass(frozen=True, slots=True)
class Row:
    """One entity: key-values (no @context), when its live attributes were observed, distance."""

    kv: dict[str, Any]
    observed_at: datetime | None = None
    distance_m: float | None = None

    @property
    def id(self) -> str:
        return str(self.kv["id"])


@dataclass(frozen=True)
class Filters:
    ids: frozenset[str] | None = None
    id_pattern: str | None = None
    geo: GeoQuery | None = None
    # a q over spots that SQL can answer (see spot_q); the rest is filtered after building
    spot_q: Query | None = None


def urn(entity_type: str, local_id: str) -> str:
    return f"{URN}{entity_type}:{local_id}"


def split_urn(entity_id: str) -> tuple[str, str] | None:
    """(type, citypark id) of one of our URNs, None for anything else."""
    if not entity_id.startswith(URN):
        return None
    entity_type, _, local = entity_id[len(URN):].partition(":")
    return (entity_type, local) if entity_type in TYPES and local else None


def facility_type(kind: str) -> str:
    return "OnStreetParking" if kind == "curb" else "OffStreetParking"


# --- facilities -----------------------------------------------------------------------------


async def facilities(session: AsyncSession, *, settings: Settings, now: datetime, types: Sequence[str],
                     filters: Filters) -> list[Row]:
    """The facilities of ``types`` (Off/OnStreetParking) passing the filters, by id (or distance)."""
    snap = await availability.snapshot(session, now=now, stale_after_s=settings.stale_after_s,
                                       timezone=settings.timezone)
    geo = await _facility_geo(session, filters.geo) if filters.geo else None
    out = []
    for item in snap.items:
        entity_type = facility_type(item.kind)
        eid = urn(entity_type, item.id)
        if entity_type not in types or not _id_ok(eid, filters) or (geo is not None and item.id not in geo):
            continue
        kv = fiware.entity(item)
        kv.pop("@context", None)
        kv["dataProvider"] = PROVIDER
        out.append(Row(kv, item.observed_at, None if geo is None else geo[item.id]))
    return _ordered(out, filters.geo)


async def _facility_geo(session: AsyncSession, geo: GeoQuery) -> dict[str, float | None]:
    where, params = geo.sql("f.geom", 1)
    distance = _distance_sql("f.geom", geo, len(params) + 1)
    conn = await driver_connection(session)
    rows = await _fetch(conn, f"SELECT f.id, {distance[0]} AS d FROM facilities f WHERE {where}",
                        *params, *distance[1], guarded=_guarded(Filters(geo=geo)))
    return {r["id"]: r["d"] for r in rows}


# --- groups -----------------------------------------------------------------------------------

_GROUPS_SQL = """
WITH held AS (
    SELECT space_id FROM assignments
    WHERE status IN ('held', 'reassigned') AND hold @> now() AND space_id IS NOT NULL
), member AS (
    SELECT sp.facility_id, g.kind, sp.geom, st.observed_at,
           (st.occupied IS NOT NULL AND st.last_seen > now() - make_interval(secs => $1)) AS fresh,
           (st.occupied IS FALSE AND h.space_id IS NULL) AS free
    FROM spaces sp
    CROSS JOIN LATERAL (VALUES ('accessible', sp.accessible), ('ev', sp.ev), ('loading', sp.loading)) AS g(kind, flag)
    LEFT JOIN space_state st ON st.space_id = sp.id
    LEFT JOIN held h ON h.space_id = sp.id
    WHERE g.flag AND NOT sp.no_parking
)
SELECT m.facility_id, m.kind, f.kind AS facility_kind, f.name, f.operator_id,
       count(*) AS total, count(*) FILTER (WHERE fresh) AS known,
       count(*) FILTER (WHERE fresh AND free) AS free,
       max(m.observed_at) FILTER (WHERE fresh) AS observed_at,
       ST_AsGeoJSON(ST_Collect(m.geom), 7) AS geometry {distance}
FROM member m JOIN facilities f ON f.id = m.facility_id
GROUP BY m.facility_id, m.kind, f.kind, f.name, f.operator_id
{having}
ORDER BY m.facility_id, m.kind
"""


async def groups(session: AsyncSession, *, settings: Settings, filters: Filters) -> list[Row]:
    """The accessible, EV and loading groups of every facility that has such spaces."""
    params: list[Any] = [float(settings.stale_after_s)]
    having = distance = ""
    if filters.geo is not None:
        where, geo_params = filters.geo.sql("ST_Collect(m.geom)", 2)
        having = f"HAVING {where}"
        params += geo_params
        dist_sql, dist_params = _distance_sql("ST_Collect(m.geom)", filters.geo, len(params) + 1)
        distance = f", {dist_sql} AS d"
        params += dist_params
    sql = _GROUPS_SQL.replace("{distance}", distance).replace("{having}", having)
    rows = await _fetch(await driver_connection(session), sql, *params, guarded=_guarded(filters))
    out = []
    for r in rows:
        row = _group(r)
        if _id_ok(row.id, filters):
            out.append(row)
    return _ordered(out, filters.geo)


def _group(r: Any) -> Row:
    site = urn(facility_type(r["facility_kind"]), r["facility_id"])
    street = "onStreet" if r["facility_kind"] == "curb" else "offStreet"
    kv: dict[str, Any] = {
        "id": urn("ParkingGroup", f"{r['facility_id']}-{r['kind']}"), "type": "ParkingGroup",
        "name": f"{r['name']} ({r['kind']})", "category": [GROUPS[r["kind"]], street],
        "refParkingSite": site, "location": orjson.loads(r["geometry"]), "allowedVehicleType": "car",
        "totalSpotNumber": r["total"], "occupancyDetectionType": ["singleSpaceDetection"],
        "owner": [f"urn:ngsi-ld:Organization:{r['operator_id']}"], "dataProvider": PROVIDER,
    }
    if r["total"] and r["known"] >= availability.MIN_KNOWN_FRACTION * r["total"]:
        kv["availableSpotNumber"] = r["free"]
    if r["observed_at"] is not None:
        kv["observationDateTime"] = iso_utc(r["observed_at"])
    return Row(kv, r["observed_at"], r.get("d"))


# --- spots ------------------------------------------------------------------------------------

_SPOTS_SQL = """
SELECT sp.id, sp.facility_id, f.kind AS facility_kind, f.operator_id, se.id AS sensor_id,
       ST_X(sp.geom) AS lon, ST_Y(sp.geom) AS lat, st.observed_at,
       CASE WHEN f.closed OR sp.no_parking THEN 'closed' ELSE {status} END AS status {distance}
FROM spaces sp
JOIN facilities f ON f.id = sp.facility_id
LEFT JOIN space_state st ON st.space_id = sp.id
LEFT JOIN sensors se ON se.space_id = sp.id
WHERE {where}
"""


@dataclass(frozen=True)
class SpotPage:
    rows: list[Row]
    more: bool


async def spots(session: AsyncSession, *, settings: Settings, filters: Filters,
                offset: int | None = None, limit: int | None = None) -> SpotPage:
    """Spots passing the filters by id (by distance for ``near``); paged in SQL when asked."""
    sql, params = _spots_sql(settings, filters)
    if limit is not None:
        sql += f" LIMIT {int(limit) + 1} OFFSET {int(offset or 0)}"
    conn = await driver_connection(session)
    rows = [_spot(r) for r in await _fetch(conn, sql, *params, guarded=_guarded(filters))]
    more = limit is not None and len(rows) > limit
    return SpotPage(rows[:limit] if limit is not None else rows, more)


async def count_spots(session: AsyncSession, *, settings: Settings, filters: Filters) -> int:
    sql, params = _spots_sql(settings, filters, counting=True)
    rows = await _fetch(await driver_connection(session), f"SELECT count(*) AS n FROM ({sql}) AS s", *params,
                        guarded=_guarded(filters))
    return int(rows[0]["n"])


def _spots_sql(settings: Settings, filters: Filters, *, counting: bool = False) -> tuple[str, list[Any]]:
    params: list[Any] = [float(settings.stale_after_s)]
    where: list[str] = ["true"]
    if filters.ids is not None:
        params.append(sorted(local for t, local in map(_must_split, filters.ids) if t == "ParkingSpot"))
        where.append(f"sp.id = ANY(${len(params)}::text[])")
    if filters.id_pattern is not None:
        params.append(filters.id_pattern)
        where.append(f"('urn:ngsi-ld:ParkingSpot:' || sp.id) ~ ${len(params)}")
    if filters.spot_q is not None:
        condition = _spot_condition(filters.spot_q, params)
        assert condition is not None
        where.append(condition)
    distance, order = "", "sp.id"
    if filters.geo is not None:
        fragment, geo_params = filters.geo.sql("sp.geom", len(params) + 1)
        where.append(fragment)
        params += geo_params
        if filters.geo.relation == "near" and not counting:
            dist_sql, dist_params = _distance_sql("sp.geom", filters.geo, len(params) + 1)
            distance, order = f", {dist_sql} AS d", "d, sp.id"
            params += dist_params
    sql = _SPOTS_SQL.replace("{status}", status_sql("st", "$1")).replace("{distance}", distance)
    sql = sql.replace("{where}", " AND ".join(where))
    return (sql if counting else f"{sql} ORDER BY {order}"), params


_SPOT_COLUMNS = {"status": "status", "name": "id"}


def spot_q(tree: Query) -> bool:
    """Whether SQL can answer ``tree`` on spots exactly: ==/!= on status, name, refParkingSite."""
    return _spot_condition(tree, []) is not None


def _spot_condition(tree: Query, params: list[Any]) -> str | None:
    if isinstance(tree, Node):
        parts = [_spot_condition(p, params) for p in tree.parts]
        if any(p is None for p in parts):
            return None
        return "(" + f" {tree.op.upper()} ".join(p for p in parts if p is not None) + ")"
    if len(tree.path) != 1 or tree.op not in ("==", "!=") or tree.range is not None:
        return None
    if not all(isinstance(v, str) for v in tree.values):
        return None
    name = tree.path[0]
    if name in _SPOT_COLUMNS:
        column, values = _SPOT_COLUMNS[name], list(tree.values)
    elif name == "refParkingSite":  # urn:ngsi-ld:<type>:<facility id>; the type follows the kind
        column = "(CASE WHEN f.kind = 'curb' THEN 'urn:ngsi-ld:OnStreetParking:' ELSE " \
                 "'urn:ngsi-ld:OffStreetParking:' END || sp.facility_id)"
        values = list(tree.values)
    else:
        return None
    if column == "status":
        column = "(CASE WHEN f.closed OR sp.no_parking THEN 'closed' ELSE " + status_sql("st", "$1") + " END)"
    elif column == "id":
        column = "sp.id"
    params.append(values)
    test = "= ANY" if tree.op == "==" else "<> ALL"
    return f"{column} {test}(${len(params)}::text[])"


def _spot(r: Any) -> Row:
    return spot_row(r["id"], r["facility_id"], r["facility_kind"], r["operator_id"], r["sensor_id"], r["lon"],
                    r["lat"], r["status"], r["observed_at"], r.get("d"))


def spot_row(space_id: str, facility_id: str, facility_kind: str, operator_id: str, sensor_id: str | None,
             lon: float, lat: float, status: str, observed_at: datetime | None, distance_m: float | None) -> Row:
    """A ParkingSpot (key-values): the one builder of the SQL path and the index path
    (``spot_index``)."""
    kv: dict[str, Any] = {
        "id": urn("ParkingSpot", space_id), "type": "ParkingSpot", "name": space_id, "status": status,
        "category": ["onStreet" if facility_kind == "curb" else "offStreet"],
        "refParkingSite": urn(facility_type(facility_kind), facility_id),
        "location": {"type": "Point", "coordinates": [round(lon, 7), round(lat, 7)]},
        "owner": [f"urn:ngsi-ld:Organization:{operator_id}"], "dataProvider": PROVIDER,
    }
    if sensor_id is not None:
        kv["refDevice"] = [urn("Device", sensor_id)]
    if observed_at is not None:
        kv["timeInstant"] = iso_utc(observed_at)
    return Row(kv, observed_at, distance_m)


# --- shared -------------------------------------------------------------------------------------


def _distance_sql(column: str, geo: GeoQuery, param: int) -> tuple[str, list[Any]]:
    if geo.relation != "near" or geo.point is None:
        return "NULL::float8", []
    lon, lat = geo.point
    return (f"ST_Distance(({column})::geography, ST_SetSRID(ST_MakePoint(${param}, ${param + 1}), 4326)::geography, "
            "false)",
            [lon, lat])


def _ordered(rows: list[Row], geo: GeoQuery | None) -> list[Row]:
    if geo is not None and geo.relation == "near":
        return sorted(rows, key=lambda r: (r.distance_m if r.distance_m is not None else 0.0, r.id))
    return sorted(rows, key=lambda r: r.id)


def _id_ok(entity_id: str, filters: Filters) -> bool:
    if filters.ids is not None and entity_id not in filters.ids:
        return False
    return filters.id_pattern is None or re.search(filters.id_pattern, entity_id) is not None


def _must_split(entity_id: str) -> tuple[str, str]:
    return split_urn(entity_id) or ("", "")


def _guarded(filters: Filters) -> bool:
    """Whether PostgreSQL may refuse the caller's input (a regular expression, a shape) after our checks:
    a validated point and distance cannot fail, so the common near query needs no savepoint."""
    return filters.id_pattern is not None or (filters.geo is not None and filters.geo.geometry["type"] != "Point")


async def _fetch(conn: asyncpg.Connection, sql: str, *params: Any, guarded: bool) -> list[Any]:
    """Rows of a query; when ``guarded``, in a savepoint whose errors become 400s (the request's
    transaction stays usable)."""
    if not guarded:
        return list(await conn.fetch(sql, *params))
    try:
        async with conn.transaction():  # a savepoint: a bad geometry must not spoil the request's transaction
            return list(await conn.fetch(sql, *params))
    except (asyncpg.exceptions.InternalServerError, asyncpg.exceptions.DataError,
            asyncpg.exceptions.InvalidRegularExpressionError) as exc:
        raise BadRequestData(f"the geo-query or idPattern was refused: {exc}") from None
