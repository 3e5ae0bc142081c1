"""Sensor resets: start-up frames and frame-counter restarts (the sensor's own columns are in
``app.inventory.models.Sensor``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, PrimaryKeyConstraint, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base


class SensorReset(Base):
    """One reset of a sensor: ``cause`` is the device's (start-up frame) or ``fcnt_reset``."""

    __tablename__ = "sensor_resets"
    __table_args__ = (PrimaryKeyConstraint("sensor_id", "observed_at", "cause"),)

    sensor_id: Mapped[str] = mapped_column(ForeignKey("sensors.id", ondelete="CASCADE"))
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    cause: Mapped[str] = mapped_column(Text)
    firmware: Mapped[str | None] = mapped_column(Text)
    fcnt: Mapped[int | None] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(Text, server_default="mqtt")
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
