"""The auth plugin's tables: sensor tokens and the credential generation (the ``sensors`` table
itself is the core's).

A sensor holds any number of tokens; a token is usable while it is neither revoked nor expired
and its sensor is not disabled. Only the SHA-256 of a token is stored (see ``tokens.py``), under
a unique index: authenticating is one indexed lookup.

Its schema comes from the plugin's own Alembic branch ``auth`` in ``migrations/`` (registered by
``includeme`` below): change the model, then add a revision there whose ``down_revision`` is the
previous one. ``sensorhub-admin migrate <ini>`` applies it when the plugin is listed.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from sensorhub.models import Base
from sensorhub.models.meta import UTCDateTime
from sensorhub.timestamps import utcnow


def new_token_id() -> str:
    return "tok_" + secrets.token_urlsafe(12)


class SensorToken(Base):
    __tablename__ = "sensor_tokens"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_token_id)
    sensor_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("sensors.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    hint: Mapped[str] = mapped_column(String(16))
    issued_by: Mapped[str] = mapped_column(String(32))  # admin, provisioning, cli
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


class CredentialGeneration(Base):
    """One row (id 1) whose number grows with every committed change to a sensor or a token.

    Any process that remembers token lookups reads it first on every request: one primary-key
    read tells whether a revocation, a disabled sensor or a deletion was committed anywhere
    (another server, another node, ``sensorhub-admin``) since the lookup was made.
    """

    __tablename__ = "credential_generation"

    id: Mapped[int] = mapped_column(primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)


def includeme(config) -> None:
    config.add_migrations(f"{__package__}:migrations")
