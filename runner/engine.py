"""Runner: owns the AWS clients and one task group, submits jobs, runs manifests.

One Runner drives any number of jobs concurrently: every job is a task in the
Runner's task group, every AWS call shares the Runner's budgets, every event
goes through the Runner's bus. On entry it checks the environment once (region,
credentials, endpoints: :meth:`runner.aws.Aws.identify`) and says who and
where it acts, before anything can be created. The set of kinds is given by
the caller (the CLI and the library pass the built-in handlers).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any

import anyio
from aiobotocore.session import AioSession
from anyio.abc import TaskGroup

from runner.aws import Aws, AwsConfig, Identity
from runner.budget import Budgets
from runner.emulator import Emulator
from runner.errors import describe
from runner.events import Bus, Event, Finished, Notice
from runner.identity import resource_name
from runner.job import Job
from runner.journal import Journal
from runner.kind import Kind
from runner.logs import LogHub
from runner.manifest import Manifest
from runner.queueing import Capacity, Slots, limit_names, run_limits
from runner.settings import Settings
from runner.types import JobResult, Outcome, Request
from runner.watch.events import EventQueue, EventQueueError
from runner.watch.status import StatusWatch, Strategy

LOCAL_CREDENTIALS = ("smrun-local", "smrun-local-secret")
LOCAL_REGION = "us-east-1"


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


class Runner:
    """``async with Runner() as r: job = await r.submit("train", "training", request)``.

    ``local=True`` starts the embedded emulator on loopback and points the
    clients at it; everything else about the run is the same.
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
    ) -> None:
        self.run_id = run_id or new_run_id()
        self.local = local
        self.local_quotas = local_quotas  # the embedded emulator's account quotas
        self.settings = settings or (Settings.fast() if local else Settings())
        self.bus = Bus()
        for sink in sinks or []:
            self.bus.add_sink(sink)
        self.journal = journal
        if journal is not None:
            run_id = self.run_id
            self.bus.add_sink(lambda event: journal.record(run_id, event))
        self.jobs: dict[str, Job] = {}
        # every job's result as it ends (readable after a cancellation, too)
        self.results: dict[str, JobResult] = {}
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
        # creates refused for capacity wait here
        self.capacity = Capacity(
            retry=self.settings.capacity_retry,
            retry_max=self.settings.capacity_retry_max,
            deadline=self.settings.capacity_deadline,
        )

    async def __aenter__(self) -> Runner:
        try:
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
                    static_credentials=LOCAL_CREDENTIALS,
                    max_pool_connections=config.max_pool_connections,
                )
            self.aws = await self._stack.enter_async_context(
                Aws(config, budgets=self._budgets, session=self._session, notify=self._notify)
            )
            if self._preflight:
                self.identity = await self.aws.identify()
                self._notify("info", self.identity.describe())
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
        try:
            return await self._stack.__aexit__(exc_type, exc, tb)
        finally:
            self.bus.close()

    def _require(self) -> tuple[Aws, TaskGroup]:
        if self.aws is None or self._tg is None:
            raise RuntimeError("use the Runner inside 'async with'")
        return self.aws, self._tg

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
        self._notify("warning", message, job)

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
        """A Job handle, not started (see :meth:`submit`); ``options`` are the
        kind's job-level options (``Kind.option_types``)."""
        aws, _ = self._require()
        if key in self.jobs:
            raise ValueError(f"job {key!r} already exists in run {self.run_id}")
        spec = kind if isinstance(kind, Kind) else self.kinds[kind]
        problems = spec.option_problems(options or {})
        if problems:
            raise ValueError(f"job {key!r}: " + "; ".join(problems))
        request = dict(request)
        if not request.get(spec.name_field):
            request[spec.name_field] = resource_name(self.run_id, key, spec.max_name_length)
        on_token = None
        if self.journal is not None:
            journal, run_id = self.journal, self.run_id
            tokens = {**journal.tokens(run_id, key), **(tokens or {})}

            def on_token(stream: str, token: str) -> None:
                journal.save_token(run_id, key, stream, token)

        job = Job(
            aws=aws,
            bus=self.bus,
            kind=spec,
            key=key,
            request=request,
            run_id=self.run_id,
            settings=self.settings,
            watch=self._status(),
            logs=self.logs,
            timeout=timeout,
            tokens=tokens,
            on_token=on_token,
            options=options,
            capacity=self.capacity,
        )
        self.jobs[key] = job
        return job

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
        job = self.job(key, kind, request, timeout=timeout, options=options)
        _, tg = self._require()
        tg.start_soon(job.drive, name=f"job:{key}")
        return job

    async def run_manifest(self, manifest: Manifest) -> dict[str, JobResult]:
        """Run every job of a manifest, each once what it needs has succeeded.

        Independent branches run concurrently within the manifest's
        ``max_parallel`` limits (jobs wait for a slot in manifest order). A
        job needs each plain job it names to succeed, and each matrix to have
        ``min_succeeded`` items succeed; otherwise it is NOT_STARTED, naming
        what failed. An item of a ``fail_fast`` matrix that fails stops the
        matrix's other items (and those not started never start)."""
        self._require()
        results = self.results
        order = manifest.order()
        position = {key: i for i, key in enumerate(order)}
        finished = {key: anyio.Event() for key in manifest.jobs}
        slots = Slots(run_limits(
            manifest.limits.run, manifest.limits.kinds,
            {m.key: m.max_parallel for m in manifest.matrices.values()},
        ))
        scopes: dict[str, anyio.CancelScope] = {}
        halted: dict[str, str] = {}  # matrix key -> the item whose failure stopped it

        def halt(matrix: str, item: str) -> None:
            halted[matrix] = item
            for other in manifest.matrices[matrix].items:
                if other != item and other in scopes:
                    scopes[other].cancel()

        async def one(key: str) -> None:
            spec = manifest.jobs[key]
            scope = scopes[key] = anyio.CancelScope()
            try:
                needs = manifest.dependencies(key)
                for need in needs:
                    for member in manifest.members(need):
                        await finished[member].wait()
                failed = [n for n in needs if not manifest.satisfied(n, results)]
                if failed:
                    results[key] = self._not_started(
                        key, spec.kind, f"not started because {', '.join(failed)} failed"
                    )
                    return
                with scope:
                    async with slots.hold(position[key], limit_names(spec.kind, spec.matrix)):
                        if spec.matrix is None or spec.matrix not in halted:
                            await self._drive_spec(manifest, key)
                if key not in results:  # stopped by fail_fast before it started
                    results[key] = self._not_started(
                        key, spec.kind,
                        f"not started: {halted.get(spec.matrix or '', 'an item')} failed "
                        f"and {spec.matrix} fails fast",
                    )
                matrix = manifest.matrices.get(spec.matrix or "")
                if matrix is not None and matrix.fail_fast and not results[key].ok:
                    if spec.matrix not in halted:
                        halt(matrix.key, key)
            except anyio.get_cancelled_exc_class():
                started = self.jobs.get(key)
                if started is not None and started.result is not None:
                    results[key] = started.result
                elif key not in results:
                    results[key] = self._not_started(key, spec.kind, "run cancelled")
                raise
            finally:
                finished[key].set()

        async with anyio.create_task_group() as tg:
            for key in order:
                tg.start_soon(one, key, name=f"manifest:{key}")
        return {key: results[key] for key in order}

    async def _drive_spec(self, manifest: Manifest, key: str) -> None:
        """Create and drive one job of a manifest; its result lands in ``results``
        (also when a fail_fast matrix cancels it: the job's own cleanup result)."""
        spec = manifest.jobs[key]
        try:
            request = manifest.resolve(key, self.results, self.run_id)
            job = self.job(key, spec.kind, request, timeout=spec.timeout, options=spec.options)
        except Exception as error:  # e.g. an output a dependency did not give
            self.results[key] = self._not_started(key, spec.kind, describe(error))
            return
        try:
            self.results[key] = await job.drive()
        except anyio.get_cancelled_exc_class():
            if job.result is not None:
                self.results[key] = job.result
            raise

    def _notify(self, level: str, message: str, job: str = "") -> None:
        """A notice of the run (``job`` empty) or of one job."""
        self.bus.publish(Notice(job, level, message, time=time.time()))

    def _not_started(self, key: str, kind: str, reason: str) -> JobResult:
        result = JobResult(key=key, kind=kind, name=None, outcome=Outcome.NOT_STARTED,
                           failure_reason=reason)
        self.bus.publish(Notice(key, "error", reason, time=time.time()))
        self.bus.publish(Finished(key, result, time=time.time()))
        return result

    def _status(self) -> StatusWatch:
        if self.watch is None:
            raise RuntimeError("use the Runner inside 'async with'")
        return self.watch

    def stats(self) -> dict[str, Any]:
        aws, _ = self._require()
        return {"aws": aws.stats.summary(), "budgets": aws.budgets.stats(),
                "watch": self._status().stats()}

