"""The ingest plugin's tables, on the core's ``Base`` (one metadata, naming conventions).

Their schema comes from the plugin's own Alembic branch ``ingest`` in ``migrations/`` (registered
by ``includeme`` below): change a model, then add a revision there whose ``down_revision`` is the
previous one. ``sensorhub-admin migrate <ini>`` applies it when the plugin is listed.

``ingest_events``: one row per stored event. ``(sensor_id, event_id)`` is unique (NULLs are
distinct on both databases, so events without an ``eventId`` never collide); the
``(sensor_id, ts, id)`` index serves a sensor's reads (keyset pagination over ``(ts, id)``) and
the retention prune. Times are integer epoch microseconds, UTC (see ``parsing``).

``ingest_sensor_stats``: one row per sensor with the counters ``GET /api/v1/sensor`` shows,
updated in the same transaction as the inserts (an upsert increment), so they always equal what
is stored without a ``COUNT(*)`` per request.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from sensorhub.models import Base

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid); PostgreSQL gets a bigint.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class IngestEvent(Base):
    __tablename__ = "ingest_events"
    __table_args__ = (
        UniqueConstraint("sensor_id", "event_id", name="uq_ingest_events_sensor_id_event_id"),
        Index("ix_ingest_events_sensor_id_ts", "sensor_id", "ts", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    sensor_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("sensors.id", ondelete="CASCADE"), nullable=False
    )
    event_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    type: Mapped[str] = mapped_column(String(64), nullable=False)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    unit: Mapped[str | None] = mapped_column(String(32), nullable=True)
    ts: Mapped[int] = mapped_column(BigInteger, nullable=False)  # epoch µs, UTC
    received_at: Mapped[int] = mapped_column(BigInteger, nullable=False)  # epoch µs, UTC
    data: Mapped[str | None] = mapped_column(Text, nullable=True)  # a JSON object, compact


class IngestSensorStats(Base):
    __tablename__ = "ingest_sensor_stats"

    sensor_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("sensors.id", ondelete="CASCADE"), primary_key=True
    )
    event_count: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    duplicate_count: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    rejected_count: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    last_event_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # max(ts)


# A declarative class with a __tablename__ is mapped to a Table; __table__ is typed as its base.
events_table = cast(Table, IngestEvent.__table__)
stats_table = cast(Table, IngestSensorStats.__table__)


def includeme(config) -> None:
    config.add_migrations(f"{__package__}:migrations")
