"""Inventory import: a GeoJSON FeatureCollection of facilities and spaces for one operator.

Validated whole before anything is written; a bad feature rejects the whole file with an
error naming it. Written in the caller's transaction (all or nothing).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import time
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from geoalchemy2.shape import from_shape
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import geometry_input, hours, ids
from app.core.errors import Forbidden, InvalidInput
from app.core.geo import distance_m
from app.core.text import nul_path
from app.inventory.models import Facility, Operator, ParkingRule, Sensor, Space
from app.occupancy.models import FacilityCount, SpaceState

MAX_SPACE_DISTANCE_M = 30.0  # a space must lie inside its facility or this close beside it
GEOMETRY_BY_KIND = {"lot": "Polygon", "garage": "Polygon", "curb": "LineString"}


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)

    max_stay_minutes: int | None = Field(default=None, gt=0, le=7 * 1440)
    no_parking: bool = False
    days: str = "Mo-Su"
    start: str = Field(default="00:00", alias="from")
    end: str = Field(default="24:00", alias="to")
    note: str | None = None


class FacilityProps(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)  # "capacity": "12" or "counted": "yes" are errors

    feature: Literal["facility"]
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["lot", "garage", "curb"]
    capacity: int = Field(ge=0, le=100_000)
    counted: bool = False
    opening_hours: str = "Mo-Su 00:00-24:00"
    public_hours: str | None = None
    fee: str | None = Field(default=None, max_length=500)
    entrance: list[float] | None = Field(default=None, min_length=2, max_length=2)
    closed: bool = False
    rules: list[RuleIn] = Field(default_factory=list)
    timezone: str = Field(default="Asia/Shanghai", max_length=64)

    @field_validator("timezone")
    @classmethod
    def _iana(cls, value: str) -> str:
        return check_timezone(value)


def check_timezone(value: str) -> str:
    """An IANA time zone name known to this system (``Asia/Shanghai``, ``Europe/London``)."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r}") from None
    return value


