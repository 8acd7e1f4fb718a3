"""Why an input item is not stored: a field path, a bounded reason code, a fix-it message."""

from __future__ import annotations

from dataclasses import dataclass

# A bounded set (metric labels, log fields); the message carries the detail.
REASONS = (
    "not_an_object",
    "unknown_field",
    "missing_field",
    "invalid_field",
    "ts_in_future",
    "ts_too_old",
    "data_too_large",
    "data_too_deep",
    "malformed_json",
    "invalid_senml",
)


@dataclass(frozen=True)
class Rejection:
    path: str  # "events[3].value"
    reason: str  # one of REASONS
    message: str
    event_id: str | None = None

    def as_error(self) -> dict:
        return {"path": self.path, "reason": self.reason, "message": self.message}
