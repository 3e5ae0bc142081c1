"""Driver assignments and the holds they place on spaces."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Float, ForeignKey, Text, func
from sqlalchemy.dialects.postgresql import JSONB, TSTZRANGE, UUID, ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base

ASSIGNMENT_STATUSES = ("held", "reassigned", "arrived", "expired", "cancelled", "lost")
ACTIVE_STATUSES = ("held", "reassigned")


class Assignment(Base):
    """A driver's assignment; while active it holds ``space_id`` for the ``hold`` period.

    The exclusion constraint is the conflict guarantee: no two active assignments may hold
    the same space over overlapping periods, whichever API process writes them. Expiry needs
    no sweeper for correctness: an expired hold's period no longer overlaps a new one.
    """

    __tablename__ = "assignments"
    __table_args__ = (
        CheckConstraint(
            "status IN ('held', 'reassigned', 'arrived', 'expired', 'cancelled', 'lost')", name="status"
        ),
        ExcludeConstraint(
            ("space_id", "="),
            ("hold", "&&"),
            where="status IN ('held', 'reassigned') AND space_id IS NOT NULL",
            using="gist",
            name="ex_assignments_one_hold_per_space",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL"), index=True
    )
    # A held space; NULL with facility_id set = a facility-level hold on a gate-counted lot.
    space_id: Mapped[str | None] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"))
    facility_id: Mapped[str] = mapped_column(ForeignKey("facilities.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(Text, server_default="held")
    hold = mapped_column(TSTZRANGE, nullable=False)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    # the point of the original request, kept by the first position report (NULL: lat/lon are it)
    origin_lat: Mapped[float | None] = mapped_column(Float)
    origin_lon: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(Text)  # why it ended ``lost`` (``no_free_space``)
    dest_lat: Mapped[float | None] = mapped_column(Float)
    dest_lon: Mapped[float | None] = mapped_column(Float)
    preferences: Mapped[dict[str, object]] = mapped_column(JSONB, server_default="{}")
    previous_space_ids: Mapped[list[str]] = mapped_column(JSONB, server_default="[]")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