class SpaceProps(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    feature: Literal["space"]
    facility_id: str = Field(min_length=1, max_length=100)
    sensor_id: str | None = Field(default=None, min_length=1, max_length=100)
    sensor_kind: Literal["magnetometer", "bay"] = "magnetometer"
    accessible: bool = False
    ev: bool = False
    loading: bool = False
    no_parking: bool = False
    rules: list[RuleIn] = Field(default_factory=list)
    # LoRaWAN (CONTRACT.md "Real inputs"): the device's DevEUI and decoder family
    dev_eui: str | None = Field(default=None, pattern=r"^[0-9A-Fa-f]{16}$")
    sensor_model: Literal["bosch-tps110", "nwave-nps310", "netvox-r719a", "decoded"] | None = None


@dataclass
class Parsed:
    facilities: dict[str, tuple[FacilityProps, BaseGeometry, Point]]
    spaces: dict[str, tuple[SpaceProps, Point]]
    warnings: list[str] = field(default_factory=list)
    area: geometry_input.Bbox | None = None


@dataclass(frozen=True)
class ImportResult:
    operator_id: str
    facilities: int
    spaces: int
    sensors: int
    rules: int
    warnings: tuple[str, ...] = ()


def parse_collection(doc: Any, *, area: geometry_input.Bbox | None = None) -> Parsed:
    """Validate a FeatureCollection's structure, geometry and references; raise InvalidInput.

    Ids follow ``app.core.ids``; no text may hold a NUL; geometries must lie in ``area`` when
    given (the service area) and have a plausible size. 3-D positions lose their ``z``, which
    ``Parsed.warnings`` says.
    """
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise InvalidInput("inventory must be a GeoJSON FeatureCollection")
    if (where := nul_path(doc)) is not None:
        raise InvalidInput(f"inventory: a NUL character (U+0000) in {where}")
    features = doc.get("features")
    if not isinstance(features, list) or not features:
        raise InvalidInput("inventory has no features")
    parsed = Parsed({}, {}, area=area)
    for index, feature in enumerate(features):
        _parse_feature(parsed, index, feature)
    _check_references(parsed)
    return parsed


def _parse_feature(parsed: Parsed, index: int, feature: Any) -> None:
    fid = feature.get("id") if isinstance(feature, dict) else None
    where = f"feature {fid!r}" if isinstance(fid, str) else f"feature #{index}"
    if not isinstance(fid, str) or not ids.is_valid(fid):
        raise InvalidInput(f"{where}: needs an id of {ids.RULE}")
    if fid in parsed.facilities or fid in parsed.spaces:
        raise InvalidInput(f"{where}: duplicate id")
    props = feature.get("properties") or {}
    if not isinstance(props, dict):
        raise InvalidInput(f"{where}: properties must be an object")
    geom = _geometry(parsed, where, feature.get("geometry"))
    try:
        if props.get("feature") == "facility":
            parsed.facilities[fid] = _facility(where, FacilityProps.model_validate(props), geom)
        elif props.get("feature") == "space":
            parsed.spaces[fid] = _space(where, SpaceProps.model_validate(props), geom)
        else:
            raise InvalidInput(f"{where}: properties.feature must be 'facility' or 'space'")
    except ValidationError as exc:
        raise InvalidInput(f"{where}: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(str(p) for p in err['loc']) or 'properties'}: {err['msg']}"


def _geometry(parsed: Parsed, where: str, raw: Any) -> BaseGeometry:
    result = geometry_input.parse(raw, what=where, area=parsed.area)
    if result.dropped_z:
        parsed.warnings.append(f"{where}: z (height) coordinates dropped")
    return result.geometry


def _facility(where: str, props: FacilityProps, geom: BaseGeometry) -> tuple[Any, ...]:
    if geom.geom_type != GEOMETRY_BY_KIND[props.kind]:
        raise InvalidInput(f"{where}: a {props.kind} needs a {GEOMETRY_BY_KIND[props.kind]}")
    geometry_input.check_footprint(where, props.kind, geom)
    _check_hours(where, props.opening_hours, props.public_hours)
    _check_rules(where, props.rules)
    entrance = Point(props.entrance) if props.entrance else _default_entrance(geom)
    if distance_m(geom, entrance) > MAX_SPACE_DISTANCE_M:
        raise InvalidInput(f"{where}: entrance is more than {MAX_SPACE_DISTANCE_M:.0f} m away")
    return props, geom, entrance


def _default_entrance(geom: BaseGeometry) -> Point:
    return Point(geom.coords[0]) if geom.geom_type == "LineString" else geom.representative_point()


def _space(where: str, props: SpaceProps, geom: BaseGeometry) -> tuple[SpaceProps, Point]:
    if not isinstance(geom, Point):
        raise InvalidInput(f"{where}: a space needs a Point")
    ids.check(props.facility_id, f"{where}: facility_id")
    if props.sensor_id is not None:
        ids.check(props.sensor_id, f"{where}: sensor_id")
    _check_rules(where, props.rules)
    if (props.dev_eui is None) != (props.sensor_model is None):
        raise InvalidInput(f"{where}: dev_eui and sensor_model go together")
    if props.dev_eui is not None and props.sensor_id is None:
        raise InvalidInput(f"{where}: a dev_eui needs a sensor_id")
    if props.dev_eui is not None:
        props.dev_eui = props.dev_eui.lower()
    return props, geom


def _check_hours(where: str, *specs: str | None) -> None:
    for spec in specs:
        try:
            hours.parse(spec) if spec is not None else None
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc.detail}") from None


def _check_rules(where: str, rules: list[RuleIn]) -> None:
    for rule in rules:
        if rule.no_parking == (rule.max_stay_minutes is not None):
            raise InvalidInput(f"{where}: a rule has either max_stay_minutes or no_parking: true")
        try:
            hours.parse_days(rule.days), hours.parse_clock(rule.start), hours.parse_clock(rule.end)
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: rule: {exc.detail}") from None


def _check_references(parsed: Parsed) -> None:
    sensors = Counter(p.sensor_id for p, _ in parsed.spaces.values() if p.sensor_id)
    if dup := next((s for s, n in sensors.items() if n > 1), None):
        raise InvalidInput(f"sensor {dup!r} is on more than one space")
    euis = Counter(p.dev_eui for p, _ in parsed.spaces.values() if p.dev_eui)
    if dup := next((e for e, n in euis.items() if n > 1), None):
        raise InvalidInput(f"dev_eui {dup!r} is on more than one sensor")
    per_facility = Counter(p.facility_id for p, _ in parsed.spaces.values())
    for fid, (props, _, _) in parsed.facilities.items():
        if not props.counted and per_facility[fid] > props.capacity:
            raise InvalidInput(
                f"feature {fid!r}: capacity {props.capacity} but {per_facility[fid]} spaces"
            )
    for sid, (space, point) in parsed.spaces.items():
        facility = parsed.facilities.get(space.facility_id)
        if facility and distance_m(facility[1], point) > MAX_SPACE_DISTANCE_M:
            raise InvalidInput(
                f"feature {sid!r}: more than {MAX_SPACE_DISTANCE_M:.0f} m outside its facility "
                f"{space.facility_id!r}"
            )


async def import_inventory(
    session: AsyncSession, *, operator_id: str, doc: Any, operator_name: str | None = None,
    area: geometry_input.Bbox | None = None,
) -> ImportResult:
    """Validate ``doc`` and upsert it for ``operator_id`` (flush only; the caller commits).

    ``area`` is the service area (``Settings.service_area_bbox``); None accepts anywhere.
    """
    ids.check(operator_id, "operator")
    parsed = parse_collection(doc, area=area)
    await _check_ownership(session, operator_id, parsed)
    await _check_outside_facilities(session, operator_id, parsed)
    await _upsert_operator(session, operator_id, operator_name)
    await _upsert_facilities(session, operator_id, parsed)
    await _upsert_spaces(session, operator_id, parsed)
    n_rules = await _replace_rules(session, parsed)
    await session.flush()
    await _check_stored_capacity(session, parsed)
    n_sensors = sum(1 for p, _ in parsed.spaces.values() if p.sensor_id)
    return ImportResult(operator_id, len(parsed.facilities), len(parsed.spaces), n_sensors, n_rules,
                        tuple(parsed.warnings))


async def _check_ownership(session: AsyncSession, operator_id: str, parsed: Parsed) -> None:
    """An operator may not overwrite another operator's facilities or sensors."""
    ids = list(parsed.facilities) + list({p.facility_id for p, _ in parsed.spaces.values()})
    rows = await session.execute(
        select(Facility.id, Facility.operator_id).where(Facility.id.in_(ids))
    )
    for fid, owner in rows:
        if owner != operator_id:
            raise Forbidden(f"facility {fid!r} belongs to another operator")
    sensor_ids = [p.sensor_id for p, _ in parsed.spaces.values() if p.sensor_id]
    rows = await session.execute(
        select(Sensor.id, Sensor.operator_id).where(Sensor.id.in_(sensor_ids))
    )
    for sid, owner in rows:
        if owner != operator_id:
            raise Forbidden(f"sensor {sid!r} belongs to another operator")
    euis = [p.dev_eui for p, _ in parsed.spaces.values() if p.dev_eui]
    rows = await session.execute(
        select(Sensor.dev_eui, Sensor.operator_id).where(Sensor.dev_eui.in_(euis))
    )
    for eui, owner in rows:
        if owner != operator_id:
            raise Forbidden(f"dev_eui {eui!r} is a sensor of another operator")
    space_ids = list(parsed.spaces)
    rows = await session.execute(
        select(Space.id, Facility.operator_id)
        .join(Facility, Facility.id == Space.facility_id)
        .where(Space.id.in_(space_ids))
    )
    for sid, owner in rows:
        if owner != operator_id:
            raise Forbidden(f"space {sid!r} belongs to another operator")


async def _check_outside_facilities(session: AsyncSession, operator_id: str, parsed: Parsed) -> None:
    """Spaces may reference facilities already stored (for this operator)."""
    missing = {p.facility_id for p, _ in parsed.spaces.values()} - set(parsed.facilities)
    if not missing:
        return
    found = set(
        (await session.execute(select(Facility.id).where(Facility.id.in_(missing)))).scalars()
    )
    if unknown := sorted(missing - found):
        raise InvalidInput(f"unknown facility {unknown[0]!r} referenced by a space")


async def _check_stored_capacity(session: AsyncSession, parsed: Parsed) -> None:
    """Capacity counts spaces already stored too (a file may add spaces to a stored facility).

    Runs after the upsert, in the caller's transaction: raising makes the caller roll back.
    """
    touched = set(parsed.facilities) | {p.facility_id for p, _ in parsed.spaces.values()}
    rows = await session.execute(
        select(Facility.id, Facility.capacity, func.count(Space.id))
        .join(Space, Space.facility_id == Facility.id)
        .where(Facility.id.in_(touched), Facility.counted.is_(False))
        .group_by(Facility.id, Facility.capacity)
        .having(func.count(Space.id) > Facility.capacity)
    )
    over = rows.first()
    if over is not None:
        raise InvalidInput(f"feature {over[0]!r}: capacity {over[1]} but {over[2]} spaces stored with this file")


async def _upsert_operator(session: AsyncSession, operator_id: str, name: str | None) -> None:
    stmt = insert(Operator).values(id=operator_id, name=name or operator_id)
    update = {"name": stmt.excluded.name} if name else {"id": stmt.excluded.id}
    await session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=update))


