"""``pshell <ini>``: an interactive shell with the app's registry and a live transaction."""

from typing import Any


def setup(env: dict[str, Any]) -> None:
    request = env["request"]
    # The explicit transaction manager needs a begun transaction before the session is used.
    request.tm.begin()
    env["tm"] = request.tm
    env["dbsession"] = request.dbsession
    import sensorhub.models

    env["models"] = sensorhub.models
