"""An inventory feature, checked one at a time as the file streams past (``app.inventory.service``).

Every check that needs one feature, or the facilities seen so far, runs here and names the
feature; what needs the whole file or the database (sensor ids used twice, unknown facilities,
ownership, stored capacity) runs in SQL on the staged rows (``app.inventory.staging``).
Validated rows are kept only until the next COPY: memory stays flat in the file's size.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import time
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import orjson
import shapely
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from app.core import geometry_input, hours, ids
from app.core.errors import InvalidInput
from app.core.geo import distance_m, to_local_metres
from app.core.text import nul_path
from matching.geo import project

MAX_SPACE_DISTANCE_M = 30.0  # a space must lie inside its facility or this close beside it
GEOMETRY_BY_KIND = {"lot": "Polygon", "garage": "Polygon", "curb": "LineString"}
MAX_WARNINGS = 20  # notes kept word for word; more are counted


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)

    max_stay_minutes: int | None = Field(default=None, gt=0, le=7 * 1440)
    no_parking: bool = False
    days: str = "Mo-Su"
    start: str = Field(default="00:00", alias="from")
    end: str = Field(default="24:00", alias="to")
    note: str | None = None


def check_timezone(value: str) -> str:
    """An IANA time zone name known to this system (``Asia/Shanghai``, ``Europe/London``)."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r}") from None
    return value


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
class KnownFacility:
    """A facility of the file, projected once so its spaces are checked in bulk."""

    capacity: int
    counted: bool
    origin: tuple[float, float]  # (lat, lon) of the centroid
    local: BaseGeometry  # metres around ``origin``


@dataclass
class Batch:
    """Rows validated since the last COPY (tuples in the staging tables' column order)."""

    facilities: list[tuple[Any, ...]] = field(default_factory=list)
    spaces: list[tuple[Any, ...]] = field(default_factory=list)
    rules: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass
