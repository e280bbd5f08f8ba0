"""Putting a daemon together: the engine, the store, the HTTP server, and its shutdown.

:func:`run_daemon` is what ``smrun daemon`` calls, and what a test or a
script can call too: ``await tg.start(run_daemon, config)`` returns the URL
once the server listens and the daemon holds its runs.

With a state directory (SQLite), one daemon at a time may use it: a lock
file says so, and the daemon's lease owner is the directory's own name, so a
restarted daemon takes up its runs at once instead of waiting for their
leases to expire. With PostgreSQL, each daemon is its own owner, and a run
of a daemon that died is taken over once its lease expires.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import socket
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO

import anyio
from aiohttp import web
from anyio.abc import TaskStatus

from smrun.aws import AwsConfig
from smrun.daemon.api import create_app
from smrun.daemon.metrics import Metrics
from smrun.daemon.service import Daemon, DaemonSettings, new_owner
from smrun.daemon.submissions import consume
from smrun.engine import Engine
from smrun.kind import Kind
from smrun.manifest import DEFAULT_MAX_MATRIX
from smrun.settings import Settings
from smrun.store import Store
from smrun.store.open import open_store


class DaemonError(Exception):
    """The daemon can't start as configured; the message says why and what to do."""


@dataclass
class DaemonConfig:
    kinds: Mapping[str, Kind]
    host: str = "127.0.0.1"
    port: int = 8080
    state: str = ""  # a state directory, or a postgresql:// URL
    token: str | None = None
    local: bool = False
    aws: AwsConfig = field(default_factory=AwsConfig)
    settings: Settings | None = None
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    owner: str | None = None
    max_matrix: int = DEFAULT_MAX_MATRIX
    queue_url: str | None = None
    log: Callable[[str, str], None] | None = None  # (level, message)
    local_quotas: Mapping[str, float] | None = None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_token(host: str, token: str | None) -> None:
    """Anything but loopback needs a bearer token."""
    if token is None and not is_loopback(host):
        raise DaemonError(
            f"listening on {host} needs a bearer token\n"
            "  fix: --token-file FILE, or SMRUN_TOKEN in the environment "
            "(or --listen 127.0.0.1:PORT)")
    if token is not None and len(token) < 16:
        raise DaemonError("the bearer token is shorter than 16 characters\n"
                          "  fix: a random one, e.g. `python -c 'import secrets; "
                          "print(secrets.token_urlsafe(32))'`")


def read_token(path: str | None, environ: Mapping[str, str]) -> str | None:
    if path:
        try:
            token = Path(path).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise DaemonError(f"--token-file {path}: {error.strerror or error}") from None
        if not token:
            raise DaemonError(f"--token-file {path} is empty")
        return token
    return environ.get("SMRUN_TOKEN") or None


def _lock(path: str) -> tuple[Path, IO[str]]:
    """The state directory, and the lock that makes it this daemon's."""
    state_dir = Path(path).expanduser().resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    handle = open(state_dir / "daemon.lock", "w")  # held for the daemon's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DaemonError(f"another daemon uses the state directory {state_dir}\n"
                          "  fix: stop it, or give this one its own --state-dir") from None
    handle.write(str(os.getpid()))
    handle.flush()
    return state_dir, handle


async def run_daemon(
    config: DaemonConfig, *, task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED
) -> None:
    """Serve until cancelled; ``task_status.started(url)`` once listening and ready.

    The cancellation reaches no part of the daemon directly: it asks for an
    orderly shutdown, in which every run is detached (or stopped) while the
    engine's clients, watchers and log readers still work, and only then is
    the engine closed. Error handling: a configuration that can't work
    raises :class:`DaemonError` before anything is served; a bad environment
    raises :class:`smrun.aws.EnvironmentProblem` from the engine's checks."""
    check_token(config.host, config.token)
    stopping = anyio.Event()

    async def guarded(*, task_status: TaskStatus[str]) -> None:
        with anyio.CancelScope(shield=True):
            await _serve(config, stopping, task_status)

    async with anyio.create_task_group() as tg:
        url = await tg.start(guarded)
        task_status.started(url)
        try:
            await anyio.sleep_forever()
        finally:
            stopping.set()


async def _serve(config: DaemonConfig, stopping: anyio.Event,
                 task_status: TaskStatus[str]) -> None:
    shared = config.state.startswith(("postgresql://", "postgres://"))
    async with AsyncExitStack() as stack:
        owner = config.owner
        if not shared:
            state_dir, lock = _lock(config.state)
            stack.callback(lock.close)
            owner = owner or f"local:{state_dir}"
        store: Store = open_store(config.state)
        try:
            await store.open()
        except Exception as error:
            raise DaemonError(f"can't open the store {_safe(config.state)}: "
                              f"{type(error).__name__}: {error}") from None
        stack.push_async_callback(store.close)
        engine = await stack.enter_async_context(Engine(
            config.aws, kinds=config.kinds, settings=config.settings, local=config.local,
            local_quotas=config.local_quotas,
        ))
        aws = engine.require_aws()
        metrics = Metrics(lambda: (aws.stats, aws.budgets.stats()))
        daemon = Daemon(engine, store, owner=owner or new_owner(), settings=config.daemon,
                        max_matrix=config.max_matrix, on_event=metrics.observe, log=config.log)
        region = engine.identity.region if engine.identity else (config.aws.region or "")
        app = create_app(daemon, token=config.token, metrics=metrics, region=region)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, config.host, config.port, reuse_address=True)
        await site.start()
        url = _url(site, config.host)
        async with anyio.create_task_group() as tg:
            await tg.start(daemon.serve)
            if config.queue_url:
                tg.start_soon(partial(consume, daemon, config.queue_url, call=aws.call,
                                      log=config.log), name="daemon:submissions")
            task_status.started(url)
            await stopping.wait()
            tg.cancel_scope.cancel()  # the daemon detaches (or stops) its runs, then returns


def _url(site: web.TCPSite, host: str) -> str:
    server = site._server  # aiohttp keeps the bound sockets here
    sockets: list[socket.socket] = list(getattr(server, "sockets", None) or [])
    port = sockets[0].getsockname()[1] if sockets else 0
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _safe(url: str) -> str:
    """A store URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


__all__ = ["DaemonConfig", "DaemonError", "check_token", "read_token", "run_daemon"]
