"""api_keys.max_holds: how many active holds a driver key may have (NULL = the setting)

Revision ID: 0011
Revises: 0005
Create Date: 2026-12-02 08:00:00

Issue 18: one driver key could hold half the district. ``CITYPARK_MAX_HOLDS_PER_DRIVER``
(default 1) caps every driver key; a fleet key is given more with
``citypark keys create --role driver --max-holds N``. An index on the active holds per key
keeps the check one index probe.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("max_holds", sa.Integer(), nullable=True))
    op.create_check_constraint("max_holds", "api_keys", "max_holds IS NULL OR max_holds >= 1")


def downgrade() -> None:
    op.drop_constraint("max_holds", "api_keys", type_="check")
    op.drop_column("api_keys", "max_holds")
