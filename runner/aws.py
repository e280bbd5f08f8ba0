"""AWS access: one aiobotocore session, one client per service, ``call`` and the pre-flight.

Every AWS call of the runner goes through :meth:`Aws.call`, which takes a token
from the shared budget of the operation's family and retries throttling and
transient faults for as long as the caller lets it (the caller's deadline or
cancellation ends it). Throttling therefore slows the runner down and never
fails a job; an outage that lasts is reported, with the endpoint and the error,
at growing intervals.

Before anything is created, :meth:`Aws.identify` checks the environment: a
region, credentials from the standard chain, endpoints that answer, and one
STS GetCallerIdentity (which needs no permission). What is wrong is raised as
an :class:`EnvironmentProblem` that names the problem and the usual fix.
"""

from __future__ import annotations

import difflib
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import anyio
import botocore
from aiobotocore.config import AioConfig
from aiobotocore.credentials import (
    AioAssumeRoleCredentialFetcher,
    AioDeferredRefreshableCredentials,
)
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import (
    BotoCoreError,
    ConnectTimeoutError,
    InvalidRegionError,
    NoRegionError,
    ParamValidationError,
    ProfileNotFound,
    ReadTimeoutError,
    SSLError,
    TokenRetrievalError,
    UnauthorizedSSOTokenError,
)

from smrun.budget import Budgets, Priority
from smrun.errors import (
    CONNECTION_ERRORS,
    ErrorClass,
    classify,
    describe,
    error_code,
    is_expired,
)

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

SERVICES = ("sagemaker", "logs")
# the event source's services (runner.watch): clients exist always, but the
# pre-flight does not reach them (a run without an events queue never calls them)
EVENT_SERVICES = ("sqs", "events")
# the daemon's submissions (runner.daemon.submissions) read manifests named by an
# s3:// URI: a client exists always, and the pre-flight does not reach it either
SUBMISSION_SERVICES = ("s3",)
# SQS ReceiveMessage's longest WaitTimeSeconds: the SQS client's read timeout
# stays above it, or every quiet long poll would end as a ReadTimeoutError
LONG_POLL_SECONDS = 20
# how a region name is spelled in every AWS partition (us-east-1, cn-north-1, us-gov-west-1)
_REGION_NAME = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")


@dataclass(frozen=True)
class AwsConfig:
    """Where and as whom to call AWS. ``None`` means the standard AWS
    configuration (environment, shared config, credential chain,
    ``AWS_ENDPOINT_URL*``)."""

    region: str | None = None
    endpoint_url: str | None = None  # SageMaker
    logs_endpoint_url: str | None = None
    sts_endpoint_url: str | None = None  # for the pre-flight (and assume_role)
    # the events queue (runner.watch) and EventBridge (its setup); unset, botocore
    # reads AWS_ENDPOINT_URL_SQS and AWS_ENDPOINT_URL_EVENTBRIDGE (its names come
    # from the service ids "SQS" and "EventBridge"), then AWS_ENDPOINT_URL
    sqs_endpoint_url: str | None = None
    events_endpoint_url: str | None = None
    # manifests in S3 (the daemon's submissions); unset, botocore reads
    # AWS_ENDPOINT_URL_S3, then AWS_ENDPOINT_URL
    s3_endpoint_url: str | None = None
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
    # a run of failed calls to a service is reported after this long, then at
    # doubling intervals up to ``fault_warn_max``
    fault_warn_after: float = 5.0
    fault_warn_max: float = 300.0
    # the pre-flight's own budget: a misconfigured environment is told within it
    preflight_timeout: float = 20.0


