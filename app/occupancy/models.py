"""Occupancy data: the event history (partitioned by month), rejected input, and the current state
(one row per sensor-reported space and per gate-counted facility)."""

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
    PrimaryKeyConstraint,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base


class OccupancyEvent(Base):
    """Every distinct occupancy event; ``(sensor_id, observed_at, seq)`` identifies one."""

    __tablename__ = "occupancy_events"
    __table_args__ = (
        PrimaryKeyConstraint("id", "observed_at"),
        UniqueConstraint(
            "sensor_id", "observed_at", "seq", name="uq_occupancy_events_identity",
            postgresql_nulls_not_distinct=True,
        ),
        # A space's history in time order: facility history, stays, exposure, late events.
        Index("ix_occupancy_events_space_time", "space_id", "observed_at"),
        {"postgresql_partition_by": "RANGE (observed_at)"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity())
    sensor_id: Mapped[str] = mapped_column(Text)
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    seq: Mapped[int | None] = mapped_column(BigInteger)
    space_id: Mapped[str] = mapped_column(Text)
    occupied: Mapped[bool] = mapped_column(Boolean)
    battery_v: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(Text, server_default="mqtt")
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CountEvent(Base):
    """Every distinct gate count; ``(facility_id, observed_at)`` identifies one."""

    __tablename__ = "count_events"
    __table_args__ = (
        PrimaryKeyConstraint("facility_id", "observed_at"),
        {"postgresql_partition_by": "RANGE (observed_at)"},
    )

    facility_id: Mapped[str] = mapped_column(Text)
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    free: Mapped[int] = mapped_column(Integer)
    total: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text, server_default="mqtt")
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RejectedMessage(Base):
    __tablename__ = "rejected_messages"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    topic: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)  # truncated
    reason: Mapped[str] = mapped_column(Text, index=True)
    source: Mapped[str] = mapped_column(Text, server_default="mqtt")
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )


class SpaceState(Base):
    __tablename__ = "space_state"
    # Ingest rewrites these rows all day: no index on a changing column and a fillfactor
    # with room to spare keep every update HOT (in-page, no index writes, little bloat).
    __table_args__ = {"postgresql_with": {"fillfactor": "70"}}

    space_id: Mapped[str] = mapped_column(
        ForeignKey("spaces.id", ondelete="CASCADE"), primary_key=True
    )
    # NULL = unknown (never reported).
    occupied: Mapped[bool | None] = mapped_column(Boolean)
    # When the current occupied/free spell began (first event of the spell).
    since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    observed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    seq: Mapped[int | None] = mapped_column(BigInteger)
    # Last message of any kind (occupancy or heartbeat) from the space's sensor.
    last_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    source: Mapped[str | None] = mapped_column(Text)


class FacilityCount(Base):
    __tablename__ = "facility_counts"

    facility_id: Mapped[str] = mapped_column(
        ForeignKey("facilities.id", ondelete="CASCADE"), primary_key=True
    )
    free: Mapped[int | None] = mapped_column(Integer)
    total: Mapped[int | None] = mapped_column(Integer)
    observed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    source: Mapped[str | None] = mapped_column(Text)
