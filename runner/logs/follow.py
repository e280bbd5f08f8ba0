"""Follow every CloudWatch Logs stream of one job with GetLogEvents, completely and in order.

This is the per-job reader: one GetLogEvents call per stream and round, one
DescribeLogStreams pass per job and discovery. It is the ``describe``
strategy's reader for a few jobs and the fallback; many jobs share the
batched reader of :mod:`smrun.logs.hub` instead.

The rules come from the "CloudWatch Logs layout" section of the SageMaker
reference, each one a way earlier tools lost lines:

- streams are found by ``{job}/`` prefixes (with the slash, or ``job-1`` would
  read ``job-10``), paginated, and rediscovered while the job runs, because a
  stream appears only when its container first writes;
- each stream is read with GetLogEvents from the head, forwarding
  ``nextForwardToken``; an empty page does not mean the end, only a returned
  token equal to the one sent does;
- after the job's terminal status, reading goes on until every stream is at its
  end and a grace period has passed, then streams are discovered once more and
  new ones drained too.

Within one read round the events of all streams are merged by timestamp, so the
interleaving a person sees is close to what happened; order within a stream is
never changed. Idle streams are read less often than busy ones, because
GetLogEvents is budgeted per account.

The decisions are the plain functions at the top; :class:`LogFollower` is the
I/O around them.
"""

from __future__ import annotations

import heapq
import re
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio

from smrun.budget import Priority
from smrun.errors import is_not_found, is_throttling
from smrun.events import LogLine
from smrun.logs.positions import parse_position
from smrun.types import LogSource

# DescribeLogStreams rejects a larger limit
DESCRIBE_PAGE = 50

# a stream name's instance part ends in "-{epoch seconds}" (training, processing, transform)
_EPOCH_SUFFIX = re.compile(r"-\d{9,}$")

K = TypeVar("K", bound=Hashable)
LogEvent = Mapping[str, Any]


# ``await call("logs", "GetLogEvents", logGroupName=..., ...)``: one AWS call,
# through the process's budgets and retries; errors carry botocore's
# ``response["Error"]["Code"]``
LogsCall = Callable[..., Awaitable[Any]]


def check_prefixes(sources: Sequence[LogSource]) -> None:
    """Refuse a prefix without its slash: without it job-1 would also follow job-10."""
    for source in sources:
        if not source.prefix.endswith("/"):
            raise ValueError(
                f"log prefix {source.prefix!r} must end with '/': "
                "without it job-1 would also follow job-10"
            )


async def list_prefix(
    call: LogsCall,
    group: str,
    prefix: str,
    *,
    priority: Priority | None = None,
    counted: Callable[[], None] = lambda: None,
) -> tuple[list[str], str]:
    """Every stream name under ``prefix``, every page (DescribeLogStreams), and how
    the listing ended: "complete", "not_found" (no such group yet: it is created
    when the first container writes) or "throttled" (what was listed so far).
    ``counted`` is told of each call after the first; ``priority`` is passed to
    ``call`` when given (the follower's callers may not take one)."""
    extra: dict[str, Any] = {} if priority is None else {"priority": priority}
    names: list[str] = []
    token: str | None = None
    seen: set[str] = set()
    while True:
        params: dict[str, Any] = {
            "logGroupName": group,
            "logStreamNamePrefix": prefix,
            "limit": DESCRIBE_PAGE,
        }
        if token is not None:
            params["nextToken"] = token
            counted()
        try:
            response = await call("logs", "DescribeLogStreams", **extra, **params)
        except Exception as error:
            if is_not_found(error):
                return names, "not_found"
            if is_throttling(error):
                return names, "throttled"
            raise
        names.extend(
            s["logStreamName"]
            for s in response.get("logStreams", [])
            if str(s.get("logStreamName", "")).startswith(prefix)
        )
        token = response.get("nextToken") or None
        # a repeated token would loop forever on a misbehaving backend
        if token is None or token in seen:
            return names, "complete"
        seen.add(token)


# ---------------------------------------------------------------- decisions


def instance_label(stream: str, prefix: str, label: str = "") -> str:
    """What a person sees in front of a line: the stream's instance, without
    the job prefix and the epoch (``job/algo-1-1700000000`` → ``algo-1``;
    ``job/i-0ab-1700000000/data-log`` → ``i-0ab/data-log``), after the source's
    label if it has one."""
    rest = stream[len(prefix) :] if stream.startswith(prefix) else stream
    head, slash, tail = rest.partition("/")
    short = _EPOCH_SUFFIX.sub("", head) or head
    instance = f"{short}{slash}{tail}" if short or tail else stream
    return f"{label}:{instance}" if label else instance


