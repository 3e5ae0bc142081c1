"""Cheaper ingest: HOT updates of space_state; a (space_id, observed_at) history index

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 21:00:00

space_state is rewritten on every occupancy event. Its indexes on ``observed_at`` and on
``occupied`` (partial) made every update write new index entries; without them, and with a
fillfactor leaving room in each page, PostgreSQL updates the rows in place (HOT). Readers
never range-scan those columns (the free-space path is the spaces GiST index joined by key).
History queries read one space's events in time order, so the space index gains observed_at.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_space_state_free", table_name="space_state")
    op.drop_index("ix_space_state_observed_at", table_name="space_state")
    op.execute("ALTER TABLE space_state SET (fillfactor = 70)")
    op.create_index("ix_occupancy_events_space_time", "occupancy_events", ["space_id", "observed_at"])
    op.drop_index("ix_occupancy_events_space_id", table_name="occupancy_events")


def downgrade() -> None:
    op.create_index("ix_occupancy_events_space_id", "occupancy_events", ["space_id"])
    op.drop_index("ix_occupancy_events_space_time", table_name="occupancy_events")
    op.execute("ALTER TABLE space_state RESET (fillfactor)")
    op.create_index("ix_space_state_observed_at", "space_state", ["observed_at"])
    op.execute("CREATE INDEX ix_space_state_free ON space_state (space_id) WHERE occupied IS FALSE")
