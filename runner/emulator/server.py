"""The emulator's HTTP server: SageMaker, CloudWatch Logs, SQS, EventBridge and
STS on one port.

JSON 1.0 and 1.1 requests are routed by the ``X-Amz-Target`` prefix to a
service (``SageMaker``, ``Logs_20140328``, ``AmazonSQS``, ``AWSEvents``); each
service brings its protocol (from botocore's model) and a table of handlers,
so this module knows nothing about any resource kind. A request without that
header that is form-encoded, or signed for ``sts`` in its SigV4 credential
scope, is an STS query-protocol call (:mod:`smrun.emulator.sts`).

Signatures are not checked, but an ``Authorization`` header must be present,
as every signed AWS call has one. The one thing checked about it is the
access key id in its credential scope: a key on the FaultConfig's
``refused_keys`` list is turned away as AWS turns away an unknown key, an
expired token or a bad signature (:mod:`smrun.emulator.auth`). Operations on
its ``deny`` lists get AccessDenied.

Every request is counted by operation and second (:mod:`smrun.emulator.rates`).
Every state change of every job kind is published (:mod:`smrun.emulator.eventbridge`)
to an EventBridge endpoint when one is given (``events_url``), else to the
emulator's own bus (:mod:`smrun.emulator.bus`) whenever it has an enabled
rule with a target, which delivers to the emulator's own queues
(:mod:`smrun.emulator.queues`). While events are published either way, the
world is also advanced in the background, at each moment something falls due,
so that events go out when their change happens even while no request comes in.

Admin endpoints, for tests and benchmarks in another process:
``GET /_emulator/health``, ``GET /_emulator/requests``,
``GET /_emulator/faults`` and ``POST /_emulator/faults`` (a FaultConfig as JSON),
``GET /_emulator/identities`` and ``POST /_emulator/identities`` (a JSON object
of access key id -> principal ARN, replacing the mapping),
``GET /_emulator/rates`` (calls per operation: total and peak per second;
process CPU) and ``POST /_emulator/rates`` (start counting afresh),
``GET /_emulator/events`` (endpoint, whether events go to the own bus
instead, faults, counters, pending, the bus's counters) and
``POST /_emulator/events`` (``{"url": ..., "faults": {...}}``, either optional;
a null url stops publishing there, and events go to the own bus whenever it
has listeners),
``GET /_emulator/quotas`` and ``POST /_emulator/quotas`` (a JSON object of
service quota name -> limit, replacing them; 400 for an unknown name or a
limit that is not a number >= 0; see :mod:`smrun.emulator.quotas`),
``GET /_emulator/concurrency`` (per job family, the current and peak jobs and
instances, per instance type too, since the last reset; the usage of every
quota; refusals per quota) and ``POST /_emulator/concurrency`` (start the
peaks afresh from now, refusals from zero).
"""

from __future__ import annotations

import asyncio
import contextvars
import random
import re
import signal
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from types import TracebackType
from typing import Any

from aiohttp import web

from smrun.emulator.auth import (
    Identities,
    KeyRefusal,
    access_denied,
    check_deny_entry,
    check_refusal,
    denies,
    refusal_error,
    resource_arn,
)
from smrun.emulator.bus import EventBus
from smrun.emulator.eventbridge import EventFaults, EventPublisher
from smrun.emulator.logs import FILTER_SCAN_LIMIT, LogsService, LogStore
from smrun.emulator.protocol import ApiError, ServiceProtocol, decode_body
from smrun.emulator.queues import SqsService
from smrun.emulator.quotas import Quotas
from smrun.emulator.rates import RateCounter
from smrun.emulator.resources import Handler, SageMaker, Scheduler, call_handler, install_kinds
from smrun.emulator.sts import (
    FORM_CONTENT_TYPE,
    XML_CONTENT_TYPE,
    StsService,
    as_query_error,
    parse_form,
)


