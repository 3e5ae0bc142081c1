"""Parking rules (time limits, no-parking hours and zones) and the violations they yield."""

from __future__ import annotations

from datetime import datetime, time

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


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


class Violation(Base):
    __tablename__ = "violations"
    __table_args__ = (
        CheckConstraint("kind IN ('overstay', 'no_parking')", name="kind"),
        # One violation per stay and kind: re-delivered or late events cannot duplicate it.
        UniqueConstraint("space_id", "kind", "stay_since", name="uq_violations_stay"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    space_id: Mapped[str] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"))
    facility_id: Mapped[str] = mapped_column(Text, index=True)
    rule_id: Mapped[int | None] = mapped_column(
        ForeignKey("parking_rules.id", ondelete="SET NULL")
    )
    kind: Mapped[str] = mapped_column(Text)
    stay_since: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    limit_minutes: Mapped[int | None] = mapped_column(Integer)
    geom = mapped_column(Geometry("POINT", srid=4326, spatial_index=True), nullable=False)
