"""Shared fixtures: emulators on free loopback ports and aiobotocore clients for them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from moto.server import ThreadedMotoServer

from smrun.emulator import Emulator, FakeClock

pytest_plugins = ["tests.postgres"]

ClientFactory = Callable[..., Awaitable[Any]]


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock at a fixed instant that moves only by ``advance()``/``set()``."""
    return FakeClock()


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """An emulator on the real clock, on a free port."""
    async with Emulator() as emu:
        yield emu


@pytest.fixture
async def fake_emulator(fake_clock: FakeClock) -> AsyncIterator[Emulator]:
    """An emulator whose time is ``fake_clock``: nothing happens until a test moves it."""
    async with Emulator(clock=fake_clock) as emu:
        yield emu


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """moto in server mode on a free loopback port, one per test module (each
    test names its own resources)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def aio_session() -> AioSession:
    # One session for the whole run: it caches the parsed service models,
    # which are slow to load.
    return get_session()


@pytest.fixture
async def aws_client(aio_session: AioSession) -> AsyncIterator[ClientFactory]:
    """``await aws_client("sagemaker", emu)``: an aiobotocore client for ``emu``.

    Clients retry nothing unless asked (``retries=N``), so a test sees every
    error the emulator sends; ``validate=False`` turns off botocore's
    client-side checks so that requests reach the emulator's. All clients are
    closed at teardown.
    """
    session = aio_session
    async with AsyncExitStack() as stack:

        async def make(
            service: str, emu: Emulator, *, retries: int = 0, validate: bool = True
        ) -> Any:
            config = AioConfig(
                parameter_validation=validate,
                retries={"total_max_attempts": retries + 1, "mode": "standard"},
                connect_timeout=5,
                read_timeout=10,
            )
            return await stack.enter_async_context(
                session.create_client(
                    service,
                    region_name=emu.region,
                    endpoint_url=emu.url,
                    aws_access_key_id="testing",
                    aws_secret_access_key="testing",
                    config=config,
                )
            )

        yield make


SMRUN = [sys.executable, "-m", "smrun.cli"]
ENV = {
    **os.environ,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "PYTHONUNBUFFERED": "1",
}


@pytest.fixture
def emulator_url() -> Iterator[str]:
    """An emulator in its own process (so killing a runner leaves it up); its URL."""
    proc = subprocess.Popen(
        [*SMRUN, "emulator", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