class Collector:
    """Validates features in file order; ``take()`` hands over the rows for staging."""

    area: geometry_input.Bbox | None = None
    seen: set[str] = field(default_factory=set)
    facilities: dict[str, KnownFacility] = field(default_factory=dict)
    per_facility: Counter[str] = field(default_factory=Counter)
    # spaces whose facility was not seen yet: (space id, facility id, lon, lat), checked at the end
    pending: list[tuple[str, str, float, float]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    more_warnings: int = 0
    n_spaces: int = 0
    n_sensors: int = 0
    n_rules: int = 0
    batch: Batch = field(default_factory=Batch)

    def add(self, index: int, feature: Any) -> None:
        """Validate one feature (``index``: its place in the file); InvalidInput names it."""
        fid = feature.get("id") if isinstance(feature, dict) else None
        where = f"feature {fid!r}" if isinstance(fid, str) else f"feature #{index}"
        if _may_hold_nul(feature) and (nul := nul_path(feature, f"$.features[{index}]")) is not None:
            raise InvalidInput(f"inventory: a NUL character (U+0000) in {nul}")
        if not isinstance(fid, str) or not ids.is_valid(fid):
            raise InvalidInput(f"{where}: needs an id of {ids.RULE}")
        if fid in self.seen:
            raise InvalidInput(f"{where}: duplicate id")
        self.seen.add(fid)
        props = feature.get("properties") or {}
        if not isinstance(props, dict):
            raise InvalidInput(f"{where}: properties must be an object")
        try:
            if props.get("feature") == "facility":
                self._facility(fid, where, FacilityProps.model_validate(props), feature.get("geometry"))
            elif props.get("feature") == "space":
                self._space(fid, where, SpaceProps.model_validate(props), feature.get("geometry"))
            else:
                raise InvalidInput(f"{where}: properties.feature must be 'facility' or 'space'")
        except ValidationError as exc:
            raise InvalidInput(f"{where}: {_first_error(exc)}") from None

    def take(self) -> Batch:
        """The rows since the last call; the spaces among them are checked against their facility."""
        batch, self.batch = self.batch, Batch()
        self._check_distances([(r[0], r[1], r[2], r[3]) for r in batch.spaces if r[1] in self.facilities])
        self.pending += [(r[0], r[1], r[2], r[3]) for r in batch.spaces if r[1] not in self.facilities]
        return batch

    def finish(self) -> None:
        """Whole-file checks that need no database: spaces near facilities that came later, capacity."""
        if not self.seen:
            raise InvalidInput("inventory has no features")
        pending, self.pending = self.pending, []
        self._check_distances([p for p in pending if p[1] in self.facilities])
        for fid, known in self.facilities.items():
            if not known.counted and self.per_facility[fid] > known.capacity:
                raise InvalidInput(f"feature {fid!r}: capacity {known.capacity} but {self.per_facility[fid]} spaces")

    def note(self, text: str) -> None:
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(text)
        else:
            self.more_warnings += 1

    def all_warnings(self) -> tuple[str, ...]:
        extra = [f"and {self.more_warnings} more features with the same kind of note"] if self.more_warnings else []
        return (*self.warnings, *extra)

    def _facility(self, fid: str, where: str, props: FacilityProps, raw: Any) -> None:
        result = geometry_input.parse(raw, what=where, area=self.area)
        if result.dropped_z:
            self.note(f"{where}: z (height) coordinates dropped")
        geom = result.geometry
        if geom.geom_type != GEOMETRY_BY_KIND[props.kind]:
            raise InvalidInput(f"{where}: a {props.kind} needs a {GEOMETRY_BY_KIND[props.kind]}")
        geometry_input.check_footprint(where, props.kind, geom)
        _check_hours(where, props.opening_hours, props.public_hours)
        _check_rules(where, props.rules)
        entrance = Point(props.entrance) if props.entrance else _default_entrance(geom)
        if distance_m(geom, entrance) > MAX_SPACE_DISTANCE_M:
            raise InvalidInput(f"{where}: entrance is more than {MAX_SPACE_DISTANCE_M:.0f} m away")
        c = geom.centroid
        self.facilities[fid] = KnownFacility(props.capacity, props.counted, (c.y, c.x), to_local_metres(geom, c.y, c.x))
        self.batch.facilities.append((
            fid, props.name, props.kind, shapely.to_wkb(geom), shapely.to_wkb(entrance), props.capacity,
            props.counted, props.opening_hours, props.public_hours, props.fee, props.closed, props.timezone))
        self._rules(props.rules, fid, None)

    def _space(self, sid: str, where: str, props: SpaceProps, raw: Any) -> None:
        lon, lat, dropped_z = geometry_input.parse_point(raw, what=where, area=self.area)
        if dropped_z:
            self.note(f"{where}: z (height) coordinates dropped")
        if props.facility_id not in self.facilities:  # a facility of the file has a valid id already
            ids.check(props.facility_id, f"{where}: facility_id")
        if props.sensor_id is not None:
            ids.check(props.sensor_id, f"{where}: sensor_id")
            self.n_sensors += 1
        _check_rules(where, props.rules)
        if (props.dev_eui is None) != (props.sensor_model is None):
            raise InvalidInput(f"{where}: dev_eui and sensor_model go together")
        if props.dev_eui is not None and props.sensor_id is None:
            raise InvalidInput(f"{where}: a dev_eui needs a sensor_id")
        self.per_facility[props.facility_id] += 1
        self.n_spaces += 1
        self.batch.spaces.append((
            sid, props.facility_id, lon, lat, props.accessible, props.ev, props.loading, props.no_parking,
            props.sensor_id, props.sensor_kind, props.dev_eui.lower() if props.dev_eui else None,
            props.sensor_model))
        self._rules(props.rules, None, sid)

    def _rules(self, rules: list[RuleIn], facility_id: str | None, space_id: str | None) -> None:
        for rule in rules:
            self.batch.rules.append((facility_id, space_id, *_rule_values(rule)))
        self.n_rules += len(rules)

    def _check_distances(self, spaces: list[tuple[str, str, float, float]]) -> None:
        by_facility: dict[str, list[tuple[str, float, float]]] = {}
        for sid, fid, lon, lat in spaces:
            by_facility.setdefault(fid, []).append((sid, lon, lat))
        for fid, points in by_facility.items():
            known = self.facilities[fid]
            x, y = project([p[2] for p in points], [p[1] for p in points], known.origin)
            far = np.flatnonzero(shapely.distance(known.local, shapely.points(x, y)) > MAX_SPACE_DISTANCE_M)
            if far.size:
                raise InvalidInput(f"feature {points[far[0]][0]!r}: more than {MAX_SPACE_DISTANCE_M:.0f} m "
                                   f"outside its facility {fid!r}")


def _may_hold_nul(feature: Any) -> bool:
    """Cheap pre-check for ``nul_path`` (a third of the validation time otherwise): orjson writes
    a NUL as ``\\u0000``; a false positive (an escaped backslash before ``u0000``) only costs the
    exact walk."""
    try:
        return b"\\u0000" in orjson.dumps(feature)
    except (TypeError, orjson.JSONEncodeError):
        return True


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(str(p) for p in err['loc']) or 'properties'}: {err['msg']}"


def _default_entrance(geom: BaseGeometry) -> Point:
    return Point(geom.coords[0]) if geom.geom_type == "LineString" else geom.representative_point()


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


def _rule_values(rule: RuleIn) -> tuple[Any, ...]:
    """kind, max_stay_minutes, days, day_mask, start_time, end_time, note (a parking_rules row)."""
    start, end = hours.parse_clock(rule.start), hours.parse_clock(rule.end)
    return ("no_parking" if rule.no_parking else "time_limit", rule.max_stay_minutes, rule.days,
            hours.parse_days(rule.days), _clock(start), _clock(end % 1440), rule.note)


def _clock(minutes: int) -> time:
    return time(minutes // 60, minutes % 60)
