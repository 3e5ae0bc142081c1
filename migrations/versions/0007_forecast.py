"""Forecasts: the facility time zone, stored forecast models

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-02 08:00:00

- ``facilities.timezone``: the facility's IANA time zone (default ``Asia/Shanghai``); the
  forecast's weekly profile (weekday × time of day) is computed in it, and the history import
  reads ``YYYY-MM-DD HH:MM:SS`` timestamps in it.
- ``forecast_models``: one row per ``citypark forecast train`` run: the pickled model (the
  pooled gradient-boosting regressors, their interval calibration and every facility's weekly
  profile), its training window and its metrics on the held-out end of that window. API
  processes load the newest one whose window ends before the instant they forecast from.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("facilities", sa.Column("timezone", sa.Text(), server_default="Asia/Shanghai", nullable=False))
    op.create_table(
        "forecast_models",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("trained_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("train_since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("train_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("facilities", sa.Integer(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("metrics", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("artifact", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forecast_models")),
    )
    op.create_index(op.f("ix_forecast_models_train_until"), "forecast_models", ["train_until"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_forecast_models_train_until"), table_name="forecast_models")
    op.drop_table("forecast_models")
    op.drop_column("facilities", "timezone")
