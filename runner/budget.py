"""Shared API rate budgets: one token bucket per API family.

Every AWS call the process makes takes a token from its family's bucket first,
so hundreds of jobs together stay under the account's quotas (see the "Quotas"
table of the SageMaker reference). Waiters queue first come, first served, so
a job that polls a lot can't starve the others. When AWS throttles anyway, the
family's rate is cut in half and creeps back up over time (AIMD): throttling
slows the runner down instead of failing a job.

The decisions (:func:`family_of`, :func:`refill`, :func:`wait_time`,
:func:`decrease`, :func:`recover`) are plain functions; :class:`Budgets` only
adds the clock, the sleep and the queue.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import anyio

# rate (tokens per second) and burst (bucket size) of each family, under the
# published quotas with some room for other clients of the same account
DEFAULT_RATES: Mapping[str, float] = MappingProxyType(
    {
        "logs.get": 20.0,  # GetLogEvents: 25 TPS in newer docs, 10 in older ones
        "logs.describe": 4.0,  # DescribeLogStreams: 5 TPS
        "logs.filter": 4.0,  # FilterLogEvents: 5 TPS
        "logs.other": 20.0,
        "sagemaker.describe": 20.0,  # unpublished; throttles at tens of TPS
        "sagemaker.list": 2.0,  # ListTrainingJobs reported limited to about 2/s
        "sagemaker.create": 2.0,  # Create*/Update*/Delete*/Stop*: "Rate exceeded" when bursty
        "sagemaker.other": 10.0,
    }
)
DEFAULT_BURSTS: Mapping[str, float] = MappingProxyType({"sagemaker.create": 5.0})
# any family not listed above (another service, an operation we don't know)
OTHER_RATE = 50.0
_EPSILON = 1e-9

_LOGS_FAMILIES: Mapping[str, str] = MappingProxyType(
    {
        "GetLogEvents": "get",
        "DescribeLogStreams": "describe",
        "FilterLogEvents": "filter",
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


class Priority(enum.IntEnum):
    """Who is served first when callers wait for the same family's tokens
    (lower first): work that ends jobs, then live reading, then rediscovery."""

    FINISH = 0  # terminal describes, final log drains, stops
    LIVE = 1  # status polls, live log reads
    DISCOVER = 2  # finding new log streams, reconciling polls


def family_of(service: str, operation: str) -> str:
    """The budget family ("service.family") an operation draws from."""
    if service == "logs":
        return f"logs.{_LOGS_FAMILIES.get(operation, 'other')}"
    if service == "sagemaker":
        for prefix, family in _SAGEMAKER_PREFIXES:
            if operation.startswith(prefix):
                return f"sagemaker.{family}"
    return f"{service}.other"


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


@dataclass(frozen=True)
class FamilyStats:
    acquired: int  # tokens handed out
    throttled: int  # times AWS throttled a call of this family
    wait_seconds: float  # total time callers spent waiting for a token
    rate: float  # current rate, tokens per second (below max_rate after throttling)
    max_rate: float


class _Bucket:
    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.max_rate = rate
        self.rate = rate
        self.burst = burst
        # a family that is throttled down stays above this many calls per second
        self.floor = min(rate, max(rate * 0.05, 0.05))
        # full recovery from the floor in about 20 seconds without new throttling
        self.recovery = rate / 20.0
        self.tokens = burst
        self.updated = now
        self.last_decrease = -math.inf
        self.lock = anyio.Lock()  # FIFO: waiters are served in arrival order
        self.acquired = 0
        self.throttled = 0
        self.wait_seconds = 0.0

    def advance(self, now: float) -> None:
        elapsed = now - self.updated
        self.tokens = refill(self.tokens, self.rate, elapsed, self.burst)
        self.rate = recover(self.rate, self.max_rate, elapsed, self.recovery)
        self.updated = now


class Budgets:
    """Token buckets per API family, shared by every job in the process.

    ``rates`` and ``bursts`` override the defaults per family ("logs.get",
    "sagemaker.create", ...); ``math.inf`` turns a family's limit off.
    """

    # throttling errors that arrive together come from calls sent together:
    # one cut per this many seconds, so a burst of them doesn't hit the floor
    decrease_cooldown = 1.0

    def __init__(
        self,
        rates: Mapping[str, float] | None = None,
        *,
        bursts: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._rates = {**DEFAULT_RATES, **(rates or {})}
        self._bursts = {**DEFAULT_BURSTS, **(bursts or {})}
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[str, _Bucket] = {}

    def _bucket(self, family: str) -> _Bucket:
        bucket = self._buckets.get(family)
        if bucket is None:
            rate = self._rates.get(family, OTHER_RATE)
            burst = self._bursts.get(family, max(1.0, rate) if not math.isinf(rate) else 1.0)
            bucket = _Bucket(rate, burst, self._clock())
            self._buckets[family] = bucket
        return bucket

    async def acquire(
        self, service: str, operation: str, priority: Priority = Priority.LIVE
    ) -> None:
        """Wait for a token of the operation's family (FIFO among waiters)."""
        bucket = self._bucket(family_of(service, operation))
        if math.isinf(bucket.max_rate):
            bucket.acquired += 1
            return
        started = self._clock()
        async with bucket.lock:
            while True:
                bucket.advance(self._clock())
                delay = wait_time(bucket.tokens, bucket.rate)
                if delay <= 0:
                    break
                # the rate can change while we sleep (throttled, recovering):
                # recompute after waking instead of trusting this delay
                await self._sleep(delay)
            bucket.tokens -= 1.0
            bucket.acquired += 1
            bucket.wait_seconds += self._clock() - started

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
        """Counts per family used so far, for the benchmark and the fault tests."""
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
            )
        return out
