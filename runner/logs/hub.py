"""One reader of CloudWatch Logs for the whole engine, and a handle per job.

:class:`LogHub` keeps a reader per log group. Each reader

- lists the streams of its jobs' prefixes (DescribeLogStreams, one queue per
  group, the most urgent first), and hands each new name to every job whose
  prefix it starts with;
- every ``poll_interval`` plans the streams that are due into FilterLogEvents
  searches of up to 100 names (:func:`smrun.logs.plan.plan_batches`), reads
  each to the end of its pages, drops what was printed already (by
  ``eventId``, :class:`smrun.logs.positions.Position`) and publishes the rest
  to each stream's job, merged by timestamp.

:class:`JobLogs` is what a job holds: the same surface as the per-job
:class:`smrun.logs.follow.LogFollower` (``set_sources``, ``run``, ``drain``,
``poke``, ``stats``). The design and its failure cases are written down in
:mod:`smrun.logs`.
"""

from __future__ import annotations

import enum
import heapq
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import anyio
from anyio.abc import TaskGroup

from smrun.budget import Priority
from smrun.errors import is_not_found, is_throttling
from smrun.events import LogLine
from smrun.logs.follow import (
    FollowerStats,
    LogsCall,
    check_prefixes,
    instance_label,
    list_prefix,
    merge_round,
    next_read_delay,
)
from smrun.logs.plan import (
    Due,
    discovery_rank,
    drain_read_due,
    plan_batches,
    rediscovery_delay,
)
from smrun.logs.positions import Position, format_position, parse_position, read_start
from smrun.settings import Settings
from smrun.types import LogSource

_MS = 1000


@dataclass
class HubStats:
    """What the hub did, over every job (each AWS call counted once)."""

    reads: int = 0  # FilterLogEvents calls
    searches: int = 0  # batched searches started (one or more pages each)
    discovery_calls: int = 0  # DescribeLogStreams calls
    sweeps: int = 0  # group sweeps gone to their end (one or more FilterLogEvents each)
    sweep_calls: int = 0  # FilterLogEvents calls of the sweeps
    swept: int = 0  # streams the sweeps found
    passes: int = 0  # discovery passes (one prefix, every page)
    events: int = 0  # lines published
    repeats: int = 0  # events a search returned again (the windows) and dropped
    streams: int = 0  # streams followed now, over every job
    splits: int = 0  # searches cut in two because a stream in them was not found
    not_found: int = 0
    throttled: int = 0  # throttling that escaped the caller's retries; retried


@dataclass(eq=False)
class _Tail:
    """One stream followed for one job."""

    owner: JobLogs
    source: LogSource
    group: str
    name: str
    instance: str
    order: int  # hub-wide discovery order: ties of a merge go to the stream found first
    position: Position
    due: float = 0.0
    idle_rounds: int = 0
    busy: bool = False  # in a search now
    at_end: bool = False  # its last complete search found nothing new
    last_read: float | None = None  # when that search started
    gone: bool = False  # not found by a search: deleted; read again once listed again
    retired_at: float | None = None  # its source left the job's set
    removed: bool = False  # its job stopped following
    saved: str | None = None  # the position last handed to on_token


@dataclass(eq=False)
class _Search:
    """Discovery of one prefix, for every job that follows it."""

    prefix: str
    due: float
    subscribers: dict[JobLogs, set[LogSource]] = field(default_factory=dict)
    leaving: dict[JobLogs, set[LogSource]] = field(default_factory=dict)
    known: set[str] = field(default_factory=set)
    misses: int = 0  # passes in a row that found no stream at all
    quiet: int = 0  # passes in a row that found nothing new, once it has streams
    poked: bool = False
    finish: bool = False  # a drain waits for a pass
    waiters: list[anyio.Event] = field(default_factory=list)
    running: bool = False
    created: float = 0.0  # hub clock: when its first subscriber came
    resume: bool = False  # a job attaching after a restart: list it, sweep or not


class _Read(enum.Enum):
    DONE = "done"  # the search went to its last page
    MORE = "more"  # pages left: go on after the others had their turn
    THROTTLED = "throttled"
    SPLIT = "split"  # handed over to two smaller searches
    GONE = "gone"  # its one stream does not exist
    LEFT = "left"  # every job of it stopped following before the next page


@dataclass(eq=False)
class _Scan:
    """One FilterLogEvents search, possibly over several reads of a few pages."""

    tails: list[_Tail]
    names: tuple[str, ...]
    start: int | None
    finish: bool
    planned: float = 0.0  # the round that planned it: due times count from here
    token: str | None = None
    started: float = 0.0  # its first call: a drain counts what it found from here
    newest: int | None = None
    fresh: dict[_Tail, int] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)

    def by_name(self) -> dict[str, list[_Tail]]:
        out: dict[str, list[_Tail]] = {}
        for tail in self.tails:
            out.setdefault(tail.name, []).append(tail)
        return out


