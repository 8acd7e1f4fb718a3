"""Why an input item is not stored: the core's field error, with a reason code that is always
set and the item's own ``eventId`` (echoed in the item's result)."""

from __future__ import annotations

from sensorhub.errors import FieldError

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


class Rejection(FieldError):
    reason: str

    def __init__(self, path: str, reason: str, message: str, event_id: str | None = None):
        """``Rejection("events[3].value", "invalid_field", "value must be a number")``:
        arguments in the order of the JSON entry; ``reason`` is one of :data:`REASONS`."""
        super().__init__(path, message, reason)
        self.event_id = event_id
        self.errors: list[dict] = [self.as_error()]  # every problem of the item, this first

    @classmethod
    def of(cls, problems: list, event_id: str | None = None) -> Rejection:
        """One item's rejection from every problem found in it (field errors or their dicts):
        the first names it (its path and reason are counted and shown), all are listed."""
        entries = [p.as_error() if isinstance(p, FieldError) else dict(p) for p in problems]
        first = entries[0]
        rejection = cls(str(first["path"]), str(first["reason"]), str(first["message"]), event_id)
        rejection.errors = entries
        return rejection
