"""Jobs that wait their turn: for a slot under ``max_parallel``, and for capacity
under SageMaker's quotas.

:class:`Slots` holds a run's concurrency limits (the whole run's, a kind's, a
matrix's). A job holds one slot of every limit that applies to it from before
it is created until it ends; jobs waiting for slots are served in manifest
order, so a sweep runs its items in order.

:class:`Capacity` is where a create that SageMaker refused with
ResourceLimitExceeded waits ("The account-level service limit 'ml.m5.large for
training job usage' is 2 Instances..."): no capacity now, not a failure. Each
quota has a queue, served in the order jobs were refused. When a job of the run
ends, the first job of each queue its instance type could free (a quota that
names that instance type, or one that names none, such as a number of
concurrent jobs) tries again: one probe per job that ends, not a stampede of
every waiting job. When no job of the run with that instance type is running
(the capacity is held by someone else), the first job tries again after a
backoff (``retry``, doubling up to ``retry_max``). A job fails only when no job
of the run has ended for ``deadline`` seconds since it was refused, with the
quota's name and the commands that ask for more.
"""

from __future__ import annotations

import bisect
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio

_QUOTA_NAME = re.compile(r"service limit '([^']+)'")
_INSTANCE_TYPE = re.compile(r"\bml\.[a-z0-9]+\.[a-z0-9]+\b")


class NoCapacity(Exception):
    """SageMaker refused a create or update with ResourceLimitExceeded."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.quota = quota_name(message)


class CapacityTimeout(Exception):
    """No job of the run ended for the deadline while a job waited for capacity."""


def quota_name(message: str) -> str:
    """The quota SageMaker's ResourceLimitExceeded message names ("ml.m5.large
    for training job usage"), or the message itself when it names none."""
    found = _QUOTA_NAME.search(message)
    return found.group(1) if found else message.strip()


def instance_types(request: Any) -> frozenset[str]:
    """Every ``InstanceType`` a request asks for (training, processing,
    transform, endpoint config variants), however deep."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                if key == "InstanceType" and isinstance(item, str):
                    found.add(item)
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(request)
    return frozenset(found)


def increase_hint(quota: str) -> str:
    """The commands that find the quota's code and ask for more of it."""
    return (
        "find its code with: aws service-quotas list-service-quotas --service-code sagemaker "
        f"--query \"Quotas[?QuotaName=='{quota}'].[QuotaCode,Value]\"; then ask for more with: "
        "aws service-quotas request-service-quota-increase --service-code sagemaker "
        "--quota-code CODE --desired-value N"
    )


# -------------------------------------------------------------------- slots


@dataclass(eq=False)
class _Claim:
    order: int
    names: tuple[str, ...]
    granted: anyio.Event = field(default_factory=anyio.Event)


class Slots:
    """A run's concurrency limits: limit name -> how many jobs may hold it at once."""

    def __init__(self, limits: Mapping[str, int]) -> None:
        for name, size in limits.items():
            if size < 1:
                raise ValueError(f"limit {name!r} must be at least 1, not {size}")
        self.limits = dict(limits)
        self.used: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()  # the most held at once, by limit
        self._waiting: list[tuple[int, int, _Claim]] = []  # (order, arrival, claim)
        self._arrivals = 0

    def waiting(self) -> int:
        return len(self._waiting)

    @asynccontextmanager
    async def hold(self, order: int, names: Iterable[str]) -> AsyncIterator[None]:
        """Hold one slot of each limit in ``names`` (unknown names are no limit)
        while the block runs; ``order`` is the job's place in the manifest."""
        claim = _Claim(order, tuple(n for n in dict.fromkeys(names) if n in self.limits))
        if not claim.names:
            yield
            return
        self._arrivals += 1
        bisect.insort(self._waiting, (order, self._arrivals, claim), key=lambda w: w[:2])
        self._grant()
        try:
            await claim.granted.wait()
        except BaseException:
            if claim.granted.is_set():
                self._release(claim)
            else:
                self._waiting = [w for w in self._waiting if w[2] is not claim]
                self._grant()  # a claim behind this one may fit now
            raise
        try:
            yield
        finally:
            self._release(claim)

    def _grant(self) -> None:
        # in manifest order; a claim that does not fit does not block one behind
        # it that needs other limits
        kept: list[tuple[int, int, _Claim]] = []
        for entry in self._waiting:
            claim = entry[2]
            if all(self.used[n] < self.limits[n] for n in claim.names):
                for name in claim.names:
                    self.used[name] += 1
                    self.peak[name] = max(self.peak[name], self.used[name])
                claim.granted.set()
            else:
                kept.append(entry)
        self._waiting = kept

    def _release(self, claim: _Claim) -> None:
        for name in claim.names:
            self.used[name] -= 1
        self._grant()


# ------------------------------------------------------------------ capacity


@dataclass(eq=False)
class _Waiter:
    key: str
    since: float
    wake: anyio.Event = field(default_factory=anyio.Event)


@dataclass(eq=False)
class _Queue:
    quota: str
    instance_type: str | None  # the one the quota names, if any
    waiters: list[_Waiter] = field(default_factory=list)
    credits: int = 0  # jobs that ended since the head last tried, that may have freed some
    refusals: int = 0  # refusals in a row of the head's tries: its backoff