@dataclass
class FaultConfig:
    """Faults injected before an operation runs (a throttled Create creates nothing).

    STS calls take the same faults, in STS's words (``Throttling``, ...).
    Refused keys and denied operations apply whatever ``operations`` says,
    and before any of the random faults.
    """

    throttle: float = 0.0  # probability of HTTP 400 ThrottlingException "Rate exceeded"
    server_error: float = 0.0  # probability of HTTP 500 InternalFailure or 503 ServiceUnavailable
    latency: float = 0.0  # seconds added to every affected request
    drop: float = 0.0  # probability of closing the connection without a response
    operations: frozenset[str] | None = None  # operation names faults apply to; None = all
    seed: int | None = None  # seeds the fault RNG, for repeatable runs
    empty_page_every: int = 0  # every Nth GetLogEvents returns an empty page with a new token
    # every Nth FilterLogEvents page that has events comes back empty, with a token
    filter_empty_page_every: int = 0
    # events one FilterLogEvents call looks at, at most (0: the default, 10,000)
    filter_scan_limit: int = 0
    # access key id -> how every request it signs is refused: "invalid_key",
    # "expired_token" or "bad_signature"
    refused_keys: dict[str, KeyRefusal] = field(default_factory=dict)
    # operations every caller is denied: "CreateTrainingJob",
    # "sagemaker:CreateTrainingJob" or "logs:*"
    deny: frozenset[str] = frozenset()
    deny_for: dict[str, frozenset[str]] = field(default_factory=dict)  # the same, per key id

    def __post_init__(self) -> None:
        for key, how in self.refused_keys.items():
            if not isinstance(key, str):
                raise ValueError(f"a refused key is an access key id string, not {key!r}")
            check_refusal(how)
        for entries in (self.deny, *self.deny_for.values()):
            for entry in entries:
                check_deny_entry(entry)

    def applies_to(self, operation: str) -> bool:
        return self.operations is None or operation in self.operations

    def denies(self, caller: str, service: str, operation: str) -> bool:
        entries = self.deny | self.deny_for.get(caller, frozenset())
        return any(denies(entry, service, operation) for entry in entries)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["operations"] = sorted(self.operations) if self.operations is not None else None
        data["deny"] = sorted(self.deny)
        data["deny_for"] = {key: sorted(ops) for key, ops in self.deny_for.items()}
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
        if "deny" in values:
            values["deny"] = _operation_set("deny", values["deny"])
        if "deny_for" in values:
            values["deny_for"] = {
                key: _operation_set(f"deny_for[{key!r}]", ops)
                for key, ops in _json_object("deny_for", values["deny_for"]).items()
            }
        if "refused_keys" in values:
            values["refused_keys"] = dict(_json_object("refused_keys", values["refused_keys"]))
        config = cls(**values)
        for name in ("throttle", "server_error", "drop"):
            if not 0.0 <= float(getattr(config, name)) <= 1.0:
                raise ValueError(f"{name} is a probability, between 0 and 1")
        if min(
            config.latency,
            config.empty_page_every,
            config.filter_empty_page_every,
            config.filter_scan_limit,
        ) < 0:
            raise ValueError(
                "latency, empty_page_every, filter_empty_page_every and filter_scan_limit "
                "must not be negative"
            )
        return config


