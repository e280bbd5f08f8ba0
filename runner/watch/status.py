"""The engine's status sources: one watcher per kind, shared by all its jobs.

A job subscribes with its resource name and a way to describe itself; it then
awaits :meth:`Subscription.next`, which returns the resource's next
:class:`~smrun.watch.Update` from whichever source serves the subscription:

- **describe**: the subscription describes its own resource after a delay that
  grows while nothing changes (what every job did before the watchers existed);
- **list**: the kind's watcher calls List* with ``LastModifiedTimeAfter`` (the
  newest LastModifiedTime it has seen, minus ``list_skew`` for clocks and for
  SageMaker's own eventual consistency), follows the pages, and offers every
  summary to the subscription of that name; summaries of resources nobody
  watches are ignored. A quiet kind is listed less often, like a quiet job;
- **events**: updates are pushed by the SQS consumer (:mod:`smrun.watch.events`)
  through :meth:`StatusWatch.dispatch`; the list loop still runs, slowly
  (``events_reconcile``), as a safety net for lost events.

Every source's answers pass one gate, :func:`smrun.watch.newer`: duplicates and updates
older than what the job already knows (events are delivered at least once and
out of order) are dropped.

A reconcile pass (every ``list_reconcile`` seconds, and every pass in events
mode) lists without ``LastModifiedTimeAfter`` since the oldest subscription,
so a change that fell outside the skew window is still seen; a subscribed
resource that no listing has shown for that long is described on its own.

Which source serves a subscription is decided at each wait (``auto``: the
list once a kind has ``list_from`` jobs, if the kind can be listed), so a run
that grows from one job to a thousand moves over without restarting anything.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any

import anyio
from anyio.abc import TaskGroup

from smrun.budget import Priority
from smrun.errors import describe as describe_error
from smrun.errors import is_aws_error
from smrun.kind import Kind
from smrun.settings import Settings
from smrun.types import Description
from smrun.watch import Update, newer, next_poll_delay

# AWS answers List* with at most this many summaries a page
LIST_PAGE = 100

Describe = Callable[[Priority], Awaitable[Description | None]]
Call = Callable[..., Awaitable[dict[str, Any]]]
Notify = Callable[[str, str], None]


class Strategy(str, enum.Enum):
    AUTO = "auto"  # list once a kind has enough jobs (events when a queue is given)
    DESCRIBE = "describe"  # each job describes itself
    LIST = "list"  # one List* per kind and interval
    EVENTS = "events"  # EventBridge events from SQS, with a slow reconciling list


class Unseen(Exception):
    """The resource's state could not be read before the Unknown deadline."""


class NotFound(Exception):
    """The resource's describe says it does not exist."""


# ---------------------------------------------------------------- decisions


def listable(kind: Kind) -> bool:
    """A kind whose List* summary tells all the job needs while it runs.

    Kinds whose phase or log streams are decided by hooks over the whole
    description (an endpoint's rollback, a tuning job's children) keep
    describing themselves."""
    return bool(kind.list_operation) and kind.phase_hook is None and kind.log_sources is None


def list_params(
    cursor: datetime | None, since: datetime, skew: float, *, reconcile: bool
) -> dict[str, Any]:
    """The filter of one List* pass: changes since the cursor (minus the skew),
    or, to reconcile, everything created since the oldest subscription."""
    params: dict[str, Any] = {"MaxResults": LIST_PAGE}
    if reconcile:
        params["CreationTimeAfter"] = since - timedelta(seconds=skew)
    else:
        params["LastModifiedTimeAfter"] = (cursor or since) - timedelta(seconds=skew)
    return params


def summary_update(kind: Kind, summary: Mapping[str, Any]) -> Update | None:
    """An :class:`Update` from one List* summary (None if it has no name)."""
    name = summary.get(kind.name_field)
    if not isinstance(name, str) or not name:
        return None
    modified = summary.get("LastModifiedTime")
    secondary = summary.get(kind.secondary_status_field) if kind.secondary_status_field else None
    return Update(
        kind=kind.name,
        name=name,
        status=str(summary.get(kind.status_field, "")),
        secondary=str(secondary) if secondary else None,
        modified=modified if isinstance(modified, datetime) else None,
        facts=dict(summary),
        complete=False,
        source="list",
    )


def describe_update(kind: Kind, description: Description) -> Update:
    modified = description.get("LastModifiedTime")
    secondary = (
        description.get(kind.secondary_status_field) if kind.secondary_status_field else None
    )
    return Update(
        kind=kind.name,
        name=str(description.get(kind.name_field, "")),
        status=str(description.get(kind.status_field, "")),
        secondary=str(secondary) if secondary else None,
        modified=modified if isinstance(modified, datetime) else None,
        facts=description,
        complete=True,
        source="describe",
    )


