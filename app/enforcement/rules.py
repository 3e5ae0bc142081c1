"""Parking rules managed by an admin: list, create, delete (facility, space or zone rules).

The inventory importer also writes facility and space rules: re-importing an operator's file
replaces the rules of the facilities and spaces in it, admin-made ones included. Zone rules
(polygons) are only managed here. ``citypark enforce`` notices any change on its next pass.
"""

from __future__ import annotations

import json
from datetime import time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from geoalchemy2.shape import from_shape
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import geometry_input, hours, ids
from app.core.errors import InvalidInput, NotFound
from app.inventory.models import Facility, ParkingRule, Space


class RuleSpec(BaseModel):
    """A new rule: where (exactly one of facility, space or zone) and what (a limit or no parking)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)

    facility_id: str | None = Field(default=None, min_length=1, max_length=ids.MAX_LEN, pattern=ids.PATTERN)
    space_id: str | None = Field(default=None, min_length=1, max_length=ids.MAX_LEN, pattern=ids.PATTERN)
    zone: dict[str, Any] | None = Field(default=None, description="GeoJSON Polygon (lon/lat)")
    max_stay_minutes: int | None = Field(default=None, gt=0, le=7 * 1440)
    no_parking: bool = False
    days: str = Field(default="Mo-Su", max_length=100, examples=["Mo-Sa"])
    start: str = Field(default="00:00", alias="from", max_length=10, examples=["08:00"])
    end: str = Field(default="24:00", alias="to", max_length=10, examples=["20:00"])
    timezone: str = Field(default="Asia/Shanghai", max_length=100)
    note: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _one_target_one_kind(self) -> RuleSpec:
        if sum(x is not None for x in (self.facility_id, self.space_id, self.zone)) != 1:
            raise ValueError("give exactly one of facility_id, space_id or zone")
        if self.no_parking == (self.max_stay_minutes is not None):
            raise ValueError("a rule has either max_stay_minutes or no_parking: true")
        return self


def _row(rule: ParkingRule, zone_json: str | None) -> dict[str, Any]:
    return {
        "id": rule.id, "facility_id": rule.facility_id, "space_id": rule.space_id,
        "zone": json.loads(zone_json) if zone_json else None, "kind": rule.kind,
        "max_stay_minutes": rule.max_stay_minutes, "no_parking": rule.kind == "no_parking",
        "days": rule.days, "from": rule.start_time.strftime("%H:%M"),
        "to": _clock_text(rule.start_time, rule.end_time), "timezone": rule.timezone, "note": rule.note,
    }


def _clock_text(start: time, end: time) -> str:
    return "24:00" if end == time(0) and start == time(0) else end.strftime("%H:%M")


async def list_rules(
    session: AsyncSession, *, facility_id: str | None = None, space_id: str | None = None,
    kind: str | None = None, limit: int | None = None, after_id: int | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Rules, optionally of one facility, one space or one kind, by id: the first ``limit`` with
    an id above ``after_id``; and how many match in all."""
    conditions = []
    if facility_id is not None:
        conditions.append(ParkingRule.facility_id == facility_id)
    if space_id is not None:
        conditions.append(ParkingRule.space_id == space_id)
    if kind is not None:
        conditions.append(ParkingRule.kind == kind)
    stmt = select(ParkingRule, func.ST_AsGeoJSON(ParkingRule.zone, 7)).where(*conditions).order_by(ParkingRule.id)
    if after_id is not None:
        stmt = stmt.where(ParkingRule.id > after_id)
    if limit is not None:
        stmt = stmt.limit(limit)
    total = await session.scalar(select(func.count()).select_from(ParkingRule).where(*conditions))
    return [_row(rule, zone) for rule, zone in (await session.execute(stmt)).all()], int(total or 0)


async def get_rule(session: AsyncSession, *, rule_id: int) -> dict[str, Any]:
    """One rule; NotFound if there is none with that id."""
    row = (await session.execute(
        select(ParkingRule, func.ST_AsGeoJSON(ParkingRule.zone, 7)).where(ParkingRule.id == rule_id)
    )).one_or_none()
    if row is None:
        raise NotFound(f"no rule {rule_id}")
    return _row(row[0], row[1])


async def create_rule(session: AsyncSession, *, spec: RuleSpec,
                      area: geometry_input.Bbox | None = None) -> dict[str, Any]:
    """Validate and store a rule (flush only); returns it as ``get_rule`` would. A zone must lie
    in ``area`` (the service area) when given; its z coordinates are dropped."""
    start, end = hours.parse_clock(spec.start), hours.parse_clock(spec.end)
    rule = ParkingRule(
        facility_id=spec.facility_id, space_id=spec.space_id, zone=_zone(spec.zone, area),
        kind="no_parking" if spec.no_parking else "time_limit", max_stay_minutes=spec.max_stay_minutes,
        days=spec.days, day_mask=hours.parse_days(spec.days), start_time=time(start % 1440 // 60, start % 60),
        end_time=time(end % 1440 // 60, end % 60), timezone=_timezone(spec.timezone), note=spec.note)
    await _check_target(session, spec)
    session.add(rule)
    await session.flush()
    return await get_rule(session, rule_id=rule.id)


async def delete_rule(session: AsyncSession, *, rule_id: int) -> None:
    """Delete a rule; its past violations stay, with ``rule_id`` set to NULL."""
    rule = await session.get(ParkingRule, rule_id)
    if rule is None:
        raise NotFound(f"no rule {rule_id}")
    await session.delete(rule)
    await session.flush()


async def _check_target(session: AsyncSession, spec: RuleSpec) -> None:
    if spec.facility_id is not None and await session.get(Facility, spec.facility_id) is None:
        raise InvalidInput(f"unknown facility {spec.facility_id!r}")
    if spec.space_id is not None and await session.get(Space, spec.space_id) is None:
        raise InvalidInput(f"unknown space {spec.space_id!r}")


def _zone(raw: dict[str, Any] | None, area: geometry_input.Bbox | None) -> Any:
    if raw is None:
        return None
    if raw.get("type") != "Polygon":
        raise InvalidInput("zone must be a valid GeoJSON Polygon")
    polygon = geometry_input.parse(raw, what="zone", area=area).geometry
    return from_shape(polygon, srid=4326)


def _timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInput(f"unknown time zone {name!r}") from None
    return name
