"""SensorHub's built-in plugins. Each ``plugins/<name>/`` has an ``includeme(config)`` and is
registered under its short name in the ``sensorhub.plugins`` entry-point group (setup.cfg).
No plugin imports another; they meet only through the core's contracts."""