def _utc(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, tz=timezone.utc)


# ---------------------------------------------------------------- subscriptions


class Subscription:
    """One job's view of its resource's status, from its kind's watcher."""

    def __init__(
        self,
        watch: KindWatch,
        name: str,
        describe: Describe,
        created: float,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.name = name
        self._warn = warn or (lambda message: watch.warn("", f"{name}: {message}"))
        self.latest: Update | None = None
        self._watch = watch
        self._describe = describe
        self._fresh = False
        self._wake = anyio.Event()
        self._poked = False
        self._interrupted = False
        self.created = created  # the resource's CreationTime (epoch seconds)
        self.subscribed_at = watch.clock()
        self.changed_at = self.subscribed_at
        self.listed_at = self.subscribed_at  # when a listing last showed it

    @property
    def mode(self) -> Strategy:
        return self._watch.mode_of(self)

    def offer(self, update: Update) -> bool:
        """Take an update from a source; False if it told nothing new."""
        if update.source != "describe":
            self.listed_at = self._watch.clock()
        # a describe is the truth, even when it says what was already known
        if update.source != "describe" and not newer(self.latest, update):
            return False
        self.latest = update
        self._fresh = True
        self.changed_at = self._watch.clock()
        self._wake.set()
        return True

    def poke(self) -> None:
        """Describe at the next wait instead of waiting for a source (after a stop)."""
        self._poked = True
        self._wake.set()

    def recheck(self) -> None:
        """Wake a wait so that it looks again at how it is served."""
        self._wake.set()

    def interrupt(self) -> None:
        """End the current wait with None (the job has something to do)."""
        self._interrupted = True
        self._wake.set()

    async def next(self, until: float | None) -> Update | None:
        """The next update; None when ``until`` (the job's clock) came first or
        the wait was interrupted.

        Raises :class:`Unseen` when the state could not be read for
        ``unknown_after`` seconds, and :class:`NotFound` when a describe says
        the resource does not exist."""
        watch = self._watch
        if not (self._fresh or self._poked or self._interrupted):
            if self.mode is Strategy.DESCRIBE:
                s = watch.settings
                delay = next_poll_delay(watch.clock() - self.changed_at, s.poll_min, s.poll_max)
                if until is not None:
                    delay = max(0.0, min(delay, until - watch.clock()))
                with anyio.move_on_after(delay):
                    await self._wake_wait()
                if not (self._fresh or self._poked or self._interrupted):
                    if until is not None and watch.clock() >= until:
                        return None
                    self._poked = True  # the delay is over: describe
            else:
                while not (self._fresh or self._poked or self._interrupted):
                    watch.check_health(self)
                    if until is not None and watch.clock() >= until:
                        return None
                    if watch.mode_of(self) is Strategy.DESCRIBE:  # fewer jobs now: describe
                        self._poked = True
                        break
                    await self._wait(until)
        if self._fresh:
            return self._take()
        if self._interrupted:
            self._interrupted = False
            return None
        if self._poked:
            self._poked = False
            description = await self._describe_until(watch.clock() + watch.settings.unknown_after)
            self.offer(describe_update(watch.kind, description))
            return self._take()
        return None

    def _take(self) -> Update:
        self._fresh = False
        self._wake = anyio.Event()
        assert self.latest is not None
        return self.latest

    async def _wake_wait(self) -> None:
        await self._wake.wait()
        self._wake = anyio.Event()

    async def _wait(self, until: float | None) -> None:
        """Wait for a pushed update, ``until``, or a health check (whichever first)."""
        watch = self._watch
        limit = watch.settings.unknown_after
        timeout = limit if until is None else min(limit, max(0.0, until - watch.clock()))
        with anyio.move_on_after(timeout):
            await self._wake_wait()

    async def _describe_until(self, deadline: float) -> Description:
        """Describe, retrying every failure until ``deadline``: a job we can't see
        is neither failed nor succeeded, so past the deadline it is Unknown."""
        watch = self._watch
        attempt = 0
        last_error = "no answer"
        while True:
            remaining = deadline - watch.clock()
            if remaining <= 0:
                raise Unseen(f"no describe of {self.name} succeeded for "
                             f"{watch.settings.unknown_after:.0f}s (last: {last_error})")
            with anyio.move_on_after(remaining):
                try:
                    description = await self._describe(Priority.LIVE)
                except Exception as error:
                    if not is_aws_error(error):
                        raise
                    last_error = describe_error(error)
                    self._warn(f"describe failed: {last_error}")
                else:
                    if description is None:
                        raise NotFound(f"{self.name} disappeared (its describe says not found)")
                    return description
            attempt += 1
            await anyio.sleep(min(remaining, watch.settings.poll_min * min(attempt, 10)))


# ---------------------------------------------------------------- watchers


class KindWatch:
    """The status source of one kind: its subscriptions and its list loop."""

    def __init__(
        self,
        kind: Kind,
        strategy: Strategy,
        *,
        call: Call,
        settings: Settings,
        warn: Callable[[str, str], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kind = kind
        self.strategy = strategy
        self.settings = settings
        self.clock = clock
        self._call = call
        self._warn = warn
        self.subscriptions: dict[str, Subscription] = {}
        self.jobs = 0  # jobs of this kind being driven (see enlist)
        self._changed = anyio.Event()  # a subscription came or a change was seen
        self._cursor: datetime | None = None  # newest LastModifiedTime listed
        self._reconciled_at = clock()
        self._list_ok_at: float | None = None  # when a List* pass last succeeded
        self._list_failing_since: float | None = None
        self._last_change = clock()
        self.passes = 0
        self.pages = 0

    def warn(self, name: str, message: str) -> None:
        self._warn(name, message)

    def mode_of(self, subscription: Subscription) -> Strategy:
        if not listable(self.kind) or self.strategy is Strategy.DESCRIBE:
            return Strategy.DESCRIBE
        if self.strategy is Strategy.AUTO:
            enough = max(len(self.subscriptions), self.jobs) >= self.settings.list_from
            return Strategy.LIST if enough else Strategy.DESCRIBE
        return self.strategy

    def enlist(self) -> bool:
        """A job of this kind is being driven (counted by ``auto`` before it is
        created); whether its status will be listed, hence its logs shared."""
        self.jobs += 1
        if not listable(self.kind) or self.strategy is Strategy.DESCRIBE:
            return False
        return self.strategy is not Strategy.AUTO or self.jobs >= self.settings.list_from

    def discharge(self) -> None:
        self.jobs = max(0, self.jobs - 1)
        self._fewer()

    def _fewer(self) -> None:
        """With ``auto``, a kind left with fewer than ``list_from`` jobs is no
        longer listed: its listed jobs wake and describe themselves from now on
        (else each would wait for an update no listing brings)."""
        if self.strategy is not Strategy.AUTO:
            return
        if max(len(self.subscriptions), self.jobs) < self.settings.list_from:
            for subscription in self.subscriptions.values():
                subscription.recheck()

    @property
    def listing(self) -> bool:
        """Whether the list loop has anything to serve now."""
        return any(self.mode_of(s) is not Strategy.DESCRIBE for s in self.subscriptions.values())

    def subscribe(
        self, name: str, describe: Describe, created: float,
        warn: Callable[[str], None] | None = None,
    ) -> Subscription:
        if name in self.subscriptions:
            raise ValueError(f"{self.kind.name} {name} is watched twice")
        subscription = Subscription(self, name, describe, created, warn)
        self.subscriptions[name] = subscription
        self._last_change = self.clock()
        # events bring the news: a new job doesn't need a listing then
        if self.strategy is not Strategy.EVENTS or len(self.subscriptions) == 1:
            self._changed.set()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if self.subscriptions.get(subscription.name) is subscription:
            del self.subscriptions[subscription.name]
            self._fewer()

    def dispatch(self, update: Update) -> bool:
        subscription = self.subscriptions.get(update.name)
        if subscription is None:
            return False
        accepted = subscription.offer(update)
        if accepted:
            self._last_change = self.clock()
        return accepted

    def list_ok_age(self) -> float:
        """Seconds since a List* pass last succeeded (inf: none yet)."""
        return math.inf if self._list_ok_at is None else self.clock() - self._list_ok_at

    def check_health(self, subscription: Subscription) -> None:
        """Raise :class:`Unseen` when listing has failed for ``unknown_after``."""
        failing = self._list_failing_since
        limit = self.settings.unknown_after
        if failing is not None and self.clock() - max(failing, subscription.subscribed_at) >= limit:
            raise Unseen(f"no {self.kind.list_operation} succeeded for {limit:.0f}s")

    # -- the loop ------------------------------------------------------------

    def _interval(self) -> float:
        s = self.settings
        if self.strategy is Strategy.EVENTS:
            return s.events_reconcile
        return next_poll_delay(self.clock() - self._last_change, s.poll_min, s.poll_max)

    async def run(self) -> None:
        """List while any subscription is served by the list; forever.

        A new job of a listed kind wakes the loop early (a kind that was quiet
        lists every ``poll_max``), but passes stay ``poll_min`` apart; with
        events, only the reconciling passes run, every ``events_reconcile``."""
        warned_at = -math.inf
        while True:
            if not self.listing:
                self._changed = anyio.Event()
                await self._changed.wait()
                continue
            now = self.clock()
            reconcile = (self.strategy is Strategy.EVENTS
                         or now - self._reconciled_at >= self.settings.list_reconcile)
            try:
                await self._pass(reconcile=reconcile)
            except Exception as error:
                if not is_aws_error(error):
                    raise
                if self._list_failing_since is None:
                    self._list_failing_since = now
                if now - warned_at >= self.settings.poll_max:
                    warned_at = now
                    self._warn("", f"{self.kind.list_operation} failed: "
                               f"{describe_error(error)}; retrying")
            else:
                self._list_failing_since = None
                self._list_ok_at = now
                if reconcile:
                    self._reconciled_at = now
                    self._poke_unlisted(now)
            with anyio.move_on_after(self._interval()):
                self._changed = anyio.Event()
                await self._changed.wait()
            rest = self.settings.poll_min - (self.clock() - now)
            if rest > 0:
                await anyio.sleep(rest)

    async def _pass(self, *, reconcile: bool) -> None:
        assert self.kind.list_operation
        oldest = min((s.created for s in self.subscriptions.values()), default=self.clock())
        params = list_params(self._cursor, _utc(oldest), self.settings.list_skew,
                             reconcile=reconcile)
        priority = Priority.DISCOVER if reconcile else Priority.LIVE
        newest = self._cursor
        self.passes += 1
        while True:
            page = await self._call("sagemaker", self.kind.list_operation, priority=priority,
                                    **params)
            self.pages += 1
            for summary in page.get(self.kind.summaries_field) or []:
                update = summary_update(self.kind, summary)
                if update is None:
                    continue
                if update.modified is not None and (newest is None or update.modified > newest):
                    newest = update.modified
                self.dispatch(update)
            token = page.get("NextToken")
            if not token:
                break
            params["NextToken"] = token
        self._cursor = newest

    def _poke_unlisted(self, now: float) -> None:
        """A resource no listing has shown for a reconcile interval is described."""
        limit = self.settings.list_reconcile
        for subscription in self.subscriptions.values():
            if (self.mode_of(subscription) is not Strategy.DESCRIBE
                    and now - subscription.listed_at >= limit):
                subscription.poke()


class StatusWatch:
    """Every kind's watcher, in one task group the engine owns."""

    def __init__(
        self,
        kinds: Mapping[str, Kind],
        *,
        call: Call,
        settings: Settings,
        strategy: Strategy | str = Strategy.AUTO,
        warn: Callable[[str, str], None] = lambda job, message: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.strategy = Strategy(strategy)
        self.settings = settings
        self._kinds = kinds
        self._call = call
        self._warn = warn
        self._clock = clock
        self.watches: dict[str, KindWatch] = {}
        self._tg: TaskGroup | None = None

    async def __aenter__(self) -> StatusWatch:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        return await self._tg.__aexit__(exc_type, exc, tb)

    def start(self, task: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        """Run a source beside the list loops (the SQS consumer)."""
        if self._tg is None:
            raise RuntimeError("use the StatusWatch inside 'async with'")
        self._tg.start_soon(task, name=name)

    def watch(self, kind: Kind) -> KindWatch:
        watch = self.watches.get(kind.name)
        if watch is None:
            if self._tg is None:
                raise RuntimeError("use the StatusWatch inside 'async with'")
            watch = KindWatch(kind, self.strategy, call=self._call, settings=self.settings,
                              warn=self._warn, clock=self._clock)
            self.watches[kind.name] = watch
            if listable(kind) and self.strategy is not Strategy.DESCRIBE:
                self._tg.start_soon(watch.run, name=f"watch:{kind.name}")
        return watch

    def subscribe(
        self, kind: Kind, name: str, describe: Describe, created: float | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> Subscription:
        return self.watch(kind).subscribe(
            name, describe, self._clock() if created is None else created, warn
        )

    def dispatch(self, update: Update) -> bool:
        """Hand a pushed update to the job watching its resource (False: nobody)."""
        watch = self.watches.get(update.kind)
        return watch.dispatch(update) if watch is not None else False

    def stats(self) -> dict[str, dict[str, float]]:
        return {
            name: {"subscriptions": len(w.subscriptions), "passes": w.passes, "pages": w.pages,
                   "list_ok_age": w.list_ok_age()}
            for name, w in sorted(self.watches.items())
        }
