"""Gate passages. Plates are never stored: ``plate_hash`` is HMAC-SHA256 under
``CITYPARK_PLATE_KEY`` and is cleared after ``CITYPARK_PLATE_RETENTION_DAYS``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base


class Passage(Base):
    """An entry or exit (or, with ``direction`` NULL, a pure void of another passage).

    ``(facility_id, passage_id)`` identifies one: the same passage delivered twice is stored once.
    ``voided_by`` is set on a passage that a later message voided or corrected; voided passages
    no longer move the count or make stays. ``free_after`` is the free count right after this
    passage as the passages since the facility's last count make it (unclamped: below 0 or above
    capacity it is also in ``flags``).
    """

    __tablename__ = "passages"
    __table_args__ = (
        UniqueConstraint("facility_id", "passage_id", name="uq_passages_identity"),
        CheckConstraint("direction IN ('in', 'out')", name="direction"),
        CheckConstraint("direction IS NOT NULL OR void_of IS NOT NULL", name="void_or_passage"),
        Index("ix_passages_facility_time", "facility_id", "observed_at"),
        Index("ix_passages_plate", "facility_id", "plate_hash", postgresql_where=text("plate_hash IS NOT NULL")),
        Index("ix_passages_retention", "observed_at", postgresql_where=text("plate_hash IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    facility_id: Mapped[str] = mapped_column(ForeignKey("facilities.id", ondelete="CASCADE"))
    passage_id: Mapped[str] = mapped_column(Text)
    direction: Mapped[str | None] = mapped_column(Text)
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    lane: Mapped[str | None] = mapped_column(Text)
    plate_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    void_of: Mapped[str | None] = mapped_column(Text)
    voided_by: Mapped[str | None] = mapped_column(Text)
    entry_id: Mapped[int | None] = mapped_column(BigInteger)
    stay_s: Mapped[int | None] = mapped_column(Integer)
    free_after: Mapped[int | None] = mapped_column(Integer)
    flags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    source: Mapped[str] = mapped_column(Text, server_default="mqtt")
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