class EnvironmentProblem(Exception):
    """The environment can't reach AWS as configured: no region, no or rejected
    credentials, an endpoint that doesn't answer, or no permission for the
    pre-flight call. ``problem`` says what, ``fix`` the usual remedy."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem}\n  fix: {fix}")
        self.problem = problem
        self.fix = fix


@dataclass(frozen=True)
class Identity:
    """Who the runner acts as, and where (what the pre-flight found)."""

    account: str
    arn: str
    region: str
    endpoints: Mapping[str, str]  # service -> URL

    def describe(self) -> str:
        where = " · ".join(f"{s} {url}" for s, url in self.endpoints.items())
        return f"as {self.arn} (account {self.account}) in {self.region} · {where}"


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return rng.uniform(0.0, min(cap, base * (2 ** min(attempt, 30))))


def next_warning_delay(previous: float, first: float, cap: float) -> float:
    """How long to wait before repeating an outage warning: doubling, capped."""
    return first if previous <= 0 else min(cap, previous * 2)


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


@dataclass
class _Outage:
    """A run of failed calls to one service, for the warnings about it."""

    since: float
    error: str
    warn_at: float
    interval: float = 0.0
    warned: bool = False


# (level, message): where warnings about outages go (the runner's bus)
Notify = Callable[[str, str], None]


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
        clock: Callable[[], float] = time.monotonic,
        notify: Notify | None = None,
    ) -> None:
        self.config = config or AwsConfig()
        self.budgets = budgets or Budgets()
        self.stats = CallStats()
        self.notify = notify
        self._session = session or get_session()
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._clock = clock
        self._clients: dict[str, Any] = {}
        self._outages: dict[str, _Outage] = {}
        self._stack = AsyncExitStack()

    @property
    def region(self) -> str:
        return str(self._clients["sagemaker"].meta.region_name)

    def endpoint(self, service: str) -> str:
        return str(self._clients[service].meta.endpoint_url)

    def _client_config(self, *, connect_timeout: float | None = None,
                       read_timeout: float | None = None) -> AioConfig:
        cfg = self.config
        return AioConfig(
            max_pool_connections=cfg.max_pool_connections,
            connect_timeout=connect_timeout or cfg.connect_timeout,
            read_timeout=read_timeout or cfg.read_timeout,
            retries={"mode": "standard", "total_max_attempts": cfg.botocore_max_attempts},
            user_agent_extra="smrun",
        )

    async def __aenter__(self) -> Aws:
        cfg = self.config
        try:
            if cfg.profile:
                self._session.set_config_variable("profile", cfg.profile)
            if cfg.region:
                # every client the session makes (STS for assume_role too) needs it
                self._session.set_config_variable("region", cfg.region)
            if cfg.static_credentials:
                self._session.set_credentials(*cfg.static_credentials)
            if cfg.assume_role:
                await self._assume_role(cfg.assume_role)
            endpoints: Mapping[str, str | None] = {
                "sagemaker": cfg.endpoint_url,
                "logs": cfg.logs_endpoint_url,
                "sqs": cfg.sqs_endpoint_url,
                "events": cfg.events_endpoint_url,
                "s3": cfg.s3_endpoint_url,
            }
            # a long poll waits up to LONG_POLL_SECONDS for its answer
            read_timeouts = {"sqs": max(cfg.read_timeout, LONG_POLL_SECONDS + 10.0)}
            for service in (*SERVICES, *EVENT_SERVICES, *SUBMISSION_SERVICES):
                config = self._client_config(read_timeout=read_timeouts.get(service))
                self._clients[service] = await self._stack.enter_async_context(
                    self._session.create_client(
                        service, config=config, **self._where(endpoints[service])
                    )
                )
        except BaseException as error:
            await self._stack.aclose()
            problem = _environment_problem(error, self._region_hint())
            if problem is not None:
                raise problem from None
            raise
        # the budgets follow the region's quotas (CloudWatch Logs' differ by region)
        self.budgets.size_for(self._clients["sagemaker"].meta.region_name)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()

    def _where(self, endpoint_url: str | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.config.region:
            kwargs["region_name"] = self.config.region
        if endpoint_url:
            kwargs["endpoint_url"] = endpoint_url
        return kwargs

    def _region_hint(self) -> str | None:
        try:
            region = self.config.region or self._session.get_config_variable("region")
        except ProfileNotFound:
            return None
        return str(region) if region else None

    async def _assume_role(self, role_arn: str) -> None:
        # Refreshable credentials: a job can outlive one STS session (an hour by default).
        source = await self._session.get_credentials()
        sts_url = self.config.sts_endpoint_url

        def create_client(service: str, **kwargs: Any) -> Any:
            if service == "sts" and sts_url:
                kwargs.setdefault("endpoint_url", sts_url)
            return self._session.create_client(service, **kwargs)

        fetcher = AioAssumeRoleCredentialFetcher(
            client_creator=create_client,
            source_credentials=source,
            role_arn=role_arn,
            extra_args={"RoleSessionName": "smrun"},
        )
        credentials = AioDeferredRefreshableCredentials(
            refresh_using=fetcher.fetch_credentials, method="assume-role"
        )
        self._session._credentials = credentials

    # --- the pre-flight ---------------------------------------------------

    async def identify(self) -> Identity:
        """Check the environment before anything is created; who and where we are.

        Error handling: raises :class:`EnvironmentProblem` for a missing or
        unknown region, missing, rejected or expired credentials, an endpoint
        that can't be reached (refused, DNS, TLS, timeout) and AccessDenied on
        GetCallerIdentity; within ``preflight_timeout`` in every case."""
        cfg = self.config
        region = self.region
        await self._check_region(region)
        endpoints = {service: self.endpoint(service) for service in SERVICES}
        try:
            with anyio.fail_after(cfg.preflight_timeout):
                credentials = await self._session.get_credentials()
                if credentials is None:
                    raise _no_credentials()
                async with anyio.create_task_group() as tg:
                    for service, url in endpoints.items():
                        tg.start_soon(_reach, service, url, cfg.preflight_timeout / 2)
                    caller, sts_url = await self._caller_identity()
        except TimeoutError:
            raise EnvironmentProblem(
                f"no answer from AWS within {cfg.preflight_timeout:.0f}s",
                "check the network, proxy (HTTPS_PROXY) and endpoint settings "
                "(--endpoint-url, AWS_ENDPOINT_URL)",
            ) from None
        except EnvironmentProblem:
            raise
        except BaseExceptionGroup as group:
            raise _first_problem(group, region) from None
        except Exception as error:
            problem = _environment_problem(error, region)
            if problem is None:
                raise
            raise problem from None
        return Identity(
            account=str(caller.get("Account", "")),
            arn=str(caller.get("Arn", "")),
            region=region,
            endpoints={"sts": sts_url, **endpoints},
        )

    async def _check_region(self, region: str) -> None:
        if not _REGION_NAME.match(region):
            raise EnvironmentProblem(
                f"{region!r} is not an AWS region name",
                "give a region such as us-east-1 (--region, AWS_REGION, or region in "
                "~/.aws/config)",
            )
        if self.config.endpoint_url:
            return  # a private endpoint (an emulator, a VPC endpoint) may serve any region
        known: set[str] = set()
        for partition in self._session.get_available_partitions():
            known.update(await self._session.get_available_regions("sagemaker", partition))
        if known and region not in known:
            close = difflib.get_close_matches(region, sorted(known), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise EnvironmentProblem(
                f"SageMaker is not in a region called {region!r}",
                f"{hint}check --region, AWS_REGION and the profile's region",
            )

    async def _caller_identity(self) -> tuple[dict[str, Any], str]:
        cfg = self.config
        timeout = min(cfg.connect_timeout, cfg.preflight_timeout / 2)
        kwargs = self._where(cfg.sts_endpoint_url)
        config = self._client_config(connect_timeout=timeout, read_timeout=timeout)
        async with self._session.create_client("sts", config=config, **kwargs) as sts:
            url = str(sts.meta.endpoint_url)
            attempt = 0
            while True:
                try:
                    return await sts.get_caller_identity(), url
                except Exception as error:
                    # a 5xx or a throttle is retried until the pre-flight's deadline;
                    # a refused connection or DNS failure is an answer already
                    if classify(error) is ErrorClass.THROTTLED or (
                        classify(error) is ErrorClass.TRANSIENT
                        and not isinstance(error, CONNECTION_ERRORS)
                    ):
                        await self._sleep(backoff_delay(attempt, cfg.retry_base, 2.0, self._rng))
                        attempt += 1
                        continue
                    problem = _environment_problem(error, self.region, url)
                    if problem is None:
                        raise
                    raise problem from None

    # --- calls ------------------------------------------------------------

    async def call(
        self, service: str, operation: str, *, priority: Priority = Priority.LIVE, **params: Any
    ) -> dict[str, Any]:
        """Call ``operation`` (botocore name, e.g. "DescribeTrainingJob"); its
        budget token is served by ``priority`` (:class:`smrun.budget.Priority`).

        Error handling: throttling, 5xx and dropped connections are retried
        with jittered backoff until the call succeeds or the caller is
        cancelled (an outage is reported through ``notify``); any other error
        is raised (see :mod:`smrun.errors`)."""
        method = getattr(self._clients[service], botocore.xform_name(operation))
        attempt = 0
        cfg = self.config
        while True:
            await self.budgets.acquire(service, operation, priority)
            self.stats.calls[operation] += 1
            try:
                result: dict[str, Any] = await method(**params)
            except Exception as error:
                what = classify(error)
                if what is ErrorClass.THROTTLED:
                    self.stats.throttles[operation] += 1
                    self.budgets.throttled(service, operation)
                elif what is ErrorClass.TRANSIENT:
                    self.stats.faults[operation] += 1
                    self._failed(service, error)
                else:
                    raise
            else:
                self._recovered(service)
                return result
            self.stats.retries[operation] += 1
            await self._sleep(backoff_delay(attempt, cfg.retry_base, cfg.retry_cap, self._rng))
            attempt += 1

    def _failed(self, service: str, error: BaseException) -> None:
        now, cfg = self._clock(), self.config
        outage = self._outages.get(service)
        if outage is None:
            outage = self._outages[service] = _Outage(
                since=now, error=describe(error), warn_at=now + cfg.fault_warn_after
            )
        outage.error = describe(error)
        if now < outage.warn_at:
            return
        outage.interval = next_warning_delay(outage.interval, cfg.fault_warn_after,
                                             cfg.fault_warn_max)
        outage.warn_at = now + outage.interval
        outage.warned = True
        self._tell("warning", f"{service} at {self.endpoint(service)} has failed for "
                   f"{now - outage.since:.0f}s ({outage.error}); still retrying")

    def _recovered(self, service: str) -> None:
        outage = self._outages.pop(service, None)
        if outage is not None and outage.warned:
            self._tell("info", f"{service} answers again, after "
                       f"{self._clock() - outage.since:.0f}s of failures")

    def _tell(self, level: str, message: str) -> None:
        if self.notify is not None:
            self.notify(level, message)


async def _reach(service: str, url: str, timeout: float) -> None:
    """Whether ``url`` answers HTTP at all (any status will do: no call is made)."""
    try:
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        async with aiohttp.ClientSession(timeout=client_timeout, trust_env=True) as http:
            async with http.get(url, allow_redirects=False):
                return
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        raise _unreachable(service, url, error) from None


def _unreachable(service: str, url: str, error: BaseException) -> EnvironmentProblem:
    text = str(error) or type(error).__name__
    if isinstance(error, SSLError | aiohttp.ClientSSLError):
        return EnvironmentProblem(
            f"TLS failed talking to {service} at {url}: {text}",
            "check AWS_CA_BUNDLE and any proxy that intercepts TLS",
        )
    if isinstance(error, TimeoutError | ConnectTimeoutError | ReadTimeoutError):
        return EnvironmentProblem(
            f"{service} at {url} did not answer in time",
            "check the network and proxy (HTTPS_PROXY), and the endpoint URL",
        )
    return EnvironmentProblem(
        f"cannot reach {service} at {url}: {text}",
        "check the endpoint URL (--endpoint-url, AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_"
        f"{service.upper()}) and the region; is the host up and the port open?",
    )


def _no_credentials() -> EnvironmentProblem:
    return EnvironmentProblem(
        "no AWS credentials found",
        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (after `aws sso "
        "login` for SSO); on EKS use IRSA (AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE); "
        "`smrun run --local` needs none",
    )


def _first_problem(group: BaseExceptionGroup[Any], region: str | None) -> Exception:
    """The first environment problem among a task group's errors (or its first error)."""
    leaves: list[BaseException] = []

    def walk(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for inner in e.exceptions:
                walk(inner)
        else:
            leaves.append(e)

    walk(group)
    for leaf in leaves:
        if isinstance(leaf, EnvironmentProblem):
            return leaf
        problem = _environment_problem(leaf, region)
        if problem is not None:
            return problem
    first = leaves[0] if leaves else group
    return first if isinstance(first, Exception) else RuntimeError(str(first))


def _environment_problem(
    error: BaseException, region: str | None, url: str = ""
) -> EnvironmentProblem | None:
    """The environment problem ``error`` reveals, or None for any other error."""
    if isinstance(error, EnvironmentProblem):
        return error
    what = classify(error)
    if isinstance(error, NoRegionError) or (what is ErrorClass.REGION and not region):
        return EnvironmentProblem(
            "no AWS region is set",
            "pass --region, or set defaults.region in the manifest, AWS_REGION (or "
            "AWS_DEFAULT_REGION), or region in the "
            "profile of ~/.aws/config",
        )
    if isinstance(error, InvalidRegionError):
        return EnvironmentProblem(f"{region!r} is not an AWS region name",
                                  "give a region such as us-east-1")
    if isinstance(error, ProfileNotFound):
        return EnvironmentProblem(str(error), "check --profile and AWS_PROFILE against "
                                  "~/.aws/config")
    if isinstance(error, TokenRetrievalError | UnauthorizedSSOTokenError):
        return EnvironmentProblem(f"the SSO session can't be used: {error}",
                                  "run `aws sso login` (with the same profile)")
    if what is ErrorClass.CREDENTIALS:
        if is_expired(error):
            return EnvironmentProblem(
                f"the AWS credentials have expired ({describe(error)})",
                "get fresh ones (aws sso login, or a new session token); long runs should "
                "use a profile, SSO or IRSA, whose credentials are refreshed",
            )
        if error_code(error):
            return EnvironmentProblem(
                f"AWS rejected the credentials ({describe(error)})",
                "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the profile): the key "
                "may be mistyped, deleted or deactivated, or the session token missing",
            )
        return _no_credentials() if "Unable to locate" in str(error) else EnvironmentProblem(
            f"the AWS credentials can't be loaded: {error}",
            "check the credential settings (profile, credential_process, web identity)",
        )
    if what is ErrorClass.DENIED and "sts:AssumeRole" in describe(error):
        return EnvironmentProblem(
            f"the role to assume can't be assumed ({describe(error)})",
            "check --assume-role, the caller's sts:AssumeRole permission and the role's "
            "trust policy",
        )
    if what is ErrorClass.DENIED:
        return EnvironmentProblem(
            f"access denied to sts:GetCallerIdentity ({describe(error)})",
            "GetCallerIdentity needs no IAM permission: a VPC endpoint policy or an "
            "organization policy denies it; allow it there (or check --assume-role)",
        )
    if isinstance(error, ParamValidationError):  # e.g. an --assume-role that is not an ARN
        text = " ".join(str(error).split())
        return EnvironmentProblem(f"the AWS configuration is invalid: {text}",
                                  "check --assume-role (arn:aws:iam::ACCOUNT:role/NAME)")
    if isinstance(error, CONNECTION_ERRORS):
        return _unreachable("sts", url or "its endpoint", error)
    if isinstance(error, BotoCoreError) and what is not ErrorClass.INVALID:
        return EnvironmentProblem(str(error), "check the AWS configuration")
    return None
