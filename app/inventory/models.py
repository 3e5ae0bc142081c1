"""The parking inventory: operators, facilities, spaces, the sensors on them and the signed rules
(time limits, no-parking hours and zones) that apply to them."""

from __future__ import annotations

from datetime import datetime, time

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Text,
    Time,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base

FACILITY_KINDS = ("lot", "garage", "curb")
SENSOR_KINDS = ("magnetometer", "bay", "gate")
SENSOR_MODELS = ("bosch-tps110", "nwave-nps310", "netvox-r719a", "decoded")


class Operator(Base):
    __tablename__ = "operators"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Facility(Base):
    __tablename__ = "facilities"
    __table_args__ = (
        CheckConstraint("kind IN ('lot', 'garage', 'curb')", name="kind"),
        CheckConstraint("capacity >= 0", name="capacity"),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    operator_id: Mapped[str] = mapped_column(ForeignKey("operators.id"), index=True)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    # Polygon for lots and garages, LineString for curb segments (SRID 4326).
    geom = mapped_column(Geometry("GEOMETRY", srid=4326, spatial_index=True), nullable=False)
    entrance = mapped_column(Geometry("POINT", srid=4326, spatial_index=True), nullable=False)
    capacity: Mapped[int] = mapped_column(Integer)
    counted: Mapped[bool] = mapped_column(Boolean, server_default="false")
    opening_hours: Mapped[str] = mapped_column(Text, server_default="Mo-Su 00:00-24:00")
    # 停车资源共享: when a shared private facility is open to the public; NULL = always.
    public_hours: Mapped[str | None] = mapped_column(Text)
    fee: Mapped[str | None] = mapped_column(Text)
    closed: Mapped[bool] = mapped_column(Boolean, server_default="false")
    attrs: Mapped[dict[str, object]] = mapped_column(JSONB, server_default="{}")
    # IANA name; the forecast's weekly profile and naive history timestamps are local to it.
    timezone: Mapped[str] = mapped_column(Text, server_default="Asia/Shanghai")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Space(Base):
    __tablename__ = "spaces"
    # Metres without a second pass: KNN and ST_DWithin on geography (matching's candidates).
    __table_args__ = (Index("ix_spaces_geog", text("(geom::geography)"), postgresql_using="gist"),)

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    facility_id: Mapped[str] = mapped_column(ForeignKey("facilities.id", ondelete="CASCADE"), index=True)
    geom = mapped_column(Geometry("POINT", srid=4326, spatial_index=True), nullable=False)
    accessible: Mapped[bool] = mapped_column(Boolean, server_default="false")
    ev: Mapped[bool] = mapped_column(Boolean, server_default="false")
    loading: Mapped[bool] = mapped_column(Boolean, server_default="false")
    no_parking: Mapped[bool] = mapped_column(Boolean, server_default="false")


class Sensor(Base):
    __tablename__ = "sensors"
    __table_args__ = (
        CheckConstraint("(space_id IS NULL) <> (facility_id IS NULL)", name="one_target"),
        CheckConstraint("kind IN ('magnetometer', 'bay', 'gate')", name="kind"),
        CheckConstraint("dev_eui ~ '^[0-9a-f]{16}$'", name="dev_eui"),
        CheckConstraint(
            "sensor_model IN ('bosch-tps110', 'nwave-nps310', 'netvox-r719a', 'decoded')",
            name="sensor_model"),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    operator_id: Mapped[str] = mapped_column(ForeignKey("operators.id"), index=True)
    space_id: Mapped[str | None] = mapped_column(
        ForeignKey("spaces.id", ondelete="CASCADE"), unique=True
    )
    facility_id: Mapped[str | None] = mapped_column(ForeignKey("facilities.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(Text, server_default="magnetometer")
    last_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    battery_v: Mapped[float | None] = mapped_column(Float)
    rssi_dbm: Mapped[float | None] = mapped_column(Float)
    # LoRaWAN devices (CONTRACT.md "Real inputs"): DevEUI as 16 lower-case hex digits, the
    # decoder family, and what their frames report besides occupancy (app/devices/).
    dev_eui: Mapped[str | None] = mapped_column(Text, unique=True)
    sensor_model: Mapped[str | None] = mapped_column(Text)
    temperature_c: Mapped[float | None] = mapped_column(Float)
    snr_db: Mapped[float | None] = mapped_column(Float)
    last_fcnt: Mapped[int | None] = mapped_column(BigInteger)
    last_reset_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    firmware: Mapped[str | None] = mapped_column(Text)


class ParkingRule(Base):
    """A rule in force on ``days`` between ``start_time`` and ``end_time`` local time.

    ``end_time <= start_time`` means the window crosses midnight. Exactly one of facility,
    space or zone says where it applies. ``day_mask`` bit 0 = Monday … bit 6 = Sunday.
    """

    __tablename__ = "parking_rules"
    __table_args__ = (
        CheckConstraint("kind IN ('time_limit', 'no_parking')", name="kind"),
        CheckConstraint(
            "(kind = 'no_parking') OR (max_stay_minutes IS NOT NULL AND max_stay_minutes > 0)",
            name="limit",
        ),
        CheckConstraint(
            "num_nonnulls(facility_id, space_id, zone) = 1", name="one_target"
        ),
        CheckConstraint("day_mask BETWEEN 1 AND 127", name="day_mask"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    facility_id: Mapped[str | None] = mapped_column(
        ForeignKey("facilities.id", ondelete="CASCADE"), index=True
    )
    space_id: Mapped[str | None] = mapped_column(
        ForeignKey("spaces.id", ondelete="CASCADE"), index=True
    )
    zone = mapped_column(Geometry("POLYGON", srid=4326, spatial_index=True), nullable=True)
    kind: Mapped[str] = mapped_column(Text)
    max_stay_minutes: Mapped[int | None] = mapped_column(Integer)
    days: Mapped[str] = mapped_column(Text)  # as written, e.g. "Mo-Sa"
    day_mask: Mapped[int] = mapped_column(Integer)
    start_time: Mapped[time] = mapped_column(Time)
    end_time: Mapped[time] = mapped_column(Time)
    timezone: Mapped[str] = mapped_column(Text, server_default="Asia/Shanghai")
    note: Mapped[str | None] = mapped_column(Text)
