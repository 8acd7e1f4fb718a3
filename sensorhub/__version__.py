"""The one place SensorHub's version lives (setup.cfg and /api/v1/ read it from here)."""

VERSION = (0, 1, 0)
__version__ = ".".join(str(part) for part in VERSION)
