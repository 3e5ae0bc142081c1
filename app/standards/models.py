"""NGSI-LD subscriptions: what a city platform asked to be told, and how delivery is going."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Integer, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base


class NgsiSubscription(Base):
    """One subscription; ``spec`` is the subscription as stored (NGSI-LD terms, compacted)."""

    __tablename__ = "ngsi_subscriptions"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'paused', 'expired')", name="status"),
        CheckConstraint("throttling_s >= 0", name="throttling"),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    owner_key_id: Mapped[str] = mapped_column(Text)
    owner_operator_id: Mapped[str | None] = mapped_column(Text)
    spec: Mapped[dict[str, object]] = mapped_column(JSONB)
    entity_types: Mapped[list[str]] = mapped_column(ARRAY(Text))
    watched_attributes: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    endpoint_uri: Mapped[str] = mapped_column(Text)
    throttling_s: Mapped[int] = mapped_column(Integer, server_default="0")
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(Text, server_default="active")
    times_sent: Mapped[int] = mapped_column(BigInteger, server_default="0")
    times_failed: Mapped[int] = mapped_column(BigInteger, server_default="0")
    last_notification: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_success: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_failure: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    modified_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