async def _upsert_facilities(session: AsyncSession, operator_id: str, parsed: Parsed) -> None:
    if not parsed.facilities:
        return
    rows = [
        {"id": fid, "operator_id": operator_id, "name": p.name, "kind": p.kind,
         "geom": from_shape(geom, srid=4326), "entrance": from_shape(entrance, srid=4326),
         "capacity": p.capacity, "counted": p.counted, "opening_hours": p.opening_hours,
         "public_hours": p.public_hours, "fee": p.fee, "closed": p.closed,
         "timezone": p.timezone}
        for fid, (p, geom, entrance) in parsed.facilities.items()
    ]
    stmt = insert(Facility)
    columns = [c for c in rows[0] if c != "id"]
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={**{c: stmt.excluded[c] for c in columns}, "updated_at": stmt.excluded.updated_at},
        ),
        rows,
    )
    counted = [{"facility_id": fid, "total": p.capacity}
               for fid, (p, _, _) in parsed.facilities.items() if p.counted]
    if counted:
        count_stmt = insert(FacilityCount)
        await session.execute(
            count_stmt.on_conflict_do_update(
                index_elements=["facility_id"], set_={"total": count_stmt.excluded.total}
            ),
            counted,
        )


async def _upsert_spaces(session: AsyncSession, operator_id: str, parsed: Parsed) -> None:
    if not parsed.spaces:
        return
    rows = [
        {"id": sid, "facility_id": p.facility_id, "geom": from_shape(pt, srid=4326),
         "accessible": p.accessible, "ev": p.ev, "loading": p.loading, "no_parking": p.no_parking}
        for sid, (p, pt) in parsed.spaces.items()
    ]
    stmt = insert(Space)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["id"], set_={c: stmt.excluded[c] for c in rows[0] if c != "id"}
        ),
        rows,
    )
    await session.execute(
        insert(SpaceState).on_conflict_do_nothing(), [{"space_id": sid} for sid in parsed.spaces]
    )
    await _upsert_sensors(session, operator_id, parsed)


