"""SensorHub's sensor-side client: store-and-forward delivery of events, exactly once.

from sensorhub_client import Client

with Client("http://127.0.0.1:6543", token, spool="/var/lib/mysensor/spool.sqlite") as client:
    client.send({"type": "temperature", "value": 21.5, "unit": "Cel"})
"""

from .__version__ import __version__
from .client import Client, ClientError, ServerRefused, Stats, TokenRefused
from .ids import new_event_id, uuid7
from .spool import Rejected, Spool, SpoolBusy

__all__ = [
    "Client",
    "ClientError",
    "Rejected",
    "ServerRefused",
    "Spool",
    "SpoolBusy",
    "Stats",
    "TokenRefused",
    "__version__",
    "new_event_id",
    "uuid7",
]
