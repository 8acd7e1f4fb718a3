"""The plugin's settings: keys ``sensorhub.<plugin>.<name>``, env ``SENSORHUB_<PLUGIN>_<NAME>``.

Each is declared once, typed by its parser, with a default and one line of help (it shows in
``sensorhub-admin settings`` and in SensorHub's settings reference). Mark tokens and passwords
``secret=True``; leave ``default`` out to make a key required.
"""

from sensorhub.settings import Setting, as_int, as_str

NAME = "{{ cookiecutter.plugin_name }}"

GREETING = f"sensorhub.{NAME}.greeting"
RECENT_LIMIT = f"sensorhub.{NAME}.recent_limit"

SETTINGS = (
    Setting(GREETING, as_str, "hello", f"what GET /api/v1/{NAME}/ says (an example: replace it)"),
    Setting(RECENT_LIMIT, as_int(1, 1000), 10,
            f"how many recent ingestions GET /api/v1/{NAME}/ lists"),
)
