"""A geography GiST index on spaces: matching's candidate query in one pass

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 22:00:00

The candidates of ``POST /v1/assignments`` (and ``GET /v1/spaces/free`` before the in-memory
index is loaded) are the k nearest free spaces by true distance in metres. Over the degree
index on ``geom`` that took two passes (KNN in degrees, then a re-rank within the bound found);
over ``geom::geography`` both ``<->`` and ``ST_DWithin`` in metres use the index directly.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE INDEX ix_spaces_geog ON spaces USING gist ((geom::geography))")


def downgrade() -> None:
    op.drop_index("ix_spaces_geog", table_name="spaces")
