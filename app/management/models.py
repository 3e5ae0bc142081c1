"""The management rollups: one row per facility and UTC hour, the stays of that hour by whole
minutes, the hours ingest has touched since the last refresh, and recorded fee changes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    SmallInteger,
    Text,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base


class HourlyRollup(Base):
    """What a facility's history says about one UTC hour (seconds are space-seconds unless said).

    ``space_s`` = spaces × 3600 (the hour's whole supply); ``known_s`` the part with data,
    ``occupied_s`` the occupied part of that. ``data_s`` (facility-seconds with at least one
    space known), ``full_s`` (≥ 85 % of the known spaces occupied) and ``idle_s`` (< 30 %) are
    plain seconds. ``stays``/``stay_s``: stays that ended in the hour and their total length.
    """

    __tablename__ = "management_hourly"
    __table_args__ = (Index("ix_management_hourly_hour", "hour"),)

    facility_id: Mapped[str] = mapped_column(ForeignKey("facilities.id", ondelete="CASCADE"), primary_key=True)
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    # the hour's local hour of day and ISO weekday in the facility's time zone (no per-row
    # time-zone conversion when figures are grouped by them)
    local_hour: Mapped[int] = mapped_column(SmallInteger)
    local_weekday: Mapped[int] = mapped_column(SmallInteger)
    spaces: Mapped[int] = mapped_column(Integer)
    space_s: Mapped[float] = mapped_column(Float)
    known_s: Mapped[float] = mapped_column(Float)
    occupied_s: Mapped[float] = mapped_column(Float)
    data_s: Mapped[float] = mapped_column(Float)
    full_s: Mapped[float] = mapped_column(Float)
    idle_s: Mapped[float] = mapped_column(Float)
    peak: Mapped[float | None] = mapped_column(Float)
    stays: Mapped[int] = mapped_column(Integer)
    stay_s: Mapped[float] = mapped_column(Float)


class StayMinutes(Base):
    """How many stays of ``minutes`` whole minutes ended in a facility's hour (for medians)."""

    __tablename__ = "management_stays"

    facility_id: Mapped[str] = mapped_column(ForeignKey("facilities.id", ondelete="CASCADE"), primary_key=True)
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    minutes: Mapped[int] = mapped_column(Integer, primary_key=True)
    local_hour: Mapped[int] = mapped_column(SmallInteger)
    local_weekday: Mapped[int] = mapped_column(SmallInteger)
    n: Mapped[int] = mapped_column(Integer)


class DirtyHour(Base):
    """An hour whose events changed since the last refresh (written by statement triggers on the
    history tables; no key, so concurrent ingest transactions never wait on each other)."""

    __tablename__ = "management_dirty"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RollupState(Base):
    """One row: every hour before ``watermark`` has been rolled up at least once."""

    __tablename__ = "management_state"

    id: Mapped[bool] = mapped_column(Boolean, primary_key=True, server_default="true")
    watermark: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PriceChange(Base):
    """A fee change the city made (recorded by ``citypark pricing report --record``): the
    once-per-period limit of the pricing rule counts from the latest one per facility and band."""

    __tablename__ = "management_price_changes"
    __table_args__ = (Index("ix_management_price_changes_facility", "facility_id", "band", "changed_at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    facility_id: Mapped[str] = mapped_column(ForeignKey("facilities.id", ondelete="CASCADE"))
    band: Mapped[str] = mapped_column(Text)
    fee: Mapped[float] = mapped_column(Float)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