class LogHub:
    """The engine's CloudWatch Logs reader: ``async with LogHub(call=aws.call) as hub:``,
    then ``hub.follow(...)`` per job.

    Timings are those of :class:`smrun.settings.Settings` (see
    :meth:`from_settings`); ``rediscover_max`` is the longest wait between
    two listings of a job that has streams (the safety net,
    :func:`smrun.logs.plan.rediscovery_delay`); ``window``, ``stall`` and ``drain_window`` are
    the lateness allowances of :mod:`smrun.logs.positions`, in seconds of
    event timestamps. ``page_events`` caps a FilterLogEvents page (the tests
    use it to make pages small); ``clock`` times decisions and the drain's
    ``since``, ``wall_clock`` stamps the published lines.
    """

    def __init__(
        self,
        *,
        call: LogsCall,
        poll_interval: float = 2.0,
        idle_max: float = 10.0,
        discover_interval: float = 5.0,
        discover_max: float = 60.0,
        rediscover_max: float = 960.0,
        drain_grace: float = 5.0,
        window: float = 10.0,
        stall: float = 60.0,
        drain_window: float = 30.0,
        batch_size: int = 100,
        batch_spread: float = 15.0,
        page_events: int | None = None,
        max_pages_per_read: int = 5,
        max_concurrent_reads: int = 8,
        max_concurrent_discoveries: int = 4,
        sweep_from: int = 50,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._call = call
        self.poll_interval = poll_interval
        self.idle_max = idle_max
        self.discover_interval = discover_interval
        self.discover_max = max(discover_max, discover_interval)
        self.rediscover_max = max(rediscover_max, self.discover_max)
        self.drain_grace = drain_grace
        self.window_ms = int(window * _MS)
        self.stall_ms = int(max(stall, window) * _MS)
        self.drain_window_ms = int(max(drain_window, window) * _MS)
        self.retain_ms = max(self.window_ms, self.drain_window_ms)
        self.batch_size = batch_size
        self.spread_ms = int(batch_spread * _MS)
        self.page_events = page_events
        self.max_pages_per_read = max(1, max_pages_per_read)
        self.max_concurrent_reads = max(1, max_concurrent_reads)
        self.max_concurrent_discoveries = max(1, max_concurrent_discoveries)
        self.sweep_from = max(1, sweep_from)
        self.clock = clock
        self.wall_clock = wall_clock
        self.stats = HubStats()
        self._readers: dict[str, _GroupReader] = {}
        self._owners: set[JobLogs] = set()
        self._tg: TaskGroup | None = None
        self._limiter: anyio.CapacityLimiter | None = None
        self._orders = 0
        self._closed = False

    @classmethod
    def from_settings(cls, call: LogsCall, settings: Settings, **options: Any) -> LogHub:
        """A hub with the run's log timings (``options`` override the rest)."""
        return cls(
            call=call,
            poll_interval=settings.log_poll,
            idle_max=settings.log_idle_max,
            discover_interval=settings.log_discover,
            discover_max=settings.log_discover_max,
            drain_grace=settings.drain_grace,
            sweep_from=settings.log_sweep_from,
            **options,
        )

    async def __aenter__(self) -> LogHub:
        self._limiter = anyio.CapacityLimiter(self.max_concurrent_reads)
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self._closed = True
        for owner in list(self._owners):
            owner._close()
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        return await self._tg.__aexit__(exc_type, exc, tb)

    def follow(
        self,
        job: str,
        sources: Sequence[LogSource],
        publish: Callable[[LogLine], None],
        *,
        tokens: Mapping[str, str] | None = None,
        on_token: Callable[[str, str], None] | None = None,
        flush: Callable[[], None] | None = None,
    ) -> JobLogs:
        """A job's handle. Nothing is read until its :meth:`JobLogs.run` (or
        ``drain``) is awaited; ``tokens`` are the positions ``on_token``
        saved before a restart (stream name -> position string)."""
        if self._tg is None or self._closed:
            raise RuntimeError("use the LogHub inside 'async with'")
        return JobLogs(self, job, sources, publish, tokens=tokens, on_token=on_token, flush=flush)

    # ------------------------------------------------------------ for the readers

    def _reader(self, group: str) -> _GroupReader:
        reader = self._readers.get(group)
        if reader is None:
            assert self._tg is not None
            reader = self._readers[group] = _GroupReader(self, group)
            self._tg.start_soon(reader.run)
        return reader

    def _next_order(self) -> int:
        self._orders += 1
        return self._orders

    @property
    def _reads(self) -> anyio.CapacityLimiter:
        assert self._limiter is not None
        return self._limiter


class JobLogs:
    """One job's logs, read by the hub: the job's follower.

    ``set_sources`` as the per-job follower: a source that leaves is listed
    once more, its streams are read until a read finds nothing new and
    ``drain_grace`` has passed, then they rest; one that comes back resumes
    where it stopped.
    """

    def __init__(
        self,
        hub: LogHub,
        job: str,
        sources: Sequence[LogSource],
        publish: Callable[[LogLine], None],
        *,
        tokens: Mapping[str, str] | None = None,
        on_token: Callable[[str, str], None] | None = None,
        flush: Callable[[], None] | None = None,
    ) -> None:
        self.job = job
        self.stats = FollowerStats()
        self._hub = hub
        self._publish = publish
        self._on_token = on_token
        self._flush = flush
        self._saved = dict(tokens or {})
        self._sources: list[LogSource] = []
        self._retiring: list[LogSource] = []
        self._tails: dict[tuple[str, str], _Tail] = {}
        self._registered = False
        self._since: float | None = None  # the terminal status (hub clock), once draining
        self._poked = False
        self._error: BaseException | None = None
        self._closed = False
        self._stopped = anyio.Event()  # failed or closed: nothing more will be read
        self._progress = anyio.Event()
        self.set_sources(sources)

    # ------------------------------------------------------------ the handle

    def set_sources(self, sources: Sequence[LogSource]) -> None:
        """Replace the sources; new ones are listed at once. Asked on every
        status poll: an unchanged set costs nothing."""
        check_prefixes(sources)
        current = list(dict.fromkeys(sources))
        if current == self._sources:
            return
        kept = set(current)
        before = set(self._sources)
        newly_left = [s for s in self._sources if s not in kept]
        self._retiring = list(dict.fromkeys(
            [s for s in self._retiring if s not in kept] + newly_left
        ))
        self._sources = current
        now = self._hub.clock()
        for tail in self._tails.values():
            if tail.source in kept:
                tail.retired_at = None
            elif tail.retired_at is None:
                tail.retired_at = now
        if self._registered:
            for source in current:
                if source not in before:
                    self._hub._reader(source.group).subscribe(self, source, soon=True)
            for source in newly_left:
                self._hub._reader(source.group).leave(self, source)

    def poke(self) -> None:
        """The job's status changed in a way that may add streams (it started,
        it restarted): list its prefixes within ``discover_interval`` instead
        of at the next backed-off pass. Each poke costs a DescribeLogStreams
        per source; pokes closer together than ``discover_interval`` cost one."""
        if not self._registered:
            self._poked = True  # before run(): applied when it starts
            return
        for source in self._sources:
            self._hub._reader(source.group).poke(source.prefix)

    async def run(self, terminal: anyio.Event) -> None:
        """Follow until ``terminal`` is set, then drain and return.

        Error handling: an error of a call made for this job's streams that is
        neither throttling nor not-found (access denied, say) is raised here;
        the other jobs go on."""
        self._register()
        try:
            await self._until(terminal)
            if not self._closed:
                await self.drain(since=self._hub.clock())
        finally:
            self._unregister()

    async def drain(self, since: float) -> None:
        """Read until every stream is at its end (a complete read found nothing
        new) and ``drain_grace`` has passed since ``since`` (the terminal
        status, on the hub's clock), then list the prefixes once more and drain
        whatever appeared; return when that finds nothing new.

        A stream that never stops growing (an endpoint's) never lets the drain
        end: the caller bounds it with a cancel scope."""
        if not self._sources and not self._retiring:
            return  # a resource without logs (a model) leaves nothing to wait for
        registered_here = not self._registered
        self._register()
        self._since = since if self._since is None else min(self._since, since)
        try:
            while not self._closed:
                self._raise_if_failed()
                if self._drained(self._since):
                    known = len(self._tails)
                    await self._last_look()
                    self._raise_if_failed()
                    if len(self._tails) == known:
                        return
                    continue
                with anyio.move_on_after(self._hub.poll_interval):
                    await self._progress.wait()
                self._progress = anyio.Event()
        finally:
            if registered_here:
                self._unregister()

    # ------------------------------------------------------------ inside

    def _register(self) -> None:
        if self._registered:
            return
        hub = self._hub
        if hub._closed:
            raise RuntimeError("the LogHub is closed")
        hub._owners.add(self)
        self._registered = True
        for tail in self._tails.values():
            tail.removed = False
            hub._reader(tail.group).add_tail(tail)
        resuming = bool(self._saved)
        for source in self._sources:
            hub._reader(source.group).subscribe(self, source, soon=resuming)
        for source in self._retiring:
            reader = hub._reader(source.group)
            reader.subscribe(self, source, soon=True)
            reader.leave(self, source)
        if self._poked:
            self._poked = False
            self.poke()

    def _unregister(self) -> None:
        if not self._registered:
            return
        self._registered = False
        hub = self._hub
        hub._owners.discard(self)
        for reader in hub._readers.values():
            reader.drop(self)
        for tail in self._tails.values():
            tail.removed = True

    async def _until(self, terminal: anyio.Event) -> None:
        async with anyio.create_task_group() as tg:

            async def stop_on(event: anyio.Event) -> None:
                await event.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(stop_on, terminal)
            tg.start_soon(stop_on, self._stopped)
        self._raise_if_failed()

    async def _last_look(self) -> None:
        """One discovery pass of every prefix, at Priority.FINISH, started
        after this call; returns when all are done."""
        hub = self._hub
        waits = [
            event
            for reader in list(hub._readers.values())
            for event in reader.request(self)
        ]
        for event in waits:
            async with anyio.create_task_group() as tg:

                async def stop_on(e: anyio.Event) -> None:
                    await e.wait()
                    tg.cancel_scope.cancel()

                tg.start_soon(stop_on, event)
                tg.start_soon(stop_on, self._stopped)
            if self._stopped.is_set():
                return

    def _drained(self, since: float | None) -> bool:
        if since is None:
            return False
        hub = self._hub
        if hub.clock() - since < hub.drain_grace:
            return False
        return all(self._finished(tail, since) for tail in self._tails.values())

    def _finished(self, tail: _Tail, since: float) -> bool:
        if tail.gone or self._rested(tail):
            return True
        return (
            not tail.busy
            and tail.at_end
            and tail.last_read is not None
            and tail.last_read >= since + self._hub.drain_grace
        )

    def _rested(self, tail: _Tail) -> bool:
        """A stream whose source left the set is not read once drained."""
        return (
            tail.retired_at is not None
            and tail.at_end
            and tail.last_read is not None
            and tail.last_read >= tail.retired_at + self._hub.drain_grace
        )

    def _wants_read(self, tail: _Tail, now: float) -> bool:
        if tail.busy or tail.gone or tail.removed or self._rested(tail):
            return False
        if self._since is not None:
            return drain_read_due(
                last_read=tail.last_read, found_lines=not tail.at_end, since=self._since,
                grace=self._hub.drain_grace, now=now,
            )
        return tail.due <= now

    @property
    def _draining(self) -> bool:
        return self._since is not None

    def _draining_tail(self, tail: _Tail) -> bool:
        """Read with the drain's window: the job ended, or the stream's source left."""
        return self._draining or tail.retired_at is not None

    def _found(self, reader: _GroupReader, source: LogSource, names: Iterable[str]) -> None:
        hub = self._hub
        now = hub.clock()
        for name in names:
            if not name.startswith(source.prefix):
                continue
            key = (reader.group, name)
            tail = self._tails.get(key)
            if tail is not None:
                if tail.gone:
                    tail.gone = False
                    tail.at_end = False
                    tail.due = now
                continue
            saved = self._saved.get(name)
            tail = _Tail(
                owner=self,
                source=source,
                group=reader.group,
                name=name,
                instance=instance_label(name, source.prefix, source.label),
                order=hub._next_order(),
                position=parse_position(saved),
                saved=saved,
                retired_at=None if source in self._sources else now,
            )
            self._tails[key] = tail
            self.stats.streams = len(self._tails)
            if self._registered:
                reader.add_tail(tail)

    def _left(self, source: LogSource) -> bool:
        """After the last pass of a source that left: stop listing it, unless it came back."""
        if source in self._sources or source not in self._retiring:
            return False
        self._retiring.remove(source)
        return True

    def _save(self, stream: str, position: str) -> None:
        self._saved[stream] = position
        if self._on_token is not None:
            self._on_token(stream, position)

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self._stopped.set()
        self._progress.set()

    def _close(self) -> None:
        self._closed = True
        self._stopped.set()
        self._progress.set()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _moved(self) -> None:
        self._progress.set()


def _common_prefix(names: Iterable[str]) -> str:
    """The longest string every name starts with (that of the first and last in order)."""
    listed = list(names)
    if not listed:
        return ""
    first, last = min(listed), max(listed)
    size = 0
    while size < len(first) and first[size] == last[size]:
        size += 1
    return first[:size]


# the discovery scheduler looks at its queue at most this often (seconds)
SEARCH_TICK = 0.1


class _GroupReader:
    """Discovery and batched reading of one log group, for every job in it."""

    def __init__(self, hub: LogHub, group: str) -> None:
        self.hub = hub
        self.group = group
        self.tails: dict[_Tail, None] = {}  # insertion-ordered set
        self.searches: dict[str, _Search] = {}
        # the prefixes each job follows here: a job's end touches only its own
        self.prefixes_of: dict[JobLogs, set[str]] = {}
        self._search_wake = anyio.Event()
        self._tg: TaskGroup | None = None
        # the sweep: one search of the whole group finds every job's new streams
        self._sweeping = False
        self._sweep_waiters: list[anyio.Event] = []  # drains waiting for a sweep
        self._sweep_wake = anyio.Event()
        self._swept_to: int | None = None  # the next sweep starts here (epoch ms)

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self._search_loop, tg)
            tg.start_soon(self._sweep_loop)
            await self._read_loop(tg)

    # ------------------------------------------------------------ membership

    def add_tail(self, tail: _Tail) -> None:
        self.tails[tail] = None
        self.hub.stats.streams = sum(len(r.tails) for r in self.hub._readers.values())

    def subscribe(self, owner: JobLogs, source: LogSource, *, soon: bool) -> None:
        now = self.hub.clock()
        search = self.searches.get(source.prefix)
        if search is None:
            delay = 0.0 if soon else self.hub.discover_interval
            search = self.searches[source.prefix] = _Search(
                source.prefix, due=now + delay, created=now
            )
            self._count_changed()
        elif soon:
            search.due = min(search.due, now)
        search.resume = search.resume or soon
        search.subscribers.setdefault(owner, set()).add(source)
        self.prefixes_of.setdefault(owner, set()).add(source.prefix)
        leaving = search.leaving.get(owner)
        if leaving is not None:
            leaving.discard(source)
        if search.known:
            owner._found(self, source, sorted(search.known))
        self._search_wake.set()

    def leave(self, owner: JobLogs, source: LogSource) -> None:
        """List the source once more (streams that appeared just before it
        left), then drop it."""
        search = self.searches.get(source.prefix)
        if search is None or owner not in search.subscribers:
            return
        search.leaving.setdefault(owner, set()).add(source)
        search.due = min(search.due, self.hub.clock())
        self._search_wake.set()

    def poke(self, prefix: str) -> None:
        search = self.searches.get(prefix)
        if search is None or self._sweeping:
            return  # a sweep finds a restarted job's new stream among the others
        search.misses = search.quiet = 0
        search.poked = True
        search.due = min(search.due, self.hub.clock() + self.hub.discover_interval)
        self._search_wake.set()

    def request(self, owner: JobLogs) -> list[anyio.Event]:
        """A pass at Priority.FINISH of every prefix ``owner`` follows here:
        while the group is swept, one sweep that starts after this call."""
        # a job without a stream here lists its own prefixes: the sweeps may
        # have missed them (lines visible too late), and it costs only such jobs
        has_streams = any(t.group == self.group for t in owner._tails.values())
        if self._sweeping and has_streams and owner in self.prefixes_of:
            event = anyio.Event()
            self._sweep_waiters.append(event)  # the next sweep, within discover_interval
            return [event]
        events = []
        for prefix in self.prefixes_of.get(owner, ()):
            search = self.searches.get(prefix)
            if search is not None and owner in search.subscribers:
                event = anyio.Event()
                search.waiters.append(event)
                search.finish = True
                events.append(event)
        if events:
            self._search_wake.set()
        return events

    def drop(self, owner: JobLogs) -> None:
        for prefix in self.prefixes_of.pop(owner, set()):
            search = self.searches.get(prefix)
            if search is None:
                continue
            search.subscribers.pop(owner, None)
            search.leaving.pop(owner, None)
            if not search.subscribers and not search.running:
                del self.searches[prefix]
        self._count_changed()
        for tail in owner._tails.values():
            if tail.group == self.group:
                self.tails.pop(tail, None)
        self.hub.stats.streams = sum(len(r.tails) for r in self.hub._readers.values())

    # ------------------------------------------------------------ discovery

    async def _search_loop(self, tg: TaskGroup) -> None:
        hub = self.hub
        while True:
            now = hub.clock()
            running = sum(1 for s in self.searches.values() if s.running)
            free = hub.max_concurrent_discoveries - running
            sweeping = self._sweeping
            ready = [
                s for s in self.searches.values()
                if not s.running and self._ready_at(s, sweeping) <= now
            ] if free > 0 else []
            # only the few that can start now are ordered (thousands may be ready)
            for search in heapq.nsmallest(max(0, free), ready, key=lambda s: (
                discovery_rank(
                    finish=s.finish, known=len(s.known), poked=s.poked or bool(s.leaving)
                ),
                s.due,
            )):
                search.running = True
                tg.start_soon(self._pass, search)
            free -= min(len(ready), max(0, free))
            waiting = [
                self._ready_at(s, sweeping) for s in self.searches.values() if not s.running
            ]
            if free <= 0 or not waiting:
                delay = hub.discover_max
            else:
                delay = max(0.0, min(waiting) - now)
            with anyio.move_on_after(delay):
                await self._search_wake.wait()
            self._search_wake = anyio.Event()
            # wakes come in bursts (every pass that ends, every job that comes):
            # one scheduling round per tick keeps this loop O(searches) a tick
            await anyio.sleep(SEARCH_TICK)

    def _rediscover_at(self, search: _Search, now: float) -> float:
        """When ``search`` is listed again after a pass (or a sweep) found what it found."""
        hub = self.hub
        return now + rediscovery_delay(
            known=len(search.known), misses=search.misses, quiet=search.quiet,
            base=hub.discover_interval, cap=hub.discover_max, settled_max=hub.rediscover_max,
        )

    def _ready_at(self, search: _Search, sweeping: bool) -> float:
        """When ``search`` may be listed next. While the group is swept, only
        a job attaching after a restart, a source that left, a drain that asked
        before the sweep began and the safety net list a prefix; a job that
        has no stream yet is listed only if the sweep has not found one in
        twice ``discover_max`` (its lines were visible too late for the sweep)."""
        if search.waiters or search.leaving:
            return 0.0
        if not sweeping or search.resume or search.known:
            return search.due
        return max(search.due, search.created + 2 * self.hub.discover_max)

    async def _pass(self, search: _Search) -> None:
        hub = self.hub
        waiters, search.waiters = search.waiters, []
        finish, search.finish = search.finish, False
        leaving = {owner: set(sources) for owner, sources in search.leaving.items()}
        search.poked = False
        search.resume = False
        complete = False
        hub.stats.passes += 1
        try:
            priority = Priority.FINISH if finish else Priority.DISCOVER
            names, complete = await self._list(search, priority)
            new = [n for n in names if n not in search.known]
            search.known.update(names)
            if new:
                search.misses = search.quiet = 0
            elif complete and not search.known:
                search.misses += 1
            elif complete and not finish:
                search.quiet += 1
            for owner, sources in list(search.subscribers.items()):
                owner.stats.discoveries += 1
                for source in list(sources):
                    owner._found(self, source, names)
        except Exception as error:
            for owner in list(search.subscribers):
                owner._fail(error)
        finally:
            now = hub.clock()
            if complete:
                for owner, sources in leaving.items():
                    for source in sources:
                        if owner._left(source):
                            search.subscribers.get(owner, set()).discard(source)
                            search.leaving.get(owner, set()).discard(source)
                            if not search.subscribers.get(owner):
                                search.subscribers.pop(owner, None)
                                search.leaving.pop(owner, None)
                search.due = self._rediscover_at(search, now)
                for event in waiters:
                    event.set()
            else:
                # throttled: a drain's last look must really look, so its
                # waiters wait for the next pass
                search.waiters = waiters + search.waiters
                search.finish = search.finish or finish
                search.due = now + hub.discover_interval
            search.running = False
            if not search.subscribers and self.searches.get(search.prefix) is search:
                del self.searches[search.prefix]
                for event in search.waiters:
                    event.set()
            self._search_wake.set()

    async def _list(self, search: _Search, priority: Priority) -> tuple[list[str], bool]:
        """Every stream name under the prefix, every page; and whether the
        listing went to its end (False when throttled)."""
        hub = self.hub

        def counted() -> None:
            hub.stats.discovery_calls += 1
            for owner in search.subscribers:
                owner.stats.calls += 1

        counted()
        names, how = await list_prefix(hub._call, self.group, search.prefix,
                                       priority=priority, counted=counted)
        if how == "not_found":  # the group is created when the first container writes
            hub.stats.not_found += 1
            for owner in search.subscribers:
                owner.stats.not_found += 1
        elif how == "throttled":
            hub.stats.throttled += 1
            for owner in search.subscribers:
                owner.stats.throttled += 1
        return names, how != "throttled"

    # ------------------------------------------------------------ the sweep

    def _count_changed(self) -> None:
        """Sweep from ``sweep_from`` prefixes on; list each prefix again below
        half of it (a margin, so a group near the threshold doesn't flap)."""
        count = len(self.searches)
        if not self._sweeping and count >= self.hub.sweep_from:
            self._sweeping = True
            self._swept_to = None
            self._sweep_wake.set()
        elif self._sweeping and count < self.hub.sweep_from / 2:
            self._sweeping = False
            # the prefixes without streams go back to their own listings
            now = self.hub.clock()
            for search in self.searches.values():
                if not search.known:
                    search.due = min(search.due, now + self.hub.discover_interval)
            self._search_wake.set()

    async def _sweep_loop(self) -> None:
        hub = self.hub
        while True:
            if not self._sweeping and not self._sweep_waiters:
                await self._sweep_wake.wait()
                self._sweep_wake = anyio.Event()
                continue
            waiters, self._sweep_waiters = self._sweep_waiters, []
            started = hub.wall_clock()
            complete = False
            try:
                complete = await self._sweep(finish=bool(waiters))
            except Exception as error:
                for owner in {o for s in self.searches.values() for o in s.subscribers}:
                    owner._fail(error)
                complete = True  # the drains are failed: nothing to wait for
            if complete:
                self._swept_to = int(started * _MS) - hub.window_ms
                for event in waiters:
                    event.set()
            else:
                self._sweep_waiters = waiters + self._sweep_waiters
            with anyio.move_on_after(hub.discover_interval):
                await self._sweep_wake.wait()
            self._sweep_wake = anyio.Event()

    def _sweep_start(self) -> int:
        """Where a sweep starts: ``window`` behind where the last one started;
        the first, ``window`` behind the oldest prefix without a stream (at
        most twice ``discover_max`` back: older ones are listed on their own)."""
        hub = self.hub
        if self._swept_to is not None:
            return self._swept_to
        now, wall = hub.clock(), hub.wall_clock()
        oldest = min(
            (s.created for s in self.searches.values() if not s.known), default=now
        )
        back = min(now - oldest, 2 * hub.discover_max)
        return int((wall - back) * _MS) - hub.window_ms

    async def _sweep(self, *, finish: bool) -> bool:
        """One search of the group from :meth:`_sweep_start`, every page; each
        stream name not known yet under a followed prefix is handed to its
        jobs, which read it from its head. Whether it went to its end."""
        hub = self.hub
        params: dict[str, Any] = {
            "logGroupName": self.group, "startTime": max(0, self._sweep_start()),
        }
        common = _common_prefix(self.searches)
        if common:
            params["logStreamNamePrefix"] = common
        tokens: set[str] = set()
        while True:
            hub.stats.sweep_calls += 1
            try:
                response = await hub._call(
                    "logs", "FilterLogEvents",
                    priority=Priority.FINISH if finish else Priority.DISCOVER,
                    **params,
                )
            except Exception as error:
                if is_not_found(error):
                    hub.stats.not_found += 1  # no group yet: nothing written
                    hub.stats.sweeps += 1
                    return True
                if is_throttling(error):
                    hub.stats.throttled += 1
                    return False
                raise
            self._found_in_sweep(response.get("events") or [])
            token = response.get("nextToken") or None
            if token is None or token in tokens:
                hub.stats.sweeps += 1
                return True
            tokens.add(token)
            params["nextToken"] = token

    def _found_in_sweep(self, events: Iterable[Mapping[str, Any]]) -> None:
        seen: set[str] = set()
        for event in events:
            name = str(event.get("logStreamName", ""))
            if name in seen:
                continue
            seen.add(name)
            cut = name.find("/")
            while cut >= 0:
                search = self.searches.get(name[: cut + 1])
                if search is not None and name not in search.known:
                    search.known.add(name)
                    search.misses = search.quiet = 0
                    # listed on its own only by the safety net from now on
                    search.due = self._rediscover_at(search, self.hub.clock())
                    self.hub.stats.swept += 1
                    for owner, sources in list(search.subscribers.items()):
                        for source in list(sources):
                            owner._found(self, source, [name])
                cut = name.find("/", cut + 1)

    # ------------------------------------------------------------ reading

    async def _read_loop(self, tg: TaskGroup) -> None:
        hub = self.hub
        while True:
            now = hub.clock()
            due = [t for t in self.tails if t.owner._wants_read(t, now)]
            if due:
                plan = plan_batches(
                    [
                        Due(
                            t, t.name,
                            read_start(
                                t.position,
                                draining=t.owner._draining_tail(t),
                                drain_window=hub.drain_window_ms,
                            ),
                            t.owner._draining,
                        )
                        for t in due
                    ],
                    size=hub.batch_size,
                    spread=hub.spread_ms,
                )
                for batch in plan:
                    tails = list(batch.keys)
                    for tail in tails:
                        tail.busy = True
                    scan = _Scan(tails, batch.names, batch.start, batch.finish, planned=now)
                    hub.stats.searches += 1
                    tg.start_soon(self._scan, scan)
            # one tick for everyone: streams due within a tick share its searches
            await anyio.sleep(hub.poll_interval)

    async def _scan(self, scan: _Scan) -> None:
        hub = self.hub
        scan.started = hub.clock()
        handed_over = False
        try:
            while True:
                async with hub._reads:
                    outcome = await self._read(scan)
                if outcome is _Read.THROTTLED:
                    await anyio.sleep(hub.poll_interval)
                    continue
                if outcome is _Read.MORE:
                    continue
                break
            if outcome is _Read.SPLIT:
                handed_over = True
                return
            if outcome is _Read.LEFT:
                return  # nothing was read to the end: positions and due times stay
            self._settle(scan, gone=outcome is _Read.GONE)
        except Exception as error:
            for owner in {t.owner for t in scan.tails}:
                owner._fail(error)
        finally:
            if not handed_over:
                for tail in scan.tails:
                    tail.busy = False
                for owner in {t.owner for t in scan.tails}:
                    owner._moved()

    async def _read(self, scan: _Scan) -> _Read:
        """Up to ``max_pages_per_read`` pages of the search; their new lines
        are published before this returns."""
        hub = self.hub
        events: list[Mapping[str, Any]] = []
        owners = {t.owner for t in scan.tails}
        try:
            for _ in range(hub.max_pages_per_read):
                if all(t.removed for t in scan.tails):
                    return _Read.LEFT  # read nothing more: no one follows these streams
                params: dict[str, Any] = {
                    "logGroupName": self.group,
                    "logStreamNames": list(scan.names),
                }
                if scan.start is not None:
                    params["startTime"] = max(0, scan.start)
                if scan.token is not None:
                    params["nextToken"] = scan.token
                if hub.page_events is not None:
                    params["limit"] = hub.page_events
                hub.stats.reads += 1
                for owner in owners:
                    owner.stats.calls += 1
                try:
                    response = await hub._call(
                        "logs",
                        "FilterLogEvents",
                        priority=Priority.FINISH if scan.finish else Priority.LIVE,
                        **params,
                    )
                except Exception as error:
                    if is_not_found(error):
                        return self._not_found(scan)
                    if is_throttling(error):
                        hub.stats.throttled += 1
                        for owner in owners:
                            owner.stats.throttled += 1
                        return _Read.THROTTLED
                    raise
                for owner in owners:
                    owner.stats.pages += 1
                page = response.get("events") or []
                events.extend(page)
                for event in page:
                    stamp = int(event["timestamp"])
                    if scan.newest is None or stamp > scan.newest:
                        scan.newest = stamp
                token = response.get("nextToken") or None
                # AWS may send empty pages that still carry a token: only a
                # page without one ends the search (a repeated token would
                # loop forever on a misbehaving backend)
                if token is None or token in scan.tokens:
                    scan.token = None
                    return _Read.DONE
                scan.tokens.add(token)
                scan.token = token
            return _Read.MORE
        finally:
            self._publish(scan, events)

    def _not_found(self, scan: _Scan) -> _Read:
        """A stream of the search does not exist (deleted; AWS refuses the
        whole search): search the halves apart, down to the missing stream."""
        hub = self.hub
        hub.stats.not_found += 1
        for owner in {t.owner for t in scan.tails}:
            owner.stats.not_found += 1
        if len(scan.names) <= 1:
            return _Read.GONE
        hub.stats.splits += 1
        middle = len(scan.names) // 2
        assert self._tg is not None
        for half in (scan.names[:middle], scan.names[middle:]):
            wanted = set(half)
            part = _Scan(
                [t for t in scan.tails if t.name in wanted], half, scan.start, scan.finish,
                planned=scan.planned,
            )
            hub.stats.searches += 1
            self._tg.start_soon(self._scan, part)
        return _Read.SPLIT

    def _publish(self, scan: _Scan, events: list[Mapping[str, Any]]) -> None:
        """Publish what is new, merged by timestamp; then flush each job's
        sinks once; then save the positions (never ahead of the lines)."""
        if not events:
            return
        hub = self.hub
        by_name = scan.by_name()
        fresh: dict[_Tail, list[Mapping[str, Any]]] = {}
        for event in events:
            name = str(event.get("logStreamName", ""))
            stamp = int(event["timestamp"])
            event_id = str(event.get("eventId") or f"{name}:{stamp}:{event.get('message', '')}")
            for tail in by_name.get(name, ()):
                if tail.removed:
                    continue
                if tail.position.offer(event_id, stamp):
                    fresh.setdefault(tail, []).append(event)
                else:
                    hub.stats.repeats += 1
        if not fresh:
            return
        ordered = sorted(fresh, key=lambda t: t.order)
        tails = {t.order: t for t in ordered}
        now = hub.wall_clock()
        failed: set[JobLogs] = set()
        for order, event in merge_round({t.order: fresh[t] for t in ordered}):
            tail = tails[order]
            owner = tail.owner
            if owner in failed:
                continue
            try:
                owner._publish(LogLine(
                    job=owner.job,
                    stream=tail.name,
                    instance=tail.instance,
                    timestamp=int(event["timestamp"]),
                    message=str(event.get("message", "")),
                    time=now,
                ))
            except Exception as error:
                failed.add(owner)
                owner._fail(error)
                continue
            owner.stats.events += 1
            hub.stats.events += 1
        flushes: dict[Callable[[], None], JobLogs] = {}
        for tail in ordered:
            if tail.owner._flush is not None and tail.owner not in failed:
                flushes.setdefault(tail.owner._flush, tail.owner)
        for flush, owner in flushes.items():
            try:
                flush()
            except Exception as error:
                failed.add(owner)
                owner._fail(error)
        for tail in ordered:
            scan.fresh[tail] = scan.fresh.get(tail, 0) + len(fresh[tail])
            if tail.owner in failed:
                continue
            saved = format_position(tail.position)
            if saved is not None and saved != tail.saved:
                tail.saved = saved
                tail.owner._save(tail.name, saved)

    def _settle(self, scan: _Scan, *, gone: bool) -> None:
        """After a search went to its end: floors, horizons, due times."""
        hub = self.hub
        for tail in scan.tails:
            tail.owner.stats.rounds += 1
            tail.last_read = scan.started
            if gone:
                tail.gone = True
                tail.at_end = True
                continue
            tail.position.settle(
                newest=scan.newest,
                window=hub.window_ms,
                stall=hub.stall_ms,
                retain=hub.retain_ms,
            )
            new = scan.fresh.get(tail, 0)
            tail.at_end = new == 0
            tail.idle_rounds = 0 if new else tail.idle_rounds + 1
            # from the round that planned the search, not from when it got its
            # budget token: a stream due every round stays in every round's batch
            tail.due = scan.planned + max(
                hub.poll_interval,
                next_read_delay(tail.idle_rounds, hub.poll_interval, hub.idle_max),
            )
