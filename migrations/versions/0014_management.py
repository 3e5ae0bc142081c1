"""City management: the manager role, hourly rollups, dirty-hour triggers, fee changes (issue 16)

Revision ID: 0014
Revises: 0010
Create Date: 2026-12-02 15:00:00

``management_hourly`` holds one row per facility and UTC hour (space-seconds known and
occupied, seconds full/idle, stays); ``management_stays`` the stays of each hour by whole
minutes. Statement-level triggers on the three history tables append the hours a statement
touched to ``management_dirty`` (a plain append: no key, so ingest transactions never wait on
each other); ``app.management.rollups.refresh`` recomputes just those hours and the ones that
completed since its watermark.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)
# (table, trigger events, the time column of its rows)
WATCHED = (("occupancy_events", "INSERT", "observed_at"), ("count_events", "INSERT", "observed_at"),
           ("passages", "INSERT", "observed_at"), ("passages", "UPDATE", "observed_at"))


def upgrade() -> None:
    op.drop_constraint("role", "api_keys", type_="check")
    op.create_check_constraint("role", "api_keys", "role IN ('driver', 'operator', 'enforcement', 'manager', 'admin')")
    _tables()
    op.execute("""
CREATE FUNCTION citypark_management_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO management_dirty (hour)
    SELECT DISTINCT date_bin('1 hour', observed_at, TIMESTAMPTZ '2000-01-01 00:00+00') FROM changed;
    RETURN NULL;
END $$""")
    for table, event, _ in WATCHED:
        op.execute(f"CREATE TRIGGER management_dirty_{event.lower()} AFTER {event} ON {table} "
                   f"REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION citypark_management_dirty()")


def _fk() -> sa.ForeignKey:
    return sa.ForeignKey("facilities.id", ondelete="CASCADE")


def _tables() -> None:
    op.create_table(
        "management_hourly",
        sa.Column("facility_id", sa.Text(), _fk(), nullable=False),
        sa.Column("hour", TZ, nullable=False),
        sa.Column("local_hour", sa.SmallInteger(), nullable=False),
        sa.Column("local_weekday", sa.SmallInteger(), nullable=False),
        sa.Column("spaces", sa.Integer(), nullable=False),
        *(sa.Column(c, sa.Float(), nullable=False) for c in
          ("space_s", "known_s", "occupied_s", "data_s", "full_s", "idle_s")),
        sa.Column("peak", sa.Float(), nullable=True),
        sa.Column("stays", sa.Integer(), nullable=False),
        sa.Column("stay_s", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("facility_id", "hour"),
    )
    op.create_index("ix_management_hourly_hour", "management_hourly", ["hour"])
    op.create_table(
        "management_stays",
        sa.Column("facility_id", sa.Text(), _fk(), nullable=False),
        sa.Column("hour", TZ, nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("local_hour", sa.SmallInteger(), nullable=False),
        sa.Column("local_weekday", sa.SmallInteger(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("facility_id", "hour", "minutes"),
    )
    op.create_table(
        "management_dirty",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("hour", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "management_state",
        sa.Column("id", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("watermark", TZ, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "management_price_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("facility_id", sa.Text(), _fk(), nullable=False),
        sa.Column("band", sa.Text(), nullable=False),
        sa.Column("fee", sa.Float(), nullable=False),
        sa.Column("changed_at", TZ, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_management_price_changes_facility", "management_price_changes",
                    ["facility_id", "band", "changed_at"])


def downgrade() -> None:
    for table, event, _ in WATCHED:
        op.execute(f"DROP TRIGGER IF EXISTS management_dirty_{event.lower()} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS citypark_management_dirty()")
    for table in ("management_price_changes", "management_state", "management_dirty", "management_stays",
                  "management_hourly"):
        op.drop_table(table)
    op.execute("DELETE FROM api_keys WHERE role = 'manager'")
    op.drop_constraint("role", "api_keys", type_="check")
    op.create_check_constraint("role", "api_keys", "role IN ('driver', 'operator', 'enforcement', 'admin')")
