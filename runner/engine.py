"""Engine: what one process shares among every run it drives; Runner: one
run on an engine of its own, the simple facade the CLI and the library use.

The engine owns the AWS clients and their budgets, the status watchers, the
log reader, the capacity queues and a task group: every job of every run
shares them (:class:`smrun.run.Run` holds what is one run's own). On entry
it checks the environment once (region, credentials, endpoints:
:meth:`smrun.aws.Aws.identify`) and says who and where it acts, before
anything can be created. The set of kinds is given by the caller (the CLI
and the library pass the built-in handlers).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypedDict

import anyio
from aiobotocore.session import AioSession
from anyio.abc import TaskGroup

from smrun.aws import Aws, AwsConfig, Identity
from smrun.budget import Budgets
from smrun.emulator import Emulator
from smrun.events import Bus, Event, Notice
from smrun.job import Job
from smrun.journal import Journal
from smrun.kind import Kind
from smrun.logs import LogHub
from smrun.manifest import Manifest
from smrun.queueing import Capacity
from smrun.run import Run, RunLog
from smrun.settings import OnCancel, Settings
from smrun.types import JobResult, Request
from smrun.watch.events import EventQueue, EventQueueError
from smrun.watch.status import StatusWatch, Strategy

if TYPE_CHECKING:
    from typing_extensions import Self

LOCAL_CREDENTIALS = ("smrun-local", "smrun-local-secret")
LOCAL_REGION = "us-east-1"


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


class Engine:
    """``async with Engine(kinds=...) as engine: async with engine.run() as run: ...``.

    ``local=True`` starts the embedded emulator on loopback and points the
    clients at it; everything else is the same. Notices of the engine itself
    (throttling, who and where it acts) go to :attr:`notices`.
    """

    def __init__(
        self,
        aws: AwsConfig | None = None,
        *,
        kinds: Mapping[str, Kind],
        settings: Settings | None = None,
        local: bool = False,
        budgets: Budgets | None = None,
        session: AioSession | None = None,
        preflight: bool = True,
        watch: Strategy | str = Strategy.AUTO,
        events_queue_url: str | None = None,
        local_quotas: Mapping[str, float] | None = None,
    ) -> None:
        self.local = local
        self.local_quotas = local_quotas  # the embedded emulator's account quotas
        self.settings = settings or (Settings.fast() if local else Settings())
        self.notices = Bus()
        self.emulator: Emulator | None = None
        self._aws_config = aws or AwsConfig()
        self._budgets = budgets
        self.kinds = kinds
        self.identity: Identity | None = None  # who and where, once entered
        self._session = session
        self._preflight = preflight
        self.strategy = Strategy(watch)
        if self.strategy is Strategy.AUTO and events_queue_url:
            self.strategy = Strategy.EVENTS
        if self.strategy is Strategy.EVENTS and not events_queue_url:
            raise ValueError("watching status by events needs the SQS queue's URL "
                             "(events_queue_url; `smrun events setup` makes one)")
        self.events_queue_url = events_queue_url
        self.events: EventQueue | None = None
        self.watch: StatusWatch | None = None
        self.logs: LogHub | None = None  # the shared log reader
        self._stack = AsyncExitStack()
        self._tg: TaskGroup | None = None
        self.aws: Aws | None = None
        # creates refused for capacity wait here, whichever run they belong to
        self.capacity = Capacity(
            retry=self.settings.capacity_retry,
            retry_max=self.settings.capacity_retry_max,
            deadline=self.settings.capacity_deadline,
        )

    async def __aenter__(self) -> Self:
        _require_asyncio()
        try:
            await self._enter()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def _enter(self) -> None:
        config = self._aws_config
        if self.local:
            emulator = await self._stack.enter_async_context(
                Emulator(quotas=self.local_quotas))
            self.emulator = emulator
            config = AwsConfig(
                region=LOCAL_REGION,
                endpoint_url=emulator.url,
                logs_endpoint_url=emulator.url,
                sts_endpoint_url=emulator.url,
                sqs_endpoint_url=emulator.url,
                events_endpoint_url=emulator.url,
                s3_endpoint_url=config.s3_endpoint_url,
                static_credentials=LOCAL_CREDENTIALS,
                max_pool_connections=config.max_pool_connections,
            )
        self.aws = await self._stack.enter_async_context(
            Aws(config, budgets=self._budgets, session=self._session, notify=self.notify)
        )
        if self._preflight:
            self.identity = await self.aws.identify()
            self.notify("info", self.identity.describe())
        aws = self.aws
        self.watch = await self._stack.enter_async_context(StatusWatch(
            self.kinds, call=aws.call, settings=self.settings, strategy=self.strategy,
            warn=self._warn,
        ))
        if self.events_queue_url:
            self.events = EventQueue(aws.call, self.events_queue_url, self.kinds,
                                     self.watch.dispatch)
            if self._preflight:
                await self.events.check()
            self.watch.start(self._consume_events, name="watch:events")
        self.logs = await self._stack.enter_async_context(
            LogHub.from_settings(aws.call, self.settings))
        self._tg = await self._stack.enter_async_context(anyio.create_task_group())

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        try:
            return await self._stack.__aexit__(exc_type, exc, tb)
        finally:
            self.notices.close()

    def run(
        self,
        run_id: str | None = None,
        *,
        log: RunLog | None = None,
        sinks: list[Callable[[Event], None]] | None = None,
        on_cancel: OnCancel | None = None,
    ) -> Run:
        """A new run on this engine (``async with`` it); ``run_id`` names its
        jobs, so the same id attaches to the jobs of an earlier process."""
        return Run(self, run_id or new_run_id(), log=log, sinks=sinks, on_cancel=on_cancel)

    def require_aws(self) -> Aws:
        if self.aws is None or self._tg is None:
            raise RuntimeError("use the engine inside 'async with'")
        return self.aws

    def require_watch(self) -> StatusWatch:
        if self.watch is None:
            raise RuntimeError("use the engine inside 'async with'")
        return self.watch

    @property
    def task_group(self) -> TaskGroup:
        """The engine's own task group: what lives as long as the engine does."""
        if self._tg is None:
            raise RuntimeError("use the engine inside 'async with'")
        return self._tg

    async def _consume_events(self) -> None:
        """Read the events queue; if it can't be read, say so once and let the
        reconciling List* poll carry on alone (slower, never wrong)."""
        assert self.events is not None
        try:
            await self.events.run()
        except EventQueueError as problem:
            self._warn("", f"{problem.problem}; {problem.fix}; status now comes from the "
                       f"reconciling List* poll only (every {self.settings.events_reconcile:.0f}s)")

    def _warn(self, job: str, message: str) -> None:
        self.notify("warning", message, job)

    def notify(self, level: str, message: str, job: str = "") -> None:
        """A notice of the engine (``job`` empty), or of a job it follows."""
        self.notices.publish(Notice(job, level, message, time=time.time()))

    def stats(self) -> dict[str, Any]:
        aws = self.require_aws()
        return {"aws": aws.stats.summary(), "budgets": aws.budgets.stats(),
                "watch": self.require_watch().stats()}