def stream_at_end(sent: str | None, returned: str | None) -> bool:
    """A stream is at its (current) end only when GetLogEvents gives back the
    token it was sent; an empty page alone proves nothing."""
    return sent is not None and returned == sent


def keep_reading(sent: str | None, returned: str | None, pages: int, max_pages: int) -> bool:
    """Whether to read the next page of a stream within the same round: yes
    while the token moves, up to ``max_pages`` so a busy stream can't starve
    the others (it will be read again next round)."""
    return returned is not None and not stream_at_end(sent, returned) and pages < max_pages


def next_read_delay(idle_rounds: int, poll_interval: float, idle_max: float) -> float:
    """How long after a read a stream is due again: a stream that gave lines
    is read every round; one that stayed idle backs off exponentially, up to
    ``idle_max``."""
    if idle_rounds <= 0:
        return 0.0
    return min(idle_max, poll_interval * 2.0 ** (idle_rounds - 1))


def merge_round(events_by_stream: Mapping[K, Sequence[LogEvent]]) -> list[tuple[K, LogEvent]]:
    """The events of one round from all streams, merged by timestamp. Stable:
    each stream's own order is kept even if its timestamps go backwards, and
    equal timestamps keep the streams' order in the mapping."""
    tagged = [[(key, event) for event in events] for key, events in events_by_stream.items()]
    # heapq.merge takes equal keys from the earlier input first, and never
    # reorders an input: both properties the docstring promises
    return list(heapq.merge(*tagged, key=lambda item: item[1]["timestamp"]))


def next_discovery_delay(current: float, found_new: bool, base: float, cap: float) -> float:
    """Discovery backs off while it finds nothing new (DescribeLogStreams has the
    smallest quota of all), and comes back to ``base`` when a stream appears."""
    if found_new:
        return base
    return min(cap, current * 2)


def drain_finished(all_at_end: bool, since_terminal: float, grace: float) -> bool:
    """Late events keep arriving after a job's terminal status: the drain may
    stop only when every stream is at its end and the grace period is over."""
    return all_at_end and since_terminal >= grace


# ---------------------------------------------------------------- the follower


@dataclass
class FollowerStats:
    calls: int = 0  # AWS calls made (both operations)
    pages: int = 0  # GetLogEvents responses
    events: int = 0  # lines published
    streams: int = 0  # streams known
    discoveries: int = 0  # DescribeLogStreams passes over all sources
    rounds: int = 0
    not_found: int = 0  # ResourceNotFoundException: group or stream not written yet
    throttled: int = 0  # throttling that escaped the caller's retries; retried next round


@dataclass
class _Stream:
    group: str
    name: str
    instance: str
    token: str | None
    order: int  # discovery order: ties in a merge go to the stream found first
    idle_rounds: int = 0
    due: float = 0.0
    at_end: bool = False
    source: LogSource | None = None
    retired_at: float | None = None  # when its source left the set; None while it is in it
    start_time: int | None = None  # first read from this timestamp (ms) instead of the head


@dataclass
class _Read:
    """One round's reading of one stream, applied only once its lines are published."""

    stream: _Stream
    events: list[LogEvent] = field(default_factory=list)
    token: str | None = None
    at_end: bool = False
    pages: int = 0
    failed: bool = False  # throttled: nothing learned, try again next round


