"""Violations of gate-counted lots' time limits, from passage stays (issue 14)

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-02 15:00:00

A lot that counts at the gate has no per-space sensors: its overstays come from the stays its
plate-hash-linked passages make (``app.enforcement.lot_stays``). Such a violation names the
entry passage instead of a space, so ``space_id`` may be NULL when ``entry_passage_id`` is set
(exactly one of the two), and the entry passage with kind and stay start is its key, as
``(space_id, kind, stay_since)`` is for spaces.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("violations", sa.Column("entry_passage_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(op.f("fk_violations_entry_passage"), "violations", "passages", ["entry_passage_id"], ["id"],
                          ondelete="CASCADE")
    op.alter_column("violations", "space_id", nullable=True)
    op.create_check_constraint(op.f("ck_violations_one_subject"), "violations",
                               "(space_id IS NULL) <> (entry_passage_id IS NULL)")
    op.create_unique_constraint(op.f("uq_violations_lot_stay"), "violations", ["entry_passage_id", "kind", "stay_since"])


def downgrade() -> None:
    op.execute("DELETE FROM violations WHERE space_id IS NULL")
    op.drop_constraint(op.f("uq_violations_lot_stay"), "violations", type_="unique")
    op.drop_constraint(op.f("ck_violations_one_subject"), "violations", type_="check")
    op.alter_column("violations", "space_id", nullable=False)
    op.drop_constraint(op.f("fk_violations_entry_passage"), "violations", type_="foreignkey")
    op.drop_column("violations", "entry_passage_id")