class RunnerOptions(TypedDict, total=False):
    """The keyword options of :class:`Runner` besides ``aws`` and ``kinds``."""

    settings: Settings | None
    run_id: str | None
    local: bool
    budgets: Budgets | None
    sinks: list[Callable[[Event], None]] | None
    journal: Journal | None
    session: AioSession | None
    preflight: bool
    watch: Strategy | str
    events_queue_url: str | None
    local_quotas: Mapping[str, float] | None
    on_cancel: OnCancel | None


class Runner:
    """``async with Runner() as r: job = await r.submit("train", "training", request)``.

    One run on an engine of its own: the run's id, jobs, results and bus are
    here, and the engine's notices reach the run's sinks too. The engine (its
    AWS clients, watchers, log reader) is :attr:`engine`; a script that
    wants several runs on one engine uses :meth:`Engine.run` instead.

    ``on_cancel`` is what cancelling the run (or the task that runs it) does
    to a running job: stop it (the default) or leave it running (detach).
    """

    def __init__(
        self,
        aws: AwsConfig | None = None,
        *,
        kinds: Mapping[str, Kind],
        settings: Settings | None = None,
        run_id: str | None = None,
        local: bool = False,
        budgets: Budgets | None = None,
        sinks: list[Callable[[Event], None]] | None = None,
        journal: Journal | None = None,
        session: AioSession | None = None,
        preflight: bool = True,
        watch: Strategy | str = Strategy.AUTO,
        events_queue_url: str | None = None,
        local_quotas: Mapping[str, float] | None = None,
        on_cancel: OnCancel | None = None,
    ) -> None:
        self.engine = Engine(
            aws, kinds=kinds, settings=settings, local=local, budgets=budgets, session=session,
            preflight=preflight, watch=watch, events_queue_url=events_queue_url,
            local_quotas=local_quotas,
        )
        """What the run shares with any other run of the process (AWS clients
        and budgets, status watchers, the log reader, capacity queues): the
        engine's own API, which may change."""
        run_id = run_id or new_run_id()
        log = None if journal is None else journal.for_run(run_id)
        self._run = self.engine.run(run_id, sinks=sinks, log=log, on_cancel=on_cancel)
        self.engine.notices.add_sink(self._run.bus.publish)
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Self:
        try:
            await self._stack.enter_async_context(self.engine)
            await self._stack.enter_async_context(self._run)
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        return await self._stack.__aexit__(exc_type, exc, tb)

    @property
    def identity(self) -> Identity | None:
        """Who and where the runner acts (account, region, principal), once
        entered; None with ``preflight=False``."""
        return self.engine.identity

    @property
    def settings(self) -> Settings:
        """The timings and budgets in force."""
        return self.engine.settings

    @property
    def run_id(self) -> str:
        """The run's id: it names the run's resources, so a runner with the
        same id attaches to them after a restart."""
        return self._run.run_id

    @property
    def jobs(self) -> dict[str, Job]:
        """Every job of the run so far, by key."""
        return self._run.jobs

    @property
    def results(self) -> dict[str, JobResult]:
        """The result of every job that has ended, by key."""
        return self._run.results

    @property
    def bus(self) -> Bus:
        """The run's bus: every event of its jobs, and the engine's notices."""
        return self._run.bus

    def cancel(self, on_cancel: OnCancel | None = None) -> None:
        """Cancel the run: every job stops (or detaches, by ``on_cancel`` or
        the runner's policy) and ends with its own result; the code around
        goes on. See :meth:`smrun.run.Run.cancel`."""
        self._run.cancel(on_cancel)

    async def as_completed(self, jobs: Iterable[Job]) -> AsyncIterator[Job]:
        """Each of ``jobs`` once it has ended (its :attr:`Job.result` set), in
        the order they end: ``async for job in runner.as_completed(jobs): ...``.

        The waiting is done by tasks of the run, not of the iterator, so
        leaving the loop early is safe; the jobs go on."""
        pending = list(jobs)
        send, receive = anyio.create_memory_object_stream[Job](len(pending))

        async def wait(job: Job) -> None:
            await job.wait()
            await send.send(job)

        for job in pending:
            self._run.start_soon(wait, job, name=f"as_completed:{job.key}")
        with receive:
            for _ in pending:
                yield await receive.receive()

    def job(
        self,
        key: str,
        kind: str | Kind,
        request: Request,
        *,
        timeout: float | None = None,
        tokens: dict[str, str] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Job:
        """A Job handle, not started (see :meth:`submit`)."""
        return self._run.job(key, kind, request, timeout=timeout, tokens=tokens,
                             options=options)

    async def submit(
        self,
        key: str,
        kind: str | Kind,
        request: Request,
        *,
        timeout: float | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Job:
        """Start driving one job in the background; ``await job.wait()`` for its result."""
        return await self._run.submit(key, kind, request, timeout=timeout, options=options)

    async def run_manifest(self, manifest: Manifest) -> dict[str, JobResult]:
        """Run every job of a manifest: see :meth:`smrun.run.Run.run_manifest`."""
        return await self._run.run_manifest(manifest)


def _require_asyncio() -> None:
    """aiobotocore, and so every AWS call, runs on asyncio only."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            "smrun runs on asyncio only (its AWS clients, aiobotocore, need it); trio is not "
            "supported: run it with asyncio.run(...) or anyio.run(..., backend='asyncio')"
        ) from None
