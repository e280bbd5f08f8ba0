"""The emulator's HTTP server: SageMaker and CloudWatch Logs on one port.

Requests are routed by the ``X-Amz-Target`` prefix to a service; each service
brings its protocol (from botocore's model) and a table of handlers, so this
module knows nothing about any resource kind. Signatures are not checked, but
an ``Authorization`` header must be present, as every signed AWS call has one.

Admin endpoints, for tests in another process:
``GET /_emulator/health``, ``GET /_emulator/requests``,
``GET /_emulator/faults`` and ``POST /_emulator/faults`` (a FaultConfig as JSON).
"""

from __future__ import annotations

import asyncio
import random
import re
import signal
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from types import TracebackType
from typing import Any

from aiohttp import web

from runner.emulator.logs import LogsService, LogStore
from runner.emulator.protocol import JSON_CONTENT_TYPE, ApiError, ServiceProtocol, decode_body
from runner.emulator.resources import Handler, SageMaker, Scheduler, call_handler, install_kinds


@dataclass
class FaultConfig:
    """Faults injected before an operation runs (a throttled Create creates nothing)."""

    throttle: float = 0.0  # probability of HTTP 400 ThrottlingException "Rate exceeded"
    server_error: float = 0.0  # probability of HTTP 500 InternalFailure or 503 ServiceUnavailable
    latency: float = 0.0  # seconds added to every affected request
    drop: float = 0.0  # probability of closing the connection without a response
    operations: frozenset[str] | None = None  # operation names faults apply to; None = all
    seed: int | None = None  # seeds the fault RNG, for repeatable runs
    empty_page_every: int = 0  # every Nth GetLogEvents returns an empty page with a new token

    def applies_to(self, operation: str) -> bool:
        return self.operations is None or operation in self.operations

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["operations"] = sorted(self.operations) if self.operations is not None else None
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        values = dict(data)
        if values.get("operations") is not None:
            values["operations"] = frozenset(values["operations"])
        config = cls(**values)
        for name in ("throttle", "server_error", "drop"):
            if not 0.0 <= float(getattr(config, name)) <= 1.0:
                raise ValueError(f"{name} is a probability, between 0 and 1")
        if config.latency < 0 or config.empty_page_every < 0:
            raise ValueError("latency and empty_page_every must not be negative")
        return config


@dataclass(frozen=True)
class Service:
    name: str  # "sagemaker" or "logs", as in the request log
    protocol: ServiceProtocol
    operations: Mapping[str, Handler]


