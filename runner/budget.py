"""Shared API rate budgets: one token bucket per API family, served by priority.

Every AWS call the process makes takes a token from its family's bucket first,
so hundreds of jobs together stay under the account's quotas (see the "Quotas"
table of the SageMaker reference). A budget is a fixed share (:data:`HEADROOM`)
of its quota, leaving the rest to the account's other clients (the console,
other tools). CloudWatch Logs' read quotas differ by region (GetLogEvents is 10
calls a second in us-west-2, 25 in us-east-1, 30 in eu-west-3), so the budgets
are sized for the region (:func:`default_rates`); a region we have no numbers
for gets the smallest ones published. Where the account may read them,
:func:`quotas_from_service_quotas` sizes them by the account's own quotas.

AWS counts calls per second, so besides the bucket (which saves unused tokens
up to ``burst``) no one-second window may hold more calls than the rate: saved
tokens let a caller go at once after a quiet spell, never let a second hold
``burst + rate`` calls.

When tokens are short, waiters are served by :class:`Priority`: first the calls
that end jobs (a terminal describe, a final drain), then live polls and reads,
then rediscovery. Within one priority they are served first come, first
served, so a job that polls a lot can't starve the others. A waiter moves up
one priority for every ``aging`` seconds it has waited (:func:`precedence`), so
under a constant load of live reads rediscovery is late by about that much,
never starved. A caller cancelled while it waits leaves the queue and takes
nothing: tokens are never set aside for a waiter, only counted out to the one
whose turn it is.

When AWS throttles anyway, the family's rate is cut in half and creeps back up
over time (AIMD): throttling slows the runner down instead of failing a job.

The decisions (:func:`family_of`, :func:`default_rates`, :func:`precedence`,
:func:`refill`, :func:`wait_time`, :func:`decrease`, :func:`recover`,
:func:`quota_family`, :func:`quota_rate`, :func:`rates_from_quotas`) are plain
functions; :class:`Budgets` only adds the clock, the sleep and the queue.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import anyio

# the share of a quota a budget spends: the rest is left to the account's other
# clients, and to the calls botocore's own retries make
HEADROOM = 0.8
# any family without a budget of its own (another service, an operation we don't know)
OTHER_RATE = 50.0
# a waiter moves up one priority for every this many seconds it has waited
AGING = 10.0
_EPSILON = 1e-9


# ---------------------------------------------------------------- families


class Priority(enum.IntEnum):
    """Who is served first when callers wait for the same family's tokens
    (lower first): work that ends jobs, then live reading, then rediscovery."""

    FINISH = 0  # terminal describes, final log drains, stops
    LIVE = 1  # status polls, live log reads
    DISCOVER = 2  # finding new log streams, reconciling polls


# operations with a quota of their own, by service
_OPERATION_FAMILIES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "logs": {
            "GetLogEvents": "get",
            "DescribeLogStreams": "describe",
            "FilterLogEvents": "filter",
        },
        "sqs": {"ReceiveMessage": "receive"},
    }
)
_SAGEMAKER_PREFIXES: tuple[tuple[str, str], ...] = (
    ("Describe", "describe"),
    ("List", "list"),
    ("Create", "create"),
    ("Update", "create"),
    ("Delete", "create"),
    ("Stop", "create"),
)


def family_of(service: str, operation: str) -> str:
    """The budget family ("service.family") an operation draws from."""
    named = _OPERATION_FAMILIES.get(service, {}).get(operation)
    if named is not None:
        return f"{service}.{named}"
    if service == "sagemaker":
        for prefix, family in _SAGEMAKER_PREFIXES:
            if operation.startswith(prefix):
                return f"sagemaker.{family}"
    return f"{service}.other"


# ---------------------------------------------------------------- default sizes


@dataclass(frozen=True)
class _RegionalQuota:
    """A quota, calls per second per account, that depends on the region."""

    elsewhere: float  # "each of the other supported Regions"
    regions: Mapping[str, float]  # the regions the quota table names with their own number
    unknown: float  # the smallest number published, for a region not in _AWS_REGIONS

    def in_region(self, region: str | None) -> float:
        if region is None or region not in _AWS_REGIONS:
            return self.unknown
        return self.regions.get(region, self.elsewhere)


# the commercial regions CloudWatch Logs is in, for which "each of the other
# supported Regions" is known to mean something; China and GovCloud publish
# their own tables, and a region opened later may be one of the exceptions
_AWS_REGIONS = frozenset(
    {
        "af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2",
        "ap-northeast-3", "ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2",
        "ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "ap-southeast-6",
        "ap-southeast-7", "ca-central-1", "ca-west-1", "eu-central-1", "eu-central-2",
        "eu-north-1", "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3",
        "il-central-1", "me-central-1", "me-south-1", "mx-central-1", "sa-east-1",
        "us-east-1", "us-east-2", "us-west-1", "us-west-2",
    }
)  # fmt: skip

# CloudWatch Logs' read quotas, from its quota table (none of them adjustable
# but DescribeLogStreams)
_LOGS_QUOTAS: Mapping[str, _RegionalQuota] = MappingProxyType(
    {
        "logs.get": _RegionalQuota(  # GetLogEvents; older docs said 10 everywhere
            elsewhere=25.0,
            regions={
                "us-west-2": 10.0, "eu-west-1": 10.0, "eu-central-1": 10.0,
                "ap-northeast-3": 10.0, "ap-southeast-3": 10.0, "ca-west-1": 10.0,
                "il-central-1": 10.0, "eu-west-3": 30.0,
            },
            unknown=10.0,
        ),
        "logs.filter": _RegionalQuota(  # FilterLogEvents
            elsewhere=10.0,
            regions={
                "us-east-1": 25.0, "eu-central-1": 5.0, "ap-northeast-3": 5.0,
                "ap-southeast-3": 5.0, "ca-west-1": 5.0, "il-central-1": 5.0,
            },
            unknown=5.0,
        ),
        # DescribeLogStreams: 25 in every region now (adjustable); older docs said 5
        "logs.describe": _RegionalQuota(elsewhere=25.0, regions={}, unknown=5.0),
    }
)  # fmt: skip

# budgets that don't depend on the region (calls per second)
_FIXED_RATES: Mapping[str, float] = MappingProxyType(
    {
        "logs.other": 4.0,  # most other Logs operations: 5 TPS
        "sagemaker.describe": 20.0,  # unpublished; throttles at tens of TPS
        "sagemaker.list": 2.0,  # ListTrainingJobs reported limited to about 2/s
        "sagemaker.create": 2.0,  # Create*/Update*/Delete*/Stop*: "Rate exceeded" when bursty
        "sagemaker.other": 10.0,
        # standard queues take nearly unlimited calls; a long poll waits up to 20 s,
        # so 10 a second keeps 200 pollers going
        "sqs.receive": 10.0,
        "sqs.other": 20.0,  # deletes after receives, queue setup
        "events.other": 10.0,  # rules and targets: set up once per run
    }
)
DEFAULT_BURSTS: Mapping[str, float] = MappingProxyType({"sagemaker.create": 5.0})


def default_rates(region: str | None) -> Mapping[str, float]:
    """The budget of every family in ``region``, calls per second: the
    published quota times :data:`HEADROOM`. A region without published
    numbers (or ``None``, not known yet) gets the smallest of them."""
    rates = dict(_FIXED_RATES)
    for family, quota in _LOGS_QUOTAS.items():
        rates[family] = round(HEADROOM * quota.in_region(region), 3)
    return MappingProxyType(dict(sorted(rates.items())))


# the budgets for a region we know nothing about, and the list of families
DEFAULT_RATES: Mapping[str, float] = default_rates(None)


# ---------------------------------------------------------------- decisions


def precedence(priority: int, arrived: float, aging: float) -> tuple[float, float]:
    """The order in which waiters are served (smallest first).

    A waiter counts as having arrived ``aging`` seconds later for each priority
    level it is below :attr:`Priority.FINISH`: among waiters of one priority the
    earliest goes first, and a waiter is overtaken by a more urgent one only if
    that one arrived less than ``aging`` seconds (per level between them) after
    it. The same as a priority that improves by one level per ``aging`` seconds
    waited, but fixed at arrival. ``aging = inf`` is strict priority: a less
    urgent waiter waits for as long as more urgent ones keep coming."""
    if math.isinf(aging):
        return (float(priority), arrived)
    # the arrival breaks ties the sum rounds away (and exact ones: the longer wait first)
    return (arrived + priority * aging, arrived)


def refill(tokens: float, rate: float, elapsed: float, burst: float) -> float:
    """Tokens in a bucket after ``elapsed`` seconds at ``rate``, capped at ``burst``."""
    return min(burst, tokens + rate * max(0.0, elapsed))


def wait_time(tokens: float, rate: float) -> float:
    """Seconds until the bucket holds one whole token."""
    # rounding can leave a bucket a hair short of a token after waiting for
    # exactly that token; a wait below the clock's resolution would never end
    if tokens >= 1.0 - _EPSILON or math.isinf(rate):
        return 0.0
    return (1.0 - tokens) / rate


def decrease(rate: float, floor: float, factor: float = 0.5) -> float:
    """The multiplicative step of AIMD, when AWS throttled us."""
    return max(floor, rate * factor)


def recover(rate: float, max_rate: float, elapsed: float, per_second: float) -> float:
    """The additive step of AIMD: the rate climbs back linearly to its ceiling."""
    return min(max_rate, rate + per_second * max(0.0, elapsed))


# ---------------------------------------------------------------- the account's quotas

# Service Quotas codes of the Logs read quotas. AWS's quota page links only the
# adjustable one (DescribeLogStreams, L-3F243AD0); the other two codes are not
# published by AWS, so a quota is also recognised by its name, which starts
# with the operation ("GetLogEvents throttle limit in TPS").
_QUOTA_CODES: Mapping[str, str] = MappingProxyType(
    {"L-4FE15505": "logs.get", "L-55E3CA17": "logs.filter", "L-3F243AD0": "logs.describe"}
)
_PERIOD_SECONDS: Mapping[str, float] = MappingProxyType(
    {
        "MICROSECOND": 1e-6,
        "MILLISECOND": 1e-3,
        "SECOND": 1.0,
        "MINUTE": 60.0,
        "HOUR": 3600.0,
        "DAY": 86400.0,
        "WEEK": 604800.0,
    }
)
# a page holds up to 100 quotas; Logs has fewer than that
_MAX_QUOTA_PAGES = 10


def quota_family(quota: Mapping[str, Any]) -> str | None:
    """The budget family a Service Quotas entry (of service "logs") sizes, if any."""
    family = _QUOTA_CODES.get(str(quota.get("QuotaCode", "")))
    if family is not None:
        return family
    name = str(quota.get("QuotaName", ""))
    if "burst" in name.lower():
        return None
    for operation, short in _OPERATION_FAMILIES["logs"].items():
        if name.startswith(f"{operation} throttle limit"):
            return f"logs.{short}"
    return None


def quota_rate(quota: Mapping[str, Any]) -> float | None:
    """A Service Quotas entry's value in calls per second (a quota without a
    period is per second, as the Logs throttle limits are); ``None`` if unusable."""
    value = quota.get("Value")
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        return None
    period = quota.get("Period") or {}
    if not isinstance(period, Mapping):
        return None
    seconds = _PERIOD_SECONDS.get(str(period.get("PeriodUnit", "SECOND")))
    count = period.get("PeriodValue", 1)
    if seconds is None or not isinstance(count, int | float) or count <= 0:
        return None
    return float(value) / (seconds * count)


def _quota_region(quota: Mapping[str, Any]) -> str | None:
    # arn:aws:servicequotas:us-east-1:123456789012:logs/L-4FE15505
    parts = str(quota.get("QuotaArn", "")).split(":")
    return parts[3] if len(parts) > 3 and parts[3] else None


def rates_from_quotas(
    applied: Iterable[Mapping[str, Any]],
    defaults: Iterable[Mapping[str, Any]] = (),
    region: str | None = None,
) -> dict[str, float]:
    """Budget rates (quota times :data:`HEADROOM`) from Service Quotas entries:
    the account's ``applied`` values win over AWS's ``defaults``. Entries whose
    ARN names another region than ``region`` are ignored."""
    found: dict[str, float] = {}
    for quotas in (defaults, applied):
        for quota in quotas:
            family, rate = quota_family(quota), quota_rate(quota)
            where = _quota_region(quota)
            if family is None or rate is None or (region and where and where != region):
                continue
            found[family] = round(HEADROOM * rate, 3)
    return found


Call = Callable[..., Awaitable[Mapping[str, Any]]]


async def _logs_quotas(call: Call, operation: str) -> list[Mapping[str, Any]]:
    quotas: list[Mapping[str, Any]] = []
    params: dict[str, Any] = {"ServiceCode": "logs", "MaxResults": 100}
    try:
        for _ in range(_MAX_QUOTA_PAGES):
            page = await call("service-quotas", operation, **params)
            quotas.extend(page.get("Quotas", []))
            token = page.get("NextToken")
            if not token:
                break
            params["NextToken"] = token
    except Exception:
        return []  # AccessDenied, no such service, no network: nothing from this listing
    return quotas


async def quotas_from_service_quotas(
    call: Call, region: str | None, *, timeout: float = 10.0
) -> dict[str, float]:
    """Budget rates for the Logs read families from the account's quotas in
    ``region``, at the same :data:`HEADROOM` as the defaults; pass them to
    :meth:`Budgets.size_for`. ``call(service, operation, **params)`` is an AWS
    call (:meth:`smrun.aws.Aws.call`) whose client is in ``region``.

    The account's applied values (ListServiceQuotas) come first; the families
    they don't cover are looked up in AWS's defaults for the region
    (ListAWSDefaultServiceQuotas).

    Error handling: never raises (but cancellation). A listing that fails
    (AccessDenied, no such service, no network) contributes nothing, and what
    is still unanswered after ``timeout`` seconds is given up. With nothing
    found the result is empty, and the region's defaults stay."""
    applied: list[Mapping[str, Any]] = []
    defaults: list[Mapping[str, Any]] = []
    with anyio.move_on_after(timeout):
        applied = await _logs_quotas(call, "ListServiceQuotas")
        if not set(rates_from_quotas(applied, region=region)) >= set(_LOGS_QUOTAS):
            defaults = await _logs_quotas(call, "ListAWSDefaultServiceQuotas")
    return rates_from_quotas(applied, defaults, region)


