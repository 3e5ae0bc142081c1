"""assignments: the ``lost`` state, its reason, and the point of the original request

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-02 15:00:00

Issue 13: a held space taken by a stranger, with nothing free left around the driver's goal,
ended the assignment as ``expired`` (which means the hold ran out). It now ends ``lost`` with a
``reason`` (``no_free_space``). Re-assignment searches around the driver's goal — the
destination, else the point of the original request — so that point is kept in
``origin_lat``/``origin_lon`` before a position report overwrites ``lat``/``lon`` (NULL: the
assignment has had no position report, ``lat``/``lon`` still are the request's point).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "status IN ('held', 'reassigned', 'arrived', 'expired', 'cancelled')"
NEW = "status IN ('held', 'reassigned', 'arrived', 'expired', 'cancelled', 'lost')"


def upgrade() -> None:
    op.add_column("assignments", sa.Column("origin_lat", sa.Float(), nullable=True))
    op.add_column("assignments", sa.Column("origin_lon", sa.Float(), nullable=True))
    op.add_column("assignments", sa.Column("reason", sa.Text(), nullable=True))
    op.drop_constraint(op.f("ck_assignments_status"), "assignments", type_="check")
    op.create_check_constraint(op.f("ck_assignments_status"), "assignments", NEW)


def downgrade() -> None:
    op.execute("UPDATE assignments SET status = 'expired' WHERE status = 'lost'")
    op.drop_constraint(op.f("ck_assignments_status"), "assignments", type_="check")
    op.create_check_constraint(op.f("ck_assignments_status"), "assignments", OLD)
    op.drop_column("assignments", "reason")
    op.drop_column("assignments", "origin_lon")
    op.drop_column("assignments", "origin_lat")
