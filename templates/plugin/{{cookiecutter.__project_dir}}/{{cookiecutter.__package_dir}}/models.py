"""The plugin's table, on SensorHub's shared ``Base`` (one metadata, naming conventions).

Its schema comes from this plugin's own Alembic branch in ``migrations/`` (registered by
``includeme`` below): change the model, then add a revision there whose ``down_revision`` is the
previous one. ``sensorhub-admin migrate <ini>`` applies it when the plugin is listed.
Timestamps use ``UTCDateTime``: always timezone-aware UTC, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from sensorhub.models import Base
from sensorhub.models.meta import UTCDateTime
from sensorhub.timestamps import utcnow

from .settings import NAME


class {{ cookiecutter.__model_class }}(Base):
    __tablename__ = f"{NAME}_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Deleting a sensor deletes its notes: the plugin never blocks the core's own operations.
    sensor_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("sensors.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def includeme(config) -> None:
    config.add_migrations(f"{__package__}:migrations")
