"""Stored forecast models: one row per training run (``citypark forecast train``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Identity, Integer, LargeBinary, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base


class ForecastModel(Base):
    """A trained model: the pickled artifact, its training window ``[train_since, train_until)``
    and its metrics on the held-out end of that window."""

    __tablename__ = "forecast_models"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    trained_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    train_since: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    train_until: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    facilities: Mapped[int] = mapped_column(Integer)
    samples: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, object]] = mapped_column(JSONB, server_default="{}")
    artifact: Mapped[bytes] = mapped_column(LargeBinary)