class Emulator:
    """SageMaker and CloudWatch Logs on loopback, in the AWS wire protocol.

    ``async with Emulator() as emu:`` starts it on a free port; point clients
    at ``emu.url``. ``clock`` is the only source of time (pass a
    :class:`~runner.emulator.resources.FakeClock` to drive it by hand).
    """

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        account: str = "123456789012",
        clock: Callable[[], float] = time.time,
        faults: FaultConfig | None = None,
    ) -> None:
        self.region = region
        self.account = account
        self.clock = clock
        self.scheduler = Scheduler()
        self.logs = LogStore(region=region, account=account, clock=self._world_now)
        self.logs_service = LogsService(self.logs)
        self.sagemaker = SageMaker(
            region=region,
            account=account,
            clock=clock,
            logs=self.logs,
            scheduler=self.scheduler,
        )
        install_kinds(self.sagemaker)
        self.services: dict[str, Service] = {
            s.protocol.target_prefix: s
            for s in (
                Service("sagemaker", self.sagemaker.protocol, self.sagemaker.operations),
                Service("logs", self.logs_service.protocol, self.logs_service.operations),
            )
        }
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        # the access key id each request was signed with (SigV4 isn't verified)
        self.callers: list[str] = []
        self.faulted: list[tuple[str, str]] = []  # (operation, fault) for each injected fault
        self._faults = FaultConfig()
        self._rng = random.Random()
        self.faults = faults or FaultConfig()
        self._request_ids = 0
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.url = ""

    # -- configuration and inspection --------------------------------------

    @property
    def faults(self) -> FaultConfig:
        return self._faults

    @faults.setter
    def faults(self, config: FaultConfig) -> None:
        self._faults = config
        self._rng = random.Random(config.seed)
        self.logs_service.empty_page_every = config.empty_page_every

    def count(self, operation: str) -> int:
        """How many requests for ``operation`` arrived (faulted ones included)."""
        return sum(1 for _service, op, _params in self.requests if op == operation)

    def advance(self) -> float:
        """Bring the world up to the clock: statuses and due log lines."""
        return self.scheduler.advance(self.clock())

    def _world_now(self) -> float:
        # The Logs store stamps direct writes with the world's time, which
        # equals the clock once advanced.
        return self.advance()

    # -- lifecycle ---------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/", self._handle)
        app.router.add_get("/_emulator/health", self._health)
        app.router.add_get("/_emulator/requests", self._requests)
        app.router.add_get("/_emulator/faults", self._get_faults)
        app.router.add_post("/_emulator/faults", self._set_faults)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, host, port)
        await self._site.start()
        bound_port = self._runner.addresses[0][1]
        self.url = f"http://{host}:{bound_port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._site = None

    async def __aenter__(self) -> Emulator:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- the AWS endpoint --------------------------------------------------

    def _request_id(self) -> str:
        self._request_ids += 1
        return str(uuid.UUID(int=self._request_ids))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        request_id = self._request_id()
        try:
            return await self._dispatch(request, request_id)
        except ApiError as error:
            return web.Response(
                status=error.status, body=error.body(), headers=error.headers(request_id)
            )

    async def _dispatch(self, request: web.Request, request_id: str) -> web.StreamResponse:
        target = request.headers.get("X-Amz-Target", "")
        prefix, _, operation_name = target.partition(".")
        service = self.services.get(prefix)
        if service is None or not operation_name:
            raise ApiError("UnknownOperationException", f"Unknown target '{target}'")
        if "Authorization" not in request.headers:
            raise ApiError(
                "MissingAuthenticationTokenException", "Missing Authentication Token", 403
            )
        signed_by = _CREDENTIAL.search(request.headers["Authorization"])
        self.callers.append(signed_by.group(1) if signed_by else "")
        body = await request.read()
        try:
            wire = decode_body(body)
        except ApiError:
            self.requests.append((service.name, operation_name, {}))
            raise
        self.requests.append((service.name, operation_name, wire))

        faults = self._faults
        if faults.applies_to(operation_name):
            if faults.latency > 0:
                await asyncio.sleep(faults.latency)
            # One draw per fault kind, in a fixed order, keeps a seeded run repeatable.
            draws = [self._rng.random() for _ in range(3)]
            if draws[0] < faults.drop:
                self.faulted.append((operation_name, "drop"))
                return self._drop(request)
            if draws[1] < faults.throttle:
                self.faulted.append((operation_name, "throttle"))
                raise ApiError("ThrottlingException", "Rate exceeded")
            if draws[2] < faults.server_error:
                self.faulted.append((operation_name, "server_error"))
                if self._rng.random() < 0.5:
                    raise ApiError("InternalFailure", "We encountered an internal error.", 500)
                raise ApiError("ServiceUnavailable", "Service is unavailable.", 503)

        operation = service.protocol.operation(operation_name)
        handler = service.operations.get(operation_name)
        if operation is None or handler is None:
            raise ApiError(
                "UnknownOperationException",
                f"{prefix}.{operation_name} is not an operation this emulator serves",
            )
        params = service.protocol.parse(operation, wire)
        self.advance()
        try:
            result = await call_handler(handler, params)
        except ApiError:
            raise
        except Exception as exc:  # a bug here must reach the client as AWS would send it
            raise ApiError("InternalFailure", f"{type(exc).__name__}: {exc}", 500) from exc
        return web.Response(
            body=service.protocol.serialize(operation, result),
            headers={"Content-Type": JSON_CONTENT_TYPE, "x-amzn-RequestId": request_id},
        )

    @staticmethod
    def _drop(request: web.Request) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            transport.abort()
        # Nothing is written on an aborted transport; aiohttp discards this.
        return web.Response(status=500)

    # -- admin endpoints ---------------------------------------------------

    async def _health(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {"status": "ok", "time": self.clock(), "region": self.region, "account": self.account}
        )

    async def _requests(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            [{"service": s, "operation": o, "params": p} for s, o, p in self.requests]
        )

    async def _get_faults(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self._faults.to_json())

    async def _set_faults(self, request: web.Request) -> web.StreamResponse:
        try:
            data = await request.json()
            if not isinstance(data, dict):
                raise ValueError("a JSON object of FaultConfig fields is required")
            self.faults = FaultConfig.from_json(data)
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(self._faults.to_json())


_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


def serve(host: str = "127.0.0.1", port: int = 0, region: str = "us-east-1") -> None:
    """Run an emulator until SIGINT or SIGTERM, printing its URL first."""

    async def main() -> None:
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopped.set)
        emulator = Emulator(region=region)
        await emulator.start(host, port)
        try:
            print(emulator.url, flush=True)
            await stopped.wait()
        finally:
            await emulator.stop()

    asyncio.run(main())
