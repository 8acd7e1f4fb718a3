"""HTTP to one SensorHub: a kept-alive connection, bearer token, JSON, gzip above a size.

Only the standard library (``http.client``): a sensor installs nothing else. Any failure to get
an answer (refused, reset, timed out, a half-read response) is a :class:`ConnectionFailed`, and
the connection is dropped, so the next request opens a new one.
"""

from __future__ import annotations

import gzip
import http.client
import json
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from .__version__ import __version__

USER_AGENT = f"sensorhub-client/{__version__}"
# The server closes idle keep-alive connections after a few seconds (sensorhub.keepalive, 5 s
# by default); one idle longer than this is not reused, so a request never races that close.
REUSE_IDLE_SECONDS = 2.0


class ConnectionFailed(Exception):
    """No answer from the server (its reason is in the message); the request may or may not
    have been processed."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> object:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def retry_after(self) -> float | None:
        """``Retry-After`` in seconds (delta-seconds or an HTTP date), or None."""
        raw = self.headers.get("retry-after")
        if raw is None:
            return None
        raw = raw.strip()
        if raw.isdigit():
            return float(raw)
        try:
            return max(0.0, parsedate_to_datetime(raw).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class Transport:
    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0, gzip_above: int = 4096):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"the server URL must be http://host[:port] or https://…, not {base_url!r}"
            )
        self.base_url = base_url
        self._scheme = parts.scheme
        self._netloc = parts.netloc
        self._prefix = parts.path.rstrip("/")
        self._token = token
        self.timeout = timeout
        self.gzip_above = gzip_above
        self._connection: http.client.HTTPConnection | None = None
        self._last_used = 0.0

    def get(self, path: str) -> Answer:
        return self.request("GET", path)

    def post_json(self, path: str, body: bytes) -> Answer:
        headers = {"Content-Type": "application/json"}
        if len(body) > self.gzip_above:
            body = gzip.compress(body, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        return self.request("POST", path, body, headers)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """One request with the token; raises :class:`ConnectionFailed` when no answer came."""
        headers = {
            **(headers or {}),
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        if self._connection is not None and time.monotonic() - self._last_used > REUSE_IDLE_SECONDS:
            self.close()
        connection = self._connection or self._connect()
        try:
            connection.request(method, self._prefix + path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as error:
            self.close()
            raise ConnectionFailed(
                f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            ) from error
        self._last_used = time.monotonic()
        if response.will_close:
            self.close()
        else:
            self._connection = connection
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, payload)

    def _connect(self) -> http.client.HTTPConnection:
        if self._scheme == "https":
            return http.client.HTTPSConnection(self._netloc, timeout=self.timeout)
        return http.client.HTTPConnection(self._netloc, timeout=self.timeout)
