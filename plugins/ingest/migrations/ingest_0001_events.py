"""ingest: the events table and the per-sensor counters

Revision ID: ingest_0001
Revises: 0001_core
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

# The ingest plugin's own branch, on the core's first revision: `upgrade heads` applies it when
# the plugin is loaded (its includeme registers this folder). Ids and labels never change:
# databases migrated when this file lived in sensorhub/migrations/versions keep upgrading.
revision = "ingest_0001"
down_revision = "0001_core"
branch_labels = ("ingest",)
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ingest_events",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("sensor_id", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("unit", sa.String(32), nullable=True),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_events")),
        sa.ForeignKeyConstraint(
            ["sensor_id"],
            ["sensors.id"],
            ondelete="CASCADE",
            name=op.f("fk_ingest_events_sensor_id_sensors"),
        ),
        sa.UniqueConstraint("sensor_id", "event_id", name="uq_ingest_events_sensor_id_event_id"),
    )
    op.create_index("ix_ingest_events_sensor_id_ts", "ingest_events", ["sensor_id", "ts", "id"])
    op.create_table(
        "ingest_sensor_stats",
        sa.Column("sensor_id", sa.String(64), nullable=False),
        sa.Column("event_count", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("duplicate_count", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("rejected_count", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("last_event_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("sensor_id", name=op.f("pk_ingest_sensor_stats")),
        sa.ForeignKeyConstraint(
            ["sensor_id"],
            ["sensors.id"],
            ondelete="CASCADE",
            name=op.f("fk_ingest_sensor_stats_sensor_id_sensors"),
        ),
    )


def downgrade() -> None:
    op.drop_table("ingest_sensor_stats")
    op.drop_index("ix_ingest_events_sensor_id_ts", table_name="ingest_events")
    op.drop_table("ingest_events")
