"""auth: sensor tokens (hashes only)

Revision ID: auth_0001
Revises: 0001_core
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

from sensorhub.models.meta import UTCDateTime

# The auth plugin's own branch, on the core's first revision: `upgrade heads` applies it when
# the plugin is loaded (its includeme registers this folder). Ids and labels never change:
# databases migrated when this file lived in sensorhub/migrations/versions keep upgrading.
revision = "auth_0001"
down_revision = "0001_core"
branch_labels = ("auth",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sensor_tokens",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("sensor_id", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("hint", sa.String(16), nullable=False),
        sa.Column("issued_by", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["sensor_id"],
            ["sensors.id"],
            ondelete="CASCADE",
            name=op.f("fk_sensor_tokens_sensor_id_sensors"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sensor_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_sensor_tokens_token_hash")),
    )
    op.create_index(op.f("ix_sensor_tokens_sensor_id"), "sensor_tokens", ["sensor_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_sensor_tokens_sensor_id"), table_name="sensor_tokens")
    op.drop_table("sensor_tokens")