class LogFollower:
    """Follows every CloudWatch stream of one job and publishes its lines."""

    def __init__(
        self,
        *,
        call: LogsCall,
        job: str,
        sources: Sequence[LogSource],
        publish: Callable[[LogLine], None],
        poll_interval: float = 2.0,
        idle_max: float = 10.0,
        discover_interval: float = 5.0,
        discover_max: float = 60.0,
        drain_grace: float = 5.0,
        tokens: Mapping[str, str] | None = None,
        on_token: Callable[[str, str], None] | None = None,
        flush: Callable[[], None] | None = None,
        max_pages_per_round: int = 5,
        max_concurrent_reads: int = 8,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._call = call
        self.job = job
        self._publish = publish
        self.poll_interval = poll_interval
        self.idle_max = idle_max
        self.discover_interval = discover_interval
        self.discover_max = max(discover_max, discover_interval)
        self.drain_grace = drain_grace
        self._saved_tokens = dict(tokens or {})
        self._on_token = on_token
        self._flush = flush
        self.max_pages_per_round = max_pages_per_round
        self.max_concurrent_reads = max_concurrent_reads
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._sources: list[LogSource] = []
        self._retiring: list[LogSource] = []  # left the set; to be discovered once more
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._discover_now = True
        self._discover_wake = anyio.Event()
        self.stats = FollowerStats()
        self.set_sources(sources)

    def poke(self) -> None:
        """The job's status changed: discover at once instead of at the next
        backed-off interval."""
        self._discover_now = True
        self._discover_wake.set()

    def set_sources(self, sources: Sequence[LogSource]) -> None:
        """Replace the sources (a tuning job's children come and go); new ones
        are discovered at the next round. A source that leaves the set is
        discovered once more and its streams are read until they are at their
        end and ``drain_grace`` has passed, as in a drain; then they rest. Every
        stream keeps its position, so a source that comes back resumes where
        it stopped and no line is published twice."""
        check_prefixes(sources)
        current = list(dict.fromkeys(sources))
        if current == self._sources:
            return  # asked on every status poll: an unchanged set costs no discovery
        kept = set(current)
        left = [s for s in (*self._retiring, *self._sources) if s not in kept]
        self._retiring = list(dict.fromkeys(left))
        self._sources = current
        now = self._clock()
        for stream in self._streams.values():
            if stream.source in kept:
                stream.retired_at = None
            elif stream.retired_at is None:
                stream.retired_at = now
        self._discover_now = True
        self._discover_wake.set()

    async def run(self, terminal: anyio.Event) -> None:
        """Follow until ``terminal`` is set, then drain and return.

        Discovery runs beside the read rounds, so known streams keep being
        read while a DescribeLogStreams call waits for its (small) budget."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._discover_until, terminal)
            while not terminal.is_set():
                await self._round(drain=False)
                await self._pause(self.poll_interval, terminal)
            tg.cancel_scope.cancel()
        await self.drain(since=self._clock())

    async def _discover_until(self, terminal: anyio.Event) -> None:
        interval = self.discover_interval
        while not terminal.is_set():
            known = len(self._streams)
            self._discover_wake = anyio.Event()
            await self._discover()
            interval = next_discovery_delay(
                interval, len(self._streams) > known or self._discover_now,
                self.discover_interval, self.discover_max,
            )
            with anyio.move_on_after(interval):
                await self._discover_wake.wait()

    async def drain(self, since: float) -> None:
        """Read until every stream is at its end and ``drain_grace`` has passed
        since ``since`` (the terminal status), then discover once more and
        drain whatever appeared; return when a discovery finds nothing new.

        A stream that never stops growing (an endpoint's) never lets the drain
        end: the caller bounds it with a cancel scope if it must."""
        if not self._sources:
            return  # a resource without logs (a model) leaves nothing to wait for
        # no discovery up front: the one after the grace period finds every stream
        # that appeared meanwhile, and DescribeLogStreams has the smallest quota
        while True:
            backlog = await self._round(drain=True)
            all_at_end = all(s.at_end for s in self._streams.values())
            if drain_finished(all_at_end, self._clock() - since, self.drain_grace):
                known = len(self._streams)
                await self._discover()
                if len(self._streams) == known:
                    return
                continue
            if not backlog:
                await self._sleep(self.poll_interval)

    async def _pause(self, seconds: float, terminal: anyio.Event) -> None:
        # the terminal status cuts the wait short so the drain starts at once
        async with anyio.create_task_group() as tg:

            async def wake_on_terminal() -> None:
                await terminal.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(wake_on_terminal)
            await self._sleep(seconds)
            tg.cancel_scope.cancel()

    # ------------------------------------------------------------ discovery

    async def _discover(self) -> None:
        self._discover_now = False
        self.stats.discoveries += 1
        retiring = list(self._retiring)
        throttled = self.stats.throttled
        for source in [*self._sources, *retiring]:
            for name in await self._list_streams(source):
                key = (source.group, name)
                if key not in self._streams:
                    self._streams[key] = _Stream(
                        group=source.group,
                        name=name,
                        instance=instance_label(name, source.prefix, source.label),
                        token=_own_token(self._saved_tokens.get(name)),
                        start_time=_start_time(self._saved_tokens.get(name)),
                        order=len(self._streams),
                        source=source,
                        retired_at=None if source in self._sources else self._clock(),
                    )
        if self.stats.throttled == throttled:
            self._retiring = [s for s in self._retiring if s not in retiring]
        self.stats.streams = len(self._streams)

    async def _list_streams(self, source: LogSource) -> list[str]:
        self.stats.calls += 1
        names, how = await list_prefix(
            self._call, source.group, source.prefix, counted=self._count_call
        )
        if how == "not_found":  # the group is created when the first container writes
            self.stats.not_found += 1
        elif how == "throttled":
            self.stats.throttled += 1
            self._discover_now = True
        return names

    def _count_call(self) -> None:
        self.stats.calls += 1

    # ------------------------------------------------------------ reading

    async def _round(self, *, drain: bool) -> bool:
        """Read the streams that are due (all of them in a drain) and publish
        their lines; True if a stream has more than one round could read."""
        started = self._clock()
        self.stats.rounds += 1
        due = [
            s
            for s in self._streams.values()
            if (drain or s.due <= started) and not self._rested(s, started)
        ]
        if not due:
            return False
        reads = [_Read(stream) for stream in due]
        limiter = anyio.CapacityLimiter(self.max_concurrent_reads)
        async with anyio.create_task_group() as tg:
            for read in reads:
                tg.start_soon(self._read_stream, read, limiter)
        self._publish_round(reads, started)
        return any(r.pages >= self.max_pages_per_round and not r.at_end for r in reads)

    def _rested(self, stream: _Stream, now: float) -> bool:
        """A stream whose source left the set is no longer read once drained."""
        return stream.retired_at is not None and drain_finished(
            stream.at_end, now - stream.retired_at, self.drain_grace
        )

    async def _read_stream(self, read: _Read, limiter: anyio.CapacityLimiter) -> None:
        stream = read.stream
        sent = stream.token
        read.token = sent
        async with limiter:
            while True:
                params: dict[str, Any] = {
                    "logGroupName": stream.group,
                    "logStreamName": stream.name,
                    "startFromHead": True,
                }
                if sent is not None:
                    params["nextToken"] = sent
                elif stream.start_time is not None:
                    params["startTime"] = stream.start_time
                self.stats.calls += 1
                try:
                    response = await self._call("logs", "GetLogEvents", **params)
                except Exception as exc:
                    if is_not_found(exc):
                        # deleted, or listed before it could be read: nothing to
                        # drain from it now, look again later
                        self.stats.not_found += 1
                        read.at_end = True
                        return
                    if is_throttling(exc):
                        self.stats.throttled += 1
                        read.failed = not read.pages
                        return
                    raise
                read.pages += 1
                read.events.extend(response.get("events", []))
                returned = response.get("nextForwardToken")
                if returned is None or stream_at_end(sent, returned):
                    read.at_end = True
                    return
                read.token = returned
                if not keep_reading(sent, returned, read.pages, self.max_pages_per_round):
                    return
                sent = returned

    def _publish_round(self, reads: list[_Read], started: float) -> None:
        self.stats.pages += sum(r.pages for r in reads)
        by_stream = {r.stream.order: r.events for r in reads if r.events}
        streams = {r.stream.order: r.stream for r in reads}
        now = self._wall_clock()
        for order, event in merge_round(by_stream):
            stream = streams[order]
            self._publish(
                LogLine(
                    job=self.job,
                    stream=stream.name,
                    instance=stream.instance,
                    timestamp=int(event["timestamp"]),
                    message=str(event.get("message", "")),
                    time=now,
                )
            )
            self.stats.events += 1
        # positions move only after their lines are out, so a journal that
        # saves them never skips a line after a restart; one flush per round
        # keeps the window between writing lines and saving positions tiny
        if self._flush is not None and by_stream:
            self._flush()
        for read in reads:
            stream = read.stream
            if read.failed:
                stream.due = started
                continue
            stream.at_end = read.at_end
            stream.idle_rounds = 0 if read.events else stream.idle_rounds + 1
            stream.due = started + next_read_delay(
                stream.idle_rounds, self.poll_interval, self.idle_max
            )
            if read.token is not None and read.token != stream.token:
                stream.token = read.token
                if self._on_token is not None:
                    self._on_token(stream.name, read.token)


def _own_token(saved: str | None) -> str | None:
    """A saved GetLogEvents token; None for a position the batched reader
    saved (``t:<ms>``), which :func:`_start_time` turns into a start."""
    if saved is None or _start_time(saved) is not None:
        return None
    return saved


def _start_time(saved: str | None) -> int | None:
    """Where to start a stream the batched reader followed before a restart:
    at the timestamp of its newest printed line. GetLogEvents returns no event
    ids, so the lines of that very millisecond are printed again."""
    if saved is None:
        return None
    return parse_position(saved).high
