"""{{ cookiecutter.plugin_name }}: the {{ cookiecutter.plugin_name }}_notes table

Revision ID: {{ cookiecutter.plugin_name }}_0001
Revises: 0001_core
"""

import sqlalchemy as sa
from alembic import op

from sensorhub.models.meta import UTCDateTime

# The plugin's own branch, on top of SensorHub's core revision: `upgrade heads` applies it.
revision = "{{ cookiecutter.plugin_name }}_0001"
down_revision = "0001_core"
branch_labels = ("{{ cookiecutter.plugin_name }}",)
depends_on = None

TABLE = "{{ cookiecutter.plugin_name }}_notes"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sensor_id", sa.String(64), nullable=False),
        sa.Column("text", sa.String(500), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["sensor_id"], ["sensors.id"], ondelete="CASCADE",
                                name=op.f(f"fk_{TABLE}_sensor_id_sensors")),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{TABLE}")),
    )
    op.create_index(op.f(f"ix_{TABLE}_sensor_id"), TABLE, ["sensor_id"])


def downgrade() -> None:
    op.drop_index(op.f(f"ix_{TABLE}_sensor_id"), table_name=TABLE)
    op.drop_table(TABLE)
