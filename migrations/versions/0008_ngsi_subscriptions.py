"""NGSI-LD subscriptions (issue 15)

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-02 08:00:00

One row per subscription: the stored subscription (``spec``), the columns the notifier selects
on (entity types, watched attributes, expiry, status) and the delivery record it keeps
(timesSent, lastNotification, lastSuccess, lastFailure). ``NOTIFY ngsi_subscriptions`` on any
change lets the notifier reload at once instead of waiting for its periodic pass.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ngsi_subscriptions",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("owner_key_id", sa.Text(), nullable=False),
        sa.Column("owner_operator_id", sa.Text(), nullable=True),
        sa.Column("spec", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("entity_types", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("watched_attributes", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("endpoint_uri", sa.Text(), nullable=False),
        sa.Column("throttling_s", sa.Integer(), server_default="0", nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.Text(), server_default="active", nullable=False),
        sa.Column("times_sent", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("times_failed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("last_notification", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failure", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failure_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("status IN ('active', 'paused', 'expired')", name=op.f("ck_ngsi_subscriptions_status")),
        sa.CheckConstraint("throttling_s >= 0", name=op.f("ck_ngsi_subscriptions_throttling")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ngsi_subscriptions")),
    )
    op.execute("""
        CREATE FUNCTION ngsi_subscriptions_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('ngsi_subscriptions', '');
            RETURN NULL;  -- one notification per transaction: NOTIFY folds equal payloads
        END $$""")
    op.execute("""
        CREATE TRIGGER ngsi_subscriptions_changed AFTER INSERT OR DELETE OR UPDATE OF spec, status, expires_at
        ON ngsi_subscriptions FOR EACH ROW EXECUTE FUNCTION ngsi_subscriptions_changed()""")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS ngsi_subscriptions_changed ON ngsi_subscriptions")
    op.execute("DROP FUNCTION IF EXISTS ngsi_subscriptions_changed()")
    op.drop_table("ngsi_subscriptions")
