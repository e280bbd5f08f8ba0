"""``smrun daemon``: many runs on one engine, kept across restarts, behind an HTTP API.

- :mod:`runner.daemon.service`: the :class:`Daemon` itself, runs under leases.
- :mod:`runner.daemon.api`: the HTTP API (``/v1``), SSE streams, probes, metrics.
- :mod:`runner.daemon.server`: :func:`run_daemon`, which puts it all together.
- ``static/``: the web view, plain HTML, CSS and JavaScript.
"""

from __future__ import annotations

from runner.daemon.server import DaemonConfig, DaemonError, run_daemon
from runner.daemon.service import Daemon, DaemonSettings

__all__ = ["Daemon", "DaemonConfig", "DaemonError", "DaemonSettings", "run_daemon"]
