"""Sensors: the central noun. Every plugin refers to them, so the table lives in the core;
credentials and event data live in the plugins that own them."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from ..timestamps import utcnow
from .meta import Base, UTCDateTime


def new_sensor_id() -> str:
    """Opaque and URL-safe: a readable prefix and 16 random bytes (128 bits) in base64url."""
    return "sen_" + secrets.token_urlsafe(16)


class Sensor(Base):
    __tablename__ = "sensors"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_sensor_id)
    name: Mapped[str] = mapped_column(String(200))
    # "metadata" is reserved on declarative classes, hence the attribute name.
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
