"""``pshell <ini>``: an interactive shell with the app's registry and a live transaction."""


def setup(env):
    request = env["request"]
    # The explicit transaction manager needs a begun transaction before the session is used.
    request.tm.begin()
    env["tm"] = request.tm
    env["dbsession"] = request.dbsession
    import sensorhub.models

    env["models"] = sensorhub.models
