"""AWS access: one aiobotocore session, one client per service, and ``call``.

Every AWS call of the runner goes through :meth:`Aws.call`, which takes a token
from the shared budget of the operation's family and retries throttling and
transient faults for as long as the caller lets it (the caller's deadline or
cancellation ends it). Throttling therefore slows the runner down and never
fails a job.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import anyio
import botocore
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from runner.budget import Budgets

SERVICES = ("sagemaker", "logs")

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
TRANSIENT_CODES = frozenset(
    {"InternalFailure", "InternalServerError", "ServiceUnavailable", "InternalError"}
)
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
    aiohttp.ClientConnectionError,
    aiohttp.ServerDisconnectedError,
    ConnectionError,
)


@dataclass(frozen=True)
class AwsConfig:
    """Where and as whom to call AWS. ``None`` means the standard AWS
    configuration (environment, shared config, credential chain,
    ``AWS_ENDPOINT_URL*``)."""

    region: str | None = None
    endpoint_url: str | None = None  # SageMaker
    logs_endpoint_url: str | None = None
    assume_role: str | None = None
    profile: str | None = None
    # explicit (access key, secret key); used for the local emulator
    static_credentials: tuple[str, str] | None = None
    max_pool_connections: int = 100
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    # botocore retries nothing: one retry layer (ours), which never gives up on throttling
    botocore_max_attempts: int = 1
    retry_base: float = 0.2
    retry_cap: float = 20.0


def is_throttling(error: ClientError) -> bool:
    code = str(error.response.get("Error", {}).get("Code", ""))
    if code in THROTTLING_CODES:
        return True
    message = str(error.response.get("Error", {}).get("Message", ""))
    return "Rate exceeded" in message


def is_transient(error: ClientError) -> bool:
    code = str(error.response.get("Error", {}).get("Code", ""))
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code in TRANSIENT_CODES or status >= 500


def error_code(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return rng.uniform(0.0, min(cap, base * (2 ** min(attempt, 30))))


@dataclass
class CallStats:
    calls: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    throttles: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, int]:
        return {
            "calls": sum(self.calls.values()),
            "retries": sum(self.retries.values()),
            "throttles": sum(self.throttles.values()),
            "faults": sum(self.faults.values()),
        }


class Aws:
    """Owns the clients. Use as ``async with Aws(config) as aws: await aws.call(...)``."""

    def __init__(
        self,
        config: AwsConfig | None = None,
        *,
        budgets: Budgets | None = None,
        session: AioSession | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Any] = anyio.sleep,
    ) -> None:
        self.config = config or AwsConfig()
        self.budgets = budgets or Budgets()
        self.stats = CallStats()
        self._session = session or get_session()
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._clients: dict[str, Any] = {}
        self._stack = AsyncExitStack()

    @property
    def region(self) -> str:
        return str(self._clients["sagemaker"].meta.region_name)

    async def __aenter__(self) -> Aws:
        cfg = self.config
        if cfg.profile:
            self._session.set_config_variable("profile", cfg.profile)
        if cfg.region:
            # every client the session makes (STS for assume_role too) needs it
            self._session.set_config_variable("region", cfg.region)
        if cfg.static_credentials:
            self._session.set_credentials(*cfg.static_credentials)
        if cfg.assume_role:
            await self._assume_role(cfg.assume_role)
        client_config = AioConfig(
            max_pool_connections=cfg.max_pool_connections,
            connect_timeout=cfg.connect_timeout,
            read_timeout=cfg.read_timeout,
            retries={"mode": "standard", "total_max_attempts": cfg.botocore_max_attempts},
            user_agent_extra="smrun",
        )
        endpoints: Mapping[str, str | None] = {
            "sagemaker": cfg.endpoint_url,
            "logs": cfg.logs_endpoint_url,
        }
        try:
            for service in SERVICES:
                kwargs: dict[str, Any] = {"config": client_config}
                if cfg.region:
                    kwargs["region_name"] = cfg.region
                if endpoints[service]:
                    kwargs["endpoint_url"] = endpoints[service]
                self._clients[service] = await self._stack.enter_async_context(
                    self._session.create_client(service, **kwargs)
                )
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()

    async def _assume_role(self, role_arn: str) -> None:
        # Refreshable credentials: a job can outlive one STS session (an hour by default).
        from aiobotocore.credentials import (
            AioAssumeRoleCredentialFetcher,
            AioDeferredRefreshableCredentials,
        )

        source = await self._session.get_credentials()
        fetcher = AioAssumeRoleCredentialFetcher(
            client_creator=self._session.create_client,
            source_credentials=source,
            role_arn=role_arn,
            extra_args={"RoleSessionName": "smrun"},
        )
        credentials = AioDeferredRefreshableCredentials(
            refresh_using=fetcher.fetch_credentials, method="assume-role"
        )
        self._session._credentials = credentials

    def client(self, service: str) -> Any:
        return self._clients[service]

    async def call(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        """Call ``operation`` (botocore name, e.g. "DescribeTrainingJob").

        Retries throttling, 5xx and dropped connections with jittered backoff
        until it succeeds or the caller is cancelled. Any other error is raised.
        """
        method = getattr(self._clients[service], botocore.xform_name(operation))
        attempt = 0
        cfg = self.config
        while True:
            await self.budgets.acquire(service, operation)
            self.stats.calls[operation] += 1
            try:
                result: dict[str, Any] = await method(**params)
                return result
            except ClientError as error:
                if is_throttling(error):
                    self.stats.throttles[operation] += 1
                    self.budgets.throttled(service, operation)
                elif is_transient(error):
                    self.stats.faults[operation] += 1
                else:
                    raise
            except CONNECTION_ERRORS:
                self.stats.faults[operation] += 1
            self.stats.retries[operation] += 1
            await self._sleep(backoff_delay(attempt, cfg.retry_base, cfg.retry_cap, self._rng))
            attempt += 1
