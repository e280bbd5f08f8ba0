"""``smrun daemon``: many runs on one engine, kept across restarts, behind an HTTP API.

- :mod:`smrun.daemon.service`: the :class:`Daemon` itself, runs under leases.
- :mod:`smrun.daemon.api`: the HTTP API (``/v1``), SSE streams, probes, metrics.
- :mod:`smrun.daemon.server`: :func:`run_daemon`, which puts it all together.
- ``static/``: the web view, plain HTML, CSS and JavaScript.
"""

from __future__ import annotations

from smrun.daemon.server import DaemonConfig, DaemonError, run_daemon
from smrun.daemon.service import Daemon, DaemonSettings

__all__ = ["Daemon", "DaemonConfig", "DaemonError", "DaemonSettings", "run_daemon"]