def _json_object(name: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{name} is a JSON object keyed by access key id")
    return value


def _operation_set(name: str, value: Any) -> frozenset[str]:
    if not isinstance(value, list):
        raise ValueError(f"{name} is a list of operation names")
    return frozenset(value)


@dataclass(frozen=True)
class Service:
    name: str  # "sagemaker", "logs", "sqs" or "events", as in the request log
    protocol: ServiceProtocol
    operations: Mapping[str, Handler]


class Emulator:
    """SageMaker, CloudWatch Logs, SQS, EventBridge and STS on loopback, in the
    AWS wire protocol.

    ``async with Emulator() as emu:`` starts it on a free port; point clients
    at ``emu.url``. ``clock`` is the only source of time (pass a
    :class:`~smrun.emulator.resources.FakeClock` to drive it by hand).
    ``identities`` maps access key ids to the principal ARNs STS names for
    them (by default an IAM user of ``account`` named after the key).
    ``events_url`` is an EventBridge endpoint to publish every state change
    to (settable later: :attr:`events_url`), with ``event_faults``; without
    one, changes go to the emulator's own bus (:attr:`bus`) while it has an
    enabled rule with a target. ``quotas`` are the account's service quotas,
    by name (settable later: :attr:`quotas`); a create over one is refused
    with ResourceLimitExceeded (:mod:`smrun.emulator.quotas`). None by default.
    """

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        account: str = "123456789012",
        clock: Callable[[], float] = time.time,
        faults: FaultConfig | None = None,
        events_url: str | None = None,
        event_faults: EventFaults | None = None,
        quotas: Mapping[str, float] | None = None,
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
        self.quotas = quotas
        self.url = ""
        self.sqs = SqsService(region=region, account=account, clock=clock, origin=self._origin)
        self.bus = EventBus(
            region=region,
            account=account,
            clock=clock,
            queues=self.sqs,
            on_change=self._update_publishing,
        )
        self.events = EventPublisher(
            self.sagemaker, url=events_url, bus=self.bus, faults=event_faults
        )
        self.sagemaker.listeners.append(self.events.submit)
        self.rates = RateCounter(clock)
        self._ticker: asyncio.Task[None] | None = None
        self._publishing = asyncio.Event()  # set while events are published, either way
        self._update_publishing()
        self.tick_error: BaseException | None = None  # what stopped the background ticks
        self.services: dict[str, Service] = {
            s.protocol.target_prefix: s
            for s in (
                Service("sagemaker", self.sagemaker.protocol, self.sagemaker.operations),
                Service("logs", self.logs_service.protocol, self.logs_service.operations),
                Service("sqs", self.sqs.protocol, self.sqs.operations),
                Service("events", self.bus.protocol, self.bus.operations),
            )
        }
        self.identities = Identities(account)
        self.sts = StsService(self.identities)
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

    # -- configuration and inspection --------------------------------------

    @property
    def faults(self) -> FaultConfig:
        return self._faults

    @faults.setter
    def faults(self, config: FaultConfig) -> None:
        self._faults = config
        self._rng = random.Random(config.seed)
        self.logs_service.empty_page_every = config.empty_page_every
        self.logs_service.filter_empty_page_every = config.filter_empty_page_every
        self.logs_service.filter_scan_limit = config.filter_scan_limit or FILTER_SCAN_LIMIT

    @property
    def events_url(self) -> str | None:
        """The EventBridge endpoint state changes go to; None: to the own bus,
        while it has an enabled rule with a target (else nowhere)."""
        return self.events.url

    @events_url.setter
    def events_url(self, url: str | None) -> None:
        self.events.url = url
        self._update_publishing()

    def _update_publishing(self) -> None:
        """Let the background ticks run exactly while events are published."""
        if self.events.publishing:
            self._publishing.set()
        else:
            self._publishing.clear()

    def _origin(self) -> str:
        """The URL the request being served reached the emulator at (its Host
        header), else :attr:`url`: what queue URLs begin with."""
        return _ORIGIN.get() or self.url

    @property
    def quotas(self) -> Quotas:
        """The account's service quotas the emulator enforces (by name)."""
        return self.sagemaker.concurrency.quotas

    @quotas.setter
    def quotas(self, quotas: Mapping[str, float] | None) -> None:
        """Replace them (ValueError for an unknown name or a bad limit); only
        later creates are checked against the new ones."""
        self.sagemaker.concurrency.quotas = (
            quotas if isinstance(quotas, Quotas) else Quotas(quotas)
        )

    def concurrency_report(self) -> dict[str, Any]:
        """As of now: per job family, the current and peak resources holding
        instances and instances (per type too) since the last
        :meth:`reset_concurrency`, the usage of each quota and refusals per
        quota; what ``GET /_emulator/concurrency`` answers."""
        return self.sagemaker.concurrency.report()

    def reset_concurrency(self) -> None:
        """Start the peaks afresh from the current values, refusals from zero."""
        self.sagemaker.concurrency.reset()

    def rates_report(self) -> dict[str, Any]:
        """Calls per operation (total, peak per second) and this process's CPU:
        what ``GET /_emulator/rates`` answers."""
        return self.rates.report()

    def refuse_key(self, access_key_id: str, how: KeyRefusal = "invalid_key") -> None:
        """Turn away every request ``access_key_id`` signs, as AWS would for ``how``:
        ``"invalid_key"`` (no such key), ``"expired_token"`` or ``"bad_signature"``."""
        refused = {**self._faults.refused_keys, access_key_id: check_refusal(how)}
        # Not through the setter: the other faults' random sequence goes on.
        self._faults = replace(self._faults, refused_keys=refused)

    def accept_key(self, access_key_id: str) -> None:
        """Undo :meth:`refuse_key`."""
        refused = {k: v for k, v in self._faults.refused_keys.items() if k != access_key_id}
        self._faults = replace(self._faults, refused_keys=refused)

    def count(self, operation: str) -> int:
        """How many requests for ``operation`` arrived (faulted ones included)
        since the rate counters were last reset."""
        return self.rates.total(operation)

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
        app.router.add_get("/_emulator/identities", self._get_identities)
        app.router.add_post("/_emulator/identities", self._set_identities)
        app.router.add_get("/_emulator/rates", self._get_rates)
        app.router.add_post("/_emulator/rates", self._reset_rates)
        app.router.add_get("/_emulator/events", self._get_events)
        app.router.add_post("/_emulator/events", self._set_events)
        app.router.add_get("/_emulator/quotas", self._get_quotas)
        app.router.add_post("/_emulator/quotas", self._set_quotas)
        app.router.add_get("/_emulator/concurrency", self._get_concurrency)
        app.router.add_post("/_emulator/concurrency", self._reset_concurrency)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, host, port)
        await self._site.start()
        bound_port = self._runner.addresses[0][1]
        self.url = f"http://{host}:{bound_port}"
        self.rates.reset()
        self.sqs.open()
        self.events.start()
        self._ticker = asyncio.create_task(self._tick())
        return self.url

    async def stop(self) -> None:
        self.sqs.close()  # long polls end now, not after up to 20 s
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None
        await self.events.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._site = None

    async def _tick(self) -> None:
        """While events are published, advance the world whenever something is
        due, so that each change is published when it happens, requests or not.
        (Requests advance it too; advancing twice to the same time is a no-op.)"""
        try:
            while True:
                await self._publishing.wait()
                due = self.scheduler.next_due()
                wait = TICK_MAX if due is None else min(max(due - self.clock(), 0.0), TICK_MAX)
                await asyncio.sleep(max(wait, TICK_MIN))
                if self._publishing.is_set():
                    self.advance()
        except Exception as error:  # a bug in a scheduled action: keep it for the tests
            self.tick_error = error

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
        _ORIGIN.set(f"{request.scheme}://{request.host}")
        try:
            return await self._dispatch(request, request_id)
        except ApiError as error:
            return _error_response(error, error.headers(request_id))

    async def _dispatch(self, request: web.Request, request_id: str) -> web.StreamResponse:
        target = request.headers.get("X-Amz-Target")
        if target is None and _is_query_call(request):
            try:
                return await self._dispatch_query(request, request_id)
            except ApiError as error:
                raise as_query_error(error, request_id) from error
        return await self._dispatch_json(request, request_id, target or "")

    async def _dispatch_json(
        self, request: web.Request, request_id: str, target: str
    ) -> web.StreamResponse:
        prefix, _, operation_name = target.partition(".")
        service = self.services.get(prefix)
        if service is None or not operation_name:
            raise ApiError("UnknownOperationException", f"Unknown target '{target}'")
        try:
            return await self._serve(service, operation_name, request, request_id)
        except ApiError as error:
            return _error_response(error, service.protocol.error_headers(error, request_id))

    async def _serve(
        self, service: Service, operation_name: str, request: web.Request, request_id: str
    ) -> web.StreamResponse:
        caller = self._caller(request)
        try:
            wire, unreadable = decode_body(await request.read()), None
        except ApiError as error:
            wire, unreadable = {}, error
        self.requests.append((service.name, operation_name, wire))
        self.rates.count(operation_name)
        self._authenticate(caller, operation_name)
        if unreadable is not None:
            raise unreadable
        self._authorize(caller, service.name, operation_name, wire)
        dropped = await self._inject_faults(request, operation_name)
        if dropped is not None:
            return dropped

        operation = service.protocol.operation(operation_name)
        handler = service.operations.get(operation_name)
        if operation is None or handler is None:
            raise ApiError(
                "UnknownOperationException",
                f"{service.protocol.target_prefix}.{operation_name} is not an operation "
                "this emulator serves",
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
            headers={"Content-Type": service.protocol.content_type, "x-amzn-RequestId": request_id},
        )

    async def _dispatch_query(self, request: web.Request, request_id: str) -> web.StreamResponse:
        caller = self._caller(request)
        try:
            form, unreadable = parse_form(await request.read()), None
        except ApiError as error:
            form, unreadable = {}, error
        action = form.get("Action", "")
        params: dict[str, Any] = {k: v for k, v in form.items() if k not in ("Action", "Version")}
        self.requests.append((self.sts.name, action, params))
        self.rates.count(action)
        self._authenticate(caller, action)
        if unreadable is not None:
            raise unreadable
        self._authorize(caller, self.sts.name, action, params)
        dropped = await self._inject_faults(request, action)
        if dropped is not None:
            return dropped
        operation = self.sts.operation(form)
        try:
            body = self.sts.answer(operation, caller, request_id)
        except ApiError:
            raise
        except Exception as exc:  # as in the JSON path: a bug reaches the client as AWS's 500
            raise ApiError("InternalFailure", f"{type(exc).__name__}: {exc}", 500) from exc
        return web.Response(
            body=body, headers={"Content-Type": XML_CONTENT_TYPE, "x-amzn-RequestId": request_id}
        )

    def _caller(self, request: web.Request) -> str:
        """The access key id the request was signed with (recorded in ``callers``)."""
        if "Authorization" not in request.headers:
            raise ApiError(
                "MissingAuthenticationTokenException", "Missing Authentication Token", 403
            )
        signed_by = _CREDENTIAL.search(request.headers["Authorization"])
        caller = signed_by.group(1) if signed_by else ""
        self.callers.append(caller)
        return caller

    def _authenticate(self, caller: str, operation: str) -> None:
        how = self._faults.refused_keys.get(caller)
        if how is not None:
            self.faulted.append((operation, how))
            raise refusal_error(how)

    def _authorize(
        self, caller: str, service: str, operation: str, wire: Mapping[str, Any]
    ) -> None:
        if not self._faults.denies(caller, service, operation):
            return
        self.faulted.append((operation, "access_denied"))
        resource = resource_arn(service, operation, wire, region=self.region, account=self.account)
        raise access_denied(self.identities.of(caller).arn, service, operation, resource)

    async def _inject_faults(
        self, request: web.Request, operation: str
    ) -> web.StreamResponse | None:
        """Latency, then maybe a dropped connection (returned) or an error (raised)."""
        faults = self._faults
        if not faults.applies_to(operation):
            return None
        if faults.latency > 0:
            await asyncio.sleep(faults.latency)
        # One draw per fault kind, in a fixed order, keeps a seeded run repeatable.
        draws = [self._rng.random() for _ in range(3)]
        if draws[0] < faults.drop:
            self.faulted.append((operation, "drop"))
            return self._drop(request)
        if draws[1] < faults.throttle:
            self.faulted.append((operation, "throttle"))
            raise ApiError("ThrottlingException", "Rate exceeded")
        if draws[2] < faults.server_error:
            self.faulted.append((operation, "server_error"))
            if self._rng.random() < 0.5:
                raise ApiError("InternalFailure", "We encountered an internal error.", 500)
            raise ApiError("ServiceUnavailable", "Service is unavailable.", 503)
        return None

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

    async def _get_rates(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.rates_report())

    async def _reset_rates(self, request: web.Request) -> web.StreamResponse:
        self.rates.reset()
        return web.json_response(self.rates_report())

    async def _get_events(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.events.report())

    async def _set_events(self, request: web.Request) -> web.StreamResponse:
        try:
            data = await request.json()
            if not isinstance(data, dict) or set(data) - {"url", "faults"}:
                raise ValueError('a JSON object with "url" and/or "faults" is required')
            faults = None
            if "faults" in data:
                if not isinstance(data["faults"], dict):
                    raise ValueError("faults is a JSON object of EventFaults fields")
                faults = EventFaults.from_json(data["faults"])
            url = data.get("url", self.events_url)
            if url is not None and not (isinstance(url, str) and url.startswith("http")):
                raise ValueError("url is an http(s) endpoint URL or null")
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if faults is not None:
            self.events.faults = faults
        self.events_url = url
        return web.json_response(self.events.report())

    async def _get_quotas(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.quotas.to_json())

    async def _set_quotas(self, request: web.Request) -> web.StreamResponse:
        try:
            self.quotas = Quotas.from_json(await request.json())
        except ValueError as exc:  # a body that is no JSON too
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(self.quotas.to_json())

    async def _get_concurrency(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.concurrency_report())

    async def _reset_concurrency(self, request: web.Request) -> web.StreamResponse:
        self.reset_concurrency()
        return web.json_response(self.concurrency_report())

    async def _get_identities(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(dict(self.identities))

    async def _set_identities(self, request: web.Request) -> web.StreamResponse:
        try:
            data = await request.json()
            if not isinstance(data, dict):
                raise ValueError("a JSON object of access key id -> principal ARN is required")
            self.identities.replace(data)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(dict(self.identities))


# Background advances while publishing: no sooner than TICK_MIN after the last
# (changes due close together go out together), no later than TICK_MAX (a
# clock that is moved by hand, or an action queued meanwhile, is noticed).
TICK_MIN = 0.02
TICK_MAX = 0.25

# the scheme and Host of the request being served (each request has its own task)
_ORIGIN: contextvars.ContextVar[str] = contextvars.ContextVar("origin", default="")

# "Credential=AKID/20261201/us-east-1/sts/aws4_request": the key id and the
# service the request was signed for.
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
_SCOPE_SERVICE = re.compile(r"Credential=[^/,\s]+/[^/,\s]*/[^/,\s]*/([^/,\s]+)/")


def _error_response(error: ApiError, headers: Mapping[str, str]) -> web.Response:
    return web.Response(status=error.status, body=error.body(), headers=headers)


def _is_query_call(request: web.Request) -> bool:
    """An STS call: signed for ``sts`` or, with no credential scope to go by, a form POST."""
    scope = _SCOPE_SERVICE.search(request.headers.get("Authorization", ""))
    if scope is not None:
        return scope.group(1) == "sts"
    return request.content_type == FORM_CONTENT_TYPE


def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    region: str = "us-east-1",
    events_url: str | None = None,
    quotas: Mapping[str, float] | None = None,
) -> None:
    """Run an emulator until SIGINT or SIGTERM, printing its URL first;
    ``events_url``: an EventBridge endpoint to publish state changes to;
    ``quotas``: the account's service quotas by name (none by default).

    Raises ValueError, before anything starts, for a quota name the emulator
    does not enforce or a limit that is not a number >= 0."""
    checked = Quotas(quotas)

    async def main() -> None:
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopped.set)
        emulator = Emulator(region=region, events_url=events_url, quotas=checked)
        await emulator.start(host, port)
        try:
            print(emulator.url, flush=True)
            await stopped.wait()
        finally:
            await emulator.stop()

    asyncio.run(main())
