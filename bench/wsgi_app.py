"""The app for servers that import it by name (granian: ``bench.wsgi_app:app``).

Built at import, in each worker process, from ``$BENCH_APP``: ``hello`` or the path of a
SensorHub ini file (see :func:`bench.serve.build_app`)."""

from __future__ import annotations

import os

from .serve import APP_ENV, build_app

app = build_app(os.environ[APP_ENV])
