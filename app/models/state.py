"""Current state: one row per space (sensor-reported) and per gate-counted facility."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


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