class Capacity:
    """The queues of jobs waiting for a quota (see the module's docstring)."""

    def __init__(
        self,
        *,
        retry: float = 30.0,
        retry_max: float = 300.0,
        deadline: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.retry = retry
        self.retry_max = max(retry_max, retry)
        self.deadline = deadline
        self.clock = clock
        self.running: Counter[str] = Counter()  # instance types of the run's jobs that run
        self.refusals = 0  # ResourceLimitExceeded answers absorbed
        self._queues: dict[str, _Queue] = {}
        self._last_end = clock()

    def waiting(self) -> int:
        return sum(len(q.waiters) for q in self._queues.values())

    def started(self, types: Iterable[str]) -> None:
        """A job of the run was created (or attached to): it holds these types."""
        self.running.update(types)

    def ended(self, types: Iterable[str]) -> None:
        """A job of the run that was started ended: what it held may be free."""
        held = set(types)
        self.running.subtract(held)
        self._last_end = self.clock()
        for queue in self._queues.values():
            if queue.instance_type is None or queue.instance_type in held:
                queue.credits += 1
                if queue.waiters:
                    queue.waiters[0].wake.set()

    def ahead(self, types: Iterable[str]) -> NoCapacity | None:
        """The refusal of a queue that a new job of these instance types would
        meet: jobs already wait there, so it joins them instead of taking the
        capacity a job that ends frees for the first of them."""
        held = set(types)
        for queue in self._queues.values():
            if queue.waiters and (queue.instance_type is None or queue.instance_type in held):
                return NoCapacity(f"behind {len(queue.waiters)} job(s) waiting for "
                                  f"service limit '{queue.quota}'")
        return None

    def granted(self, quota: str) -> None:
        """A job refused for ``quota`` was created after all: the backoff starts over."""
        queue = self._queues.get(quota)
        if queue is not None:
            queue.refusals = 0

    async def wait(
        self, key: str, refused: NoCapacity, *, again: bool = False, counted: bool = True
    ) -> None:
        """Wait until job ``key`` (refused with ``refused``) should try again.
        ``again``: it was the first of its queue and was refused once more (it
        keeps its place, and what woke it is spent). Raises
        :class:`CapacityTimeout` when no job of the run ended for ``deadline``.
        ``counted``: SageMaker refused it (not a job that joined a queue it
        saw by :meth:`ahead`)."""
        if counted:
            self.refusals += 1
        queue = self._queues.get(refused.quota)
        if queue is None:
            named = _INSTANCE_TYPE.search(refused.quota)
            queue = self._queues[refused.quota] = _Queue(
                refused.quota, named.group(0) if named else None
            )
        waiter = _Waiter(key, self.clock())
        if again:
            queue.credits = 0
            queue.refusals += 1
            queue.waiters.insert(0, waiter)
        else:
            queue.waiters.append(waiter)
        try:
            await self._turn(queue, waiter)
        finally:
            if waiter in queue.waiters:
                head = queue.waiters[0] is waiter
                queue.waiters.remove(waiter)
                if head and queue.waiters:
                    queue.waiters[0].wake.set()  # the next one is first now

    async def _turn(self, queue: _Queue, waiter: _Waiter) -> None:
        while True:
            now = self.clock()
            left = self.deadline - (now - max(self._last_end, waiter.since))
            if left <= 0:
                raise CapacityTimeout(
                    f"no job of this run ended for {self.deadline:.0f}s while waiting for "
                    f"capacity ({queue.quota})"
                )
            first = queue.waiters[0] is waiter
            if first and queue.credits > 0:
                queue.credits -= 1
                return
            timeout = left
            if first and not self._holds(queue):
                # nothing of ours holds it: someone else does; try again later
                backoff = min(self.retry * 2 ** queue.refusals, self.retry_max)
                timeout = min(left, backoff)
            waiter.wake = anyio.Event()
            with anyio.move_on_after(timeout) as scope:
                await waiter.wake.wait()
            if scope.cancelled_caught and first and timeout < left:
                return  # the backoff passed: the first one tries again

    def _holds(self, queue: _Queue) -> bool:
        if queue.instance_type is None:
            return any(count > 0 for count in self.running.values())
        return self.running[queue.instance_type] > 0


def limit_names(kind: str, matrix: str | None) -> Sequence[str]:
    """The limits a job may hold a slot of: the run's, its kind's, its matrix's."""
    names = ["run", f"kind:{kind}"]
    if matrix is not None:
        names.append(f"matrix:{matrix}")
    return names


def run_limits(
    run: int | None, kinds: Mapping[str, int], matrices: Mapping[str, int | None]
) -> dict[str, int]:
    """A run's ``max_parallel`` limits (the run's, by kind, by matrix), named
    as :func:`limit_names` names them; None is no limit."""
    limits = {f"kind:{kind}": size for kind, size in kinds.items()}
    limits.update({f"matrix:{key}": size for key, size in matrices.items() if size is not None})
    if run is not None:
        limits["run"] = run
    return limits
