"""API keys: only a hash is stored; the key is shown once, when created."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Integer, Text, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base

ROLES = ("driver", "operator", "enforcement", "manager", "admin")


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint("role IN ('driver', 'operator', 'enforcement', 'manager', 'admin')", name="role"),
        CheckConstraint("(role = 'operator') = (operator_id IS NOT NULL)", name="operator"),
        CheckConstraint("max_holds IS NULL OR max_holds >= 1", name="max_holds"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    # sha256 of the whole key; keys carry 256 bits of randomness, so a fast hash is enough.
    key_hash: Mapped[str] = mapped_column(Text, unique=True)
    prefix: Mapped[str] = mapped_column(Text)  # shown in listings, e.g. "cpk_ab12"
    role: Mapped[str] = mapped_column(Text)
    operator_id: Mapped[str | None] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # active holds a driver key may have at once; NULL = CITYPARK_MAX_HOLDS_PER_DRIVER (a fleet key: more)
    max_holds: Mapped[int | None] = mapped_column(Integer)
