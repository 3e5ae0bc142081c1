"""matching: NOTIFY on assignment changes

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-29 20:00:00

- ``citypark_assignments_notify``: after an assignment's space or status changes (re-assignment,
  arrival, cancellation, expiry), ``NOTIFY assignments`` with ``{"id", "space_id",
  "old_space_id", "facility_id", "status"}``. API processes listen to keep their in-memory
  free-space index current and to push the change on the driver's SSE stream, whichever process
  made it. New holds are not notified: PostgreSQL serialises the commits of notifying
  transactions, which would cap assignments at one commit (fsync) at a time; processes poll
  new holds instead (cheap, through the exclusion constraint's GiST index on ``hold``).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION citypark_assignments_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('assignments', json_build_object(
        'id', NEW.id,
        'space_id', NEW.space_id,
        'old_space_id', OLD.space_id,
        'facility_id', NEW.facility_id,
        'status', NEW.status)::text);
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    op.execute(NOTIFY_FUNCTION)
    op.execute(
        "CREATE TRIGGER assignments_notify AFTER UPDATE OF status, space_id "
        "ON assignments FOR EACH ROW EXECUTE FUNCTION citypark_assignments_notify()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS assignments_notify ON assignments")
    op.execute("DROP FUNCTION IF EXISTS citypark_assignments_notify()")