# ---------------------------------------------------------------- Budgets


@dataclass(frozen=True)
class PriorityStats:
    acquired: int  # tokens handed out to callers of this priority
    wait_seconds: float  # total time they spent waiting

    @property
    def mean_wait(self) -> float:
        return self.wait_seconds / self.acquired if self.acquired else 0.0


@dataclass(frozen=True)
class FamilyStats:
    acquired: int  # tokens handed out
    throttled: int  # times AWS throttled a call of this family
    wait_seconds: float  # total time callers spent waiting for a token
    rate: float  # current rate, tokens per second (below max_rate after throttling)
    max_rate: float
    waiting: int = 0  # callers waiting for a token right now
    by_priority: Mapping[Priority, PriorityStats] = field(default_factory=dict)

    @property
    def mean_wait(self) -> float:
        return self.wait_seconds / self.acquired if self.acquired else 0.0


@dataclass(order=True)
class _Waiter:
    key: tuple[float, float]
    arrival: int  # ties in key: first come, first served
    wake: anyio.Event = field(default_factory=anyio.Event, compare=False)


class _Bucket:
    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.max_rate = self.rate = rate
        self.burst = self.tokens = burst
        self.floor = self.recovery = 0.0
        self._limits()
        self.updated = now
        self.last_decrease = -math.inf
        self.queue: list[_Waiter] = []  # a heap: queue[0] is served next
        self.sleeper: _Waiter | None = None  # the one waiting for the next token
        self.acquired = 0
        self.throttled = 0
        self.wait_seconds = 0.0
        self.acquired_by = dict.fromkeys(Priority, 0)
        self.waited_by = dict.fromkeys(Priority, 0.0)
        self.recent: deque[float] = deque()  # when the calls of the last second were let go

    def window_wait(self, now: float) -> float:
        """Seconds until one more call keeps every one-second window at or under
        the rate: AWS counts calls per second, and a full bucket would otherwise
        let ``burst + rate`` go in one second."""
        if math.isinf(self.rate):
            return 0.0
        cap = max(1, math.floor(self.rate + _EPSILON))
        while self.recent and self.recent[0] <= now - 1.0:
            self.recent.popleft()
        if len(self.recent) < cap:
            return 0.0
        return self.recent[len(self.recent) - cap] + 1.0 - now

    def delay(self, now: float) -> float:
        """Seconds until the next call may go: a whole token, and room in the window."""
        self.advance(now)
        return max(wait_time(self.tokens, self.rate), self.window_wait(now))

    def take(self, now: float) -> None:
        self.tokens -= 1.0
        self.recent.append(now)

    def _limits(self) -> None:
        # a family that is throttled down stays above this many calls per second
        self.floor = min(self.max_rate, max(self.max_rate * 0.05, 0.05))
        # full recovery from the floor in about 20 seconds without new throttling
        self.recovery = self.max_rate / 20.0

    def advance(self, now: float) -> None:
        elapsed = now - self.updated
        self.tokens = refill(self.tokens, self.rate, elapsed, self.burst)
        self.rate = recover(self.rate, self.max_rate, elapsed, self.recovery)
        self.updated = now

    def resize(self, rate: float, burst: float, now: float) -> None:
        self.advance(now)
        unthrottled = self.rate >= self.max_rate
        self.max_rate = rate
        # a family that was throttled keeps climbing from where it is
        self.rate = rate if unthrottled else min(self.rate, rate)
        self._limits()
        self.burst = burst
        self.tokens = min(self.tokens, burst)

    def wake_first(self) -> None:
        if self.queue:
            self.queue[0].wake.set()

    def leave(self, waiter: _Waiter) -> None:
        self.queue = [w for w in self.queue if w is not waiter]
        heapq.heapify(self.queue)
        self.wake_first()

    def served(self, priority: Priority, waited: float) -> None:
        self.acquired += 1
        self.wait_seconds += waited
        self.acquired_by[priority] += 1
        self.waited_by[priority] += waited


