"""Daemons for the tests: in this process (``daemon_on``) or as a real ``smrun
daemon`` subprocess that a test can kill (``DaemonProcess``), on free ports."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from smrun.daemon import DaemonConfig, DaemonSettings, run_daemon
from smrun.daemon.client import SseParser
from smrun.emulator import Emulator
from smrun.handlers import KINDS
from smrun.settings import Settings
from tests.helpers import LATE_INGESTION, emulator_config

TOKEN = "test-token-0123456789abcdef"


def daemon_settings(**overrides: Any) -> Settings:
    return Settings.fast(drain_grace=LATE_INGESTION + 0.2, **overrides)


@dataclass
class DaemonHandle:
    url: str
    config: DaemonConfig | None = None  # None: a daemon of another process, no token
    logged: list[tuple[str, str]] = field(default_factory=list)

    def headers(self) -> dict[str, str]:
        token = self.config.token if self.config else None
        return {"Authorization": f"Bearer {token}"} if token else {}


@asynccontextmanager
async def daemon_on(
    emulator: Emulator, state: str | os.PathLike[str], *, token: str | None = None,
    host: str = "127.0.0.1", owner: str | None = None,
    settings: DaemonSettings | None = None,
) -> AsyncIterator[DaemonHandle]:
    """A daemon in this process against ``emulator``, its state in ``state``
    (a directory or a PostgreSQL URL); shut down (detaching) on exit."""
    logged: list[tuple[str, str]] = []
    config = DaemonConfig(
        kinds=KINDS, host=host, port=0, state=str(state), token=token,
        aws=emulator_config(emulator), settings=daemon_settings(),
        daemon=settings or DaemonSettings.fast(), owner=owner,
        log=lambda level, message: logged.append((level, message)),
    )
    async with anyio.create_task_group() as tg:
        url = await tg.start(run_daemon, config)
        try:
            yield DaemonHandle(url, config, logged)
        finally:
            tg.cancel_scope.cancel()


async def submit(session: aiohttp.ClientSession, handle: DaemonHandle, manifest: str,
                 **fields: Any) -> tuple[int, dict[str, Any]]:
    async with session.post(f"{handle.url}/v1/runs", json={"manifest": manifest, **fields},
                            headers=handle.headers()) as response:
        return response.status, await response.json()


async def get(session: aiohttp.ClientSession, handle: DaemonHandle,
              path: str) -> tuple[int, Any]:
    async with session.get(handle.url + path, headers=handle.headers()) as response:
        text = await response.text()
        return response.status, json.loads(text) if text else None


async def wait_run(session: aiohttp.ClientSession, handle: DaemonHandle, run_id: str,
                   statuses: tuple[str, ...] = ("succeeded", "failed", "stopped"),
                   timeout: float = 60) -> dict[str, Any]:
    """The run once its status is one of ``statuses`` (polling its record)."""
    with anyio.fail_after(timeout):
        while True:
            status, run = await get(session, handle, f"/v1/runs/{run_id}")
            if status == 200 and run["status"] in statuses:
                return dict(run)
            await anyio.sleep(0.1)


async def read_sse(session: aiohttp.ClientSession, url: str, *, headers: dict[str, str],
                   last_event_id: int | None = None, stop_after: int | None = None,
                   ) -> list[tuple[int | None, str, dict[str, Any]]]:
    """Every event of an SSE stream until ``end`` (or ``stop_after`` events)."""
    sent = dict(headers)
    if last_event_id is not None:
        sent["Last-Event-ID"] = str(last_event_id)
    events: list[tuple[int | None, str, dict[str, Any]]] = []
    parser = SseParser()
    async with session.get(url, headers=sent) as response:
        assert response.status == 200, await response.text()
        async for chunk in response.content.iter_any():
            for event_id, kind, data in parser.feed(chunk):
                if kind == "end":
                    return events
                events.append((int(event_id) if event_id else None, kind, json.loads(data)))
                if stop_after is not None and len(events) >= stop_after:
                    return events
    return events


class DaemonProcess:
    """``smrun daemon`` as a subprocess against an emulator (which a test can
    SIGKILL and start again on the same state)."""

    def __init__(self, emulator: Emulator, state: str | os.PathLike[str], *,
                 extra: tuple[str, ...] = (), env: dict[str, str] | None = None,
                 listen: str = "127.0.0.1:0") -> None:
        self.listen = listen
        self.emulator = emulator
        self.state = str(state)
        self.extra = extra
        self.env = env or {}
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.stderr: list[str] = []

    async def start(self) -> str:
        flag = "--database" if self.state.startswith("postgres") else "--state-dir"
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               **self.env}
        env.pop("SMRUN_TOKEN", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "smrun.cli", "daemon", "--listen", self.listen,
             flag, self.state, "--region", "us-east-1", "--timing", "fast",
             "--endpoint-url", self.emulator.url, "--logs-endpoint-url", self.emulator.url,
             "--sts-endpoint-url", self.emulator.url, *self.extra],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert self.process.stderr is not None
        stream = self.process.stderr
        with anyio.fail_after(60):
            while True:
                line = await anyio.to_thread.run_sync(stream.readline)
                if not line:
                    raise AssertionError("the daemon exited:\n" + "".join(self.stderr))
                self.stderr.append(line)
                found = re.search(r"listening on (http://\S+)", line)
                if found:
                    self.url = found.group(1)
                    break
        # keep reading, or a full pipe would block the daemon
        threading.Thread(target=self._drain, args=(stream,), daemon=True).start()
        return self.url

    def _drain(self, stream: Any) -> None:
        for line in stream:
            self.stderr.append(line)

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self._wait(30)

    async def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, and its exit code. Waits in a thread: the emulator (in this
        process's loop) must go on answering the daemon's last calls."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return await self._wait(timeout)

    async def _wait(self, timeout: float) -> int:
        assert self.process is not None
        process = self.process
        return await anyio.to_thread.run_sync(lambda: process.wait(timeout=timeout))


def free_port() -> int:
    """A port free now on loopback (for a daemon that must come back at the same URL)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
