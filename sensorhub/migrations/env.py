"""Alembic environment: runs on the connection SensorHub hands over (never reads an ini)."""

from alembic import context

import sensorhub.models  # noqa: F401  (registers the core tables on Base.metadata)
from sensorhub.models.meta import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=False,
)
context.run_migrations()