class Budgets:
    """Token buckets per API family, shared by every job in the process.

    ``region`` sizes the defaults (:func:`default_rates`; ``None``: not known,
    the smallest published quotas). ``rates`` and ``bursts`` override them per
    family ("logs.get", "sagemaker.create", ...); ``math.inf`` turns a family's
    limit off. ``aging`` is how long a waiter waits before it counts as one
    priority more urgent (:func:`precedence`).
    """

    # throttling errors that arrive together come from calls sent together:
    # one cut per this many seconds, so a burst of them doesn't hit the floor
    decrease_cooldown = 1.0

    def __init__(
        self,
        rates: Mapping[str, float] | None = None,
        *,
        region: str | None = None,
        bursts: Mapping[str, float] | None = None,
        aging: float = AGING,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.aging = aging
        self._given_rates = dict(rates or {})
        self._bursts = {**DEFAULT_BURSTS, **(bursts or {})}
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[str, _Bucket] = {}
        self._arrivals = itertools.count()
        self._rates: dict[str, float] = {}
        self.region: str | None = None
        self.size_for(region)

    def size_for(self, region: str | None, measured: Mapping[str, float] | None = None) -> None:
        """Size the budgets for ``region`` and, where given, for the account's
        ``measured`` budget rates (:func:`quotas_from_service_quotas`); the
        ``rates`` given to the constructor still win. For a region learnt after
        the budgets were made: families in use take their new size at once."""
        self.region = region
        self._rates = {**default_rates(region), **(measured or {}), **self._given_rates}
        now = self._clock()
        for family, bucket in self._buckets.items():
            bucket.resize(*self._size(family), now)

    def _size(self, family: str) -> tuple[float, float]:
        rate = self._rates.get(family, OTHER_RATE)
        burst = self._bursts.get(family, max(1.0, rate) if not math.isinf(rate) else 1.0)
        return rate, burst

    def _bucket(self, family: str) -> _Bucket:
        bucket = self._buckets.get(family)
        if bucket is None:
            bucket = _Bucket(*self._size(family), self._clock())
            self._buckets[family] = bucket
        return bucket

    async def acquire(
        self, service: str, operation: str, priority: Priority = Priority.LIVE
    ) -> None:
        """Wait for a token of the operation's family: the most urgent waiter
        first, first come, first served within one priority (see :func:`precedence`)."""
        bucket = self._bucket(family_of(service, operation))
        priority = Priority(priority)
        arrived = self._clock()
        if math.isinf(bucket.max_rate):
            bucket.served(priority, 0.0)
            return
        if not bucket.queue:
            if bucket.delay(arrived) <= 0:
                bucket.take(arrived)
                bucket.served(priority, 0.0)
                return
        waiter = _Waiter(precedence(priority, arrived, self.aging), next(self._arrivals))
        heapq.heappush(bucket.queue, waiter)
        try:
            await self._turn(bucket, waiter)
        except BaseException:
            bucket.leave(waiter)
            raise
        bucket.served(priority, self._clock() - arrived)

    async def _turn(self, bucket: _Bucket, waiter: _Waiter) -> None:
        # One waiter at a time (the first in the queue) sleeps until the next
        # token; whoever is first when it wakes takes that token, so a more
        # urgent caller that arrived meanwhile goes next. Whoever leaves the
        # queue or stops sleeping wakes the one that is first now.
        while True:
            if bucket.queue[0] is not waiter or bucket.sleeper is not None:
                waiter.wake = anyio.Event()
                await waiter.wake.wait()
                continue
            now = self._clock()
            delay = bucket.delay(now)
            if delay <= 0:
                heapq.heappop(bucket.queue)
                bucket.take(now)
                bucket.wake_first()
                return
            bucket.sleeper = waiter
            try:
                # the rate can change while we sleep (throttled, recovering):
                # recompute after waking instead of trusting this delay
                await self._sleep(delay)
            finally:
                bucket.sleeper = None
            bucket.wake_first()

    def throttled(self, service: str, operation: str) -> None:
        """AWS throttled a call: slow the family down."""
        bucket = self._bucket(family_of(service, operation))
        bucket.throttled += 1
        if math.isinf(bucket.max_rate):
            return
        now = self._clock()
        bucket.advance(now)
        if now - bucket.last_decrease < self.decrease_cooldown:
            return
        bucket.rate = decrease(bucket.rate, bucket.floor)
        # what was saved up was saved at the old rate: don't spend it in a burst
        bucket.tokens = min(bucket.tokens, 0.0)
        bucket.last_decrease = now

    def rate(self, service: str, operation: str) -> float:
        """The current rate of the operation's family, tokens per second."""
        bucket = self._bucket(family_of(service, operation))
        bucket.advance(self._clock())
        return bucket.rate

    def stats(self) -> dict[str, FamilyStats]:
        """Counts per family (and per priority) used so far, for the benchmark
        and the fault tests."""
        now = self._clock()
        out: dict[str, FamilyStats] = {}
        for family, bucket in sorted(self._buckets.items()):
            bucket.advance(now)
            out[family] = FamilyStats(
                acquired=bucket.acquired,
                throttled=bucket.throttled,
                wait_seconds=bucket.wait_seconds,
                rate=bucket.rate,
                max_rate=bucket.max_rate,
                waiting=len(bucket.queue),
                by_priority=MappingProxyType(
                    {p: PriorityStats(bucket.acquired_by[p], bucket.waited_by[p]) for p in Priority}
                ),
            )
        return out
