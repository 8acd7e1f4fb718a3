"""Start-up checks that turn a half-configured multi-process mode into a clear error."""

from __future__ import annotations

import os

from prometheus_client import values

from sensorhub.settings import StartupError


def check_multiprocess(directory: str) -> str:
    """The multi-process directory if that mode is on and really works in this process, "" if
    it is off; a :class:`StartupError` saying what to fix otherwise.

    prometheus-client decides where metric values live once, when it is imported, from the
    process environment. A directory named only in the ini (or an environment injected by a
    test) would give a ``/metrics`` that reads files nobody writes.
    """
    if not directory:
        return ""
    where = "sensorhub.metrics.multiproc_dir (env PROMETHEUS_MULTIPROC_DIR)"
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") != directory or _single_process_values():
        raise StartupError(
            f"{where} is {directory!r}, but this process was not started with "
            "PROMETHEUS_MULTIPROC_DIR set to it: prometheus-client reads that variable from the "
            "environment when it is imported, so the launcher must export it before Python "
            "starts (or leave it unset for a single-process server such as waitress)"
        )
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        raise StartupError(
            f"{where} is {directory!r}, which is not a writable directory: "
            "create it (empty) before starting the workers"
        )
    return directory


def _single_process_values() -> bool:
    return values.ValueClass is values.MutexValue
