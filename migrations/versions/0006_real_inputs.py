"""Real inputs: LoRaWAN devices on sensors, sensor resets, gate passages

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 08:00:00

Sensors gain their LoRaWAN identity (``dev_eui``, unique, lower-case hex; ``sensor_model``,
the decoder family) and what their frames report besides occupancy (temperature, SNR, the
last frame counter, firmware, the last reset). ``sensor_resets`` keeps every reset (start-up
frames, frame-counter restarts). ``passages`` holds the gate passages of counted lots with
the plate only as a keyed hash.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SENSOR_COLUMNS = (
    ("dev_eui", sa.Text()), ("sensor_model", sa.Text()), ("temperature_c", sa.Float()),
    ("snr_db", sa.Float()), ("last_fcnt", sa.BigInteger()),
    ("last_reset_at", sa.DateTime(timezone=True)), ("firmware", sa.Text()),
)


def upgrade() -> None:
    for name, type_ in SENSOR_COLUMNS:
        op.add_column("sensors", sa.Column(name, type_, nullable=True))
    op.create_unique_constraint(op.f("uq_sensors_dev_eui"), "sensors", ["dev_eui"])
    op.create_check_constraint(op.f("ck_sensors_dev_eui"), "sensors", "dev_eui ~ '^[0-9a-f]{16}$'")
    op.create_check_constraint(
        op.f("ck_sensors_sensor_model"), "sensors",
        "sensor_model IN ('bosch-tps110', 'nwave-nps310', 'netvox-r719a', 'decoded')")
    op.create_table(
        "sensor_resets",
        sa.Column("sensor_id", sa.Text(), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("firmware", sa.Text(), nullable=True),
        sa.Column("fcnt", sa.BigInteger(), nullable=True),
        sa.Column("source", sa.Text(), server_default="mqtt", nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["sensor_id"], ["sensors.id"], name=op.f("fk_sensor_resets_sensor_id_sensors"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("sensor_id", "observed_at", "cause", name=op.f("pk_sensor_resets")),
    )
    op.create_table(
        "passages",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("facility_id", sa.Text(), nullable=False),
        sa.Column("passage_id", sa.Text(), nullable=False),
        sa.Column("direction", sa.Text(), nullable=True),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lane", sa.Text(), nullable=True),
        sa.Column("plate_hash", sa.LargeBinary(), nullable=True),
        sa.Column("void_of", sa.Text(), nullable=True),
        sa.Column("voided_by", sa.Text(), nullable=True),
        sa.Column("entry_id", sa.BigInteger(), nullable=True),
        sa.Column("stay_s", sa.Integer(), nullable=True),
        sa.Column("free_after", sa.Integer(), nullable=True),
        sa.Column("flags", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("source", sa.Text(), server_default="mqtt", nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("direction IN ('in', 'out')", name=op.f("ck_passages_direction")),
        sa.CheckConstraint("direction IS NOT NULL OR void_of IS NOT NULL", name=op.f("ck_passages_void_or_passage")),
        sa.ForeignKeyConstraint(["facility_id"], ["facilities.id"], name=op.f("fk_passages_facility_id_facilities"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_passages")),
        sa.UniqueConstraint("facility_id", "passage_id", name="uq_passages_identity"),
    )
    op.create_index("ix_passages_facility_time", "passages", ["facility_id", "observed_at"])
    op.create_index("ix_passages_plate", "passages", ["facility_id", "plate_hash"],
                    postgresql_where=sa.text("plate_hash IS NOT NULL"))
    op.create_index("ix_passages_retention", "passages", ["observed_at"],
                    postgresql_where=sa.text("plate_hash IS NOT NULL"))


def downgrade() -> None:
    op.drop_table("passages")
    op.drop_table("sensor_resets")
    op.drop_constraint(op.f("ck_sensors_sensor_model"), "sensors", type_="check")
    op.drop_constraint(op.f("ck_sensors_dev_eui"), "sensors", type_="check")
    op.drop_constraint(op.f("uq_sensors_dev_eui"), "sensors", type_="unique")
    for name, _ in reversed(SENSOR_COLUMNS):
        op.drop_column("sensors", name)