async def _upsert_sensors(session: AsyncSession, operator_id: str, parsed: Parsed) -> None:
    rows = [{"id": p.sensor_id, "operator_id": operator_id, "space_id": sid, "kind": p.sensor_kind,
             "dev_eui": p.dev_eui, "sensor_model": p.sensor_model}
            for sid, (p, _) in parsed.spaces.items() if p.sensor_id]
    if not rows:
        return
    # DevEUIs are unique and may move between this operator's sensors: free them first.
    if euis := [r["dev_eui"] for r in rows if r["dev_eui"]]:
        await session.execute(update(Sensor).where(Sensor.dev_eui.in_(euis)).values(dev_eui=None))
    # A space's sensor may have been swapped: free the space for the new sensor id first.
    await session.execute(
        delete(Sensor).where(
            Sensor.space_id.in_([r["space_id"] for r in rows]),
            Sensor.id.not_in([r["id"] for r in rows]),
        )
    )
    stmt = insert(Sensor)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={"space_id": stmt.excluded.space_id, "kind": stmt.excluded.kind,
                  "dev_eui": stmt.excluded.dev_eui, "sensor_model": stmt.excluded.sensor_model},
        ),
        rows,
    )


async def _replace_rules(session: AsyncSession, parsed: Parsed) -> int:
    await session.execute(delete(ParkingRule).where(ParkingRule.facility_id.in_(parsed.facilities)))
    await session.execute(delete(ParkingRule).where(ParkingRule.space_id.in_(parsed.spaces)))
    rows = [_rule_row(r, facility_id=fid) for fid, (p, _, _) in parsed.facilities.items() for r in p.rules]
    rows += [_rule_row(r, space_id=sid) for sid, (p, _) in parsed.spaces.items() for r in p.rules]
    if rows:
        await session.execute(insert(ParkingRule), rows)
    return len(rows)


def _rule_row(rule: RuleIn, **target: str) -> dict[str, Any]:
    start, end = hours.parse_clock(rule.start), hours.parse_clock(rule.end)
    return {
        "facility_id": target.get("facility_id"), "space_id": target.get("space_id"),
        "kind": "no_parking" if rule.no_parking else "time_limit",
        "max_stay_minutes": rule.max_stay_minutes, "days": rule.days,
        "day_mask": hours.parse_days(rule.days),
        "start_time": _clock(start), "end_time": _clock(end % 1440), "note": rule.note,
    }


def _clock(minutes: int) -> time:
    return time(minutes // 60, minutes % 60)
