"""The core's tables. Plugins define their own models on the same ``Base`` (one metadata, one
Alembic history) and import them from here, never from another plugin."""

from .meta import Base
from .sensor import Sensor

__all__ = ["Base", "Sensor"]
