"""Violations: what the rules (``app.inventory.models.ParkingRule``) yield against the live state."""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base


class Violation(Base):
    __tablename__ = "violations"
    __table_args__ = (
        CheckConstraint("kind IN ('overstay', 'no_parking')", name="kind"),
        # One violation per stay and kind: re-delivered or late events cannot duplicate it.
        UniqueConstraint("space_id", "kind", "stay_since", name="uq_violations_stay"),
        # A gate-counted lot's overstay names its entry passage instead (app.enforcement.lot_stays).
        UniqueConstraint("entry_passage_id", "kind", "stay_since", name="uq_violations_lot_stay"),
        CheckConstraint("(space_id IS NULL) <> (entry_passage_id IS NULL)", name="one_subject"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    space_id: Mapped[str | None] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"))
    entry_passage_id: Mapped[int | None] = mapped_column(
        ForeignKey("passages.id", ondelete="CASCADE", name="fk_violations_entry_passage"))
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
