"""Run: one manifest's jobs (or a script's), on an :class:`~smrun.engine.Engine`.

What belongs to one run lives here: its id, its jobs and their results, its
bus (so two runs' job keys never meet), what it records as it goes
(:class:`RunLog`: the journal of ``smrun run``, the daemon's store) and its
cancellation policy. What the process shares (AWS clients, budgets, status
watchers, the log reader, capacity queues) is the engine's, and a Run only
borrows it: one engine hosts any number of runs at once.

A Run is an async context manager owning one task group: every job it
submits is a task there. :meth:`Run.cancel` cancels them all (each job stops
or detaches per :attr:`Run.on_cancel`), and a :meth:`Run.run_manifest` in
progress returns its results instead of raising; the code around them goes
on (it is not cancelled).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

import anyio
from anyio.abc import TaskGroup

from smrun.errors import describe
from smrun.events import Bus, Event, Finished, Notice
from smrun.identity import resource_name
from smrun.job import Job
from smrun.kind import Kind
from smrun.manifest import Manifest
from smrun.queueing import Slots, limit_names, run_limits
from smrun.settings import OnCancel
from smrun.types import JobResult, Outcome, Request

if TYPE_CHECKING:  # the engine imports this module; a Run is only handed one
    from smrun.engine import Engine


class RunLog(Protocol):
    """What a run writes as it goes, so that a restart can take it up again."""

    def record(self, event: Event) -> None:
        """Keep what a restart needs of one event (a bus sink)."""

    def tokens(self, job: str) -> dict[str, str]:
        """Where each of ``job``'s log streams resumes (stream -> position)."""

    def save_token(self, job: str, stream: str, token: str) -> None:
        """``job``'s ``stream`` has been shown up to ``token``."""


class Run:
    """``async with engine.run() as run: results = await run.run_manifest(m)``."""

    def __init__(
        self,
        engine: Engine,
        run_id: str,
        *,
        log: RunLog | None = None,
        sinks: list[Callable[[Event], None]] | None = None,
        on_cancel: OnCancel | None = None,
    ) -> None:
        self.engine = engine
        self.run_id = run_id
        self.bus = Bus()
        for sink in sinks or []:
            self.bus.add_sink(sink)
        self.log = log
        if log is not None:
            self.bus.add_sink(log.record)
        self.on_cancel = on_cancel or engine.settings.on_cancel
        self.jobs: dict[str, Job] = {}
        # every job's result as it ends (readable after a cancellation, too)
        self.results: dict[str, JobResult] = {}
        self._tg: TaskGroup | None = None
        # what cancel() cancels: each run_manifest in progress, each submitted job
        self._manifest_scopes: list[anyio.CancelScope] = []
        self._job_scopes: list[anyio.CancelScope] = []
        self._stopped: set[str] = set()  # jobs asked to stop (stop_job)
        self._waiting: dict[str, anyio.CancelScope] = {}  # manifest jobs not created yet
        self.cancelled = False

    async def __aenter__(self) -> Run:
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
        try:
            return await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            self._tg = None
            self.bus.close()

    # --- the handle ---------------------------------------------------------

    def cancel(self, on_cancel: OnCancel | None = None) -> None:
        """Cancel every job of the run: each stops (or detaches, by
        ``on_cancel``, else the run's policy) and ends with its own result;
        a :meth:`run_manifest` in progress then returns. Idempotent."""
        policy = on_cancel or self.on_cancel
        self.cancelled = True
        for job in self.jobs.values():
            job.on_cancel = policy
        self.on_cancel = policy
        for scope in [*self._manifest_scopes, *self._job_scopes]:
            scope.cancel()

    async def stop_job(self, key: str) -> None:
        """Stop one job: a running one is stopped in SageMaker (it ends
        STOPPED_BY_US); one not created yet never starts (NOT_STARTED)."""
        self._stopped.add(key)
        job = self.jobs.get(key)
        if job is not None:
            await job.stop()
        elif key in self._waiting:
            self._waiting[key].cancel()

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
        engine = self.engine
        aws = engine.require_aws()
        if key in self.jobs:
            raise ValueError(f"job {key!r} already exists in run {self.run_id}")
        spec = kind if isinstance(kind, Kind) else engine.kinds[kind]
        problems = spec.option_problems(options or {})
        if problems:
            raise ValueError(f"job {key!r}: " + "; ".join(problems))
        request = dict(request)
        if not request.get(spec.name_field):
            request[spec.name_field] = resource_name(self.run_id, key, spec.max_name_length)
        on_token = None
        if self.log is not None:
            log = self.log
            tokens = {**log.tokens(key), **(tokens or {})}

            def on_token(stream: str, token: str) -> None:
                log.save_token(key, stream, token)

        job = Job(
            aws=aws,
            bus=self.bus,
            kind=spec,
            key=key,
            request=request,
            run_id=self.run_id,
            settings=engine.settings,
            watch=engine.require_watch(),
            logs=engine.logs,
            timeout=timeout,
            tokens=tokens,
            on_token=on_token,
            options=options,
            capacity=engine.capacity,
        )
        job.on_cancel = self.on_cancel
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
        self._task_group().start_soon(self._drive, job, name=f"job:{self.run_id}:{key}")
        return job

    def start_soon(self, task: Callable[..., Coroutine[Any, Any, Any]], *args: Any,
                   name: str) -> None:
        """Run ``task`` in the run's task group (it lives as long as the run)."""
        self._task_group().start_soon(task, *args, name=name)

    async def _drive(self, job: Job) -> None:
        scope = anyio.CancelScope()
        self._job_scopes.append(scope)
        try:
            with scope:
                if self.cancelled:
                    scope.cancel()
                self.results[job.key] = await job.drive()
            if job.result is not None:  # cancelled: the job's own cleanup result
                self.results[job.key] = job.result
        finally:
            self._job_scopes.remove(scope)

    def notify(self, level: str, message: str, job: str = "") -> None:
        """A notice of the run (``job`` empty) or of one job."""
        self.bus.publish(Notice(job, level, message, time=time.time()))

    # --- a manifest ---------------------------------------------------------

    async def run_manifest(
        self, manifest: Manifest, *, known: Mapping[str, JobResult] | None = None
    ) -> dict[str, JobResult]:
        """Run every job of a manifest, each once what it needs has succeeded.

        Independent branches run concurrently within the manifest's
        ``max_parallel`` limits (jobs wait for a slot in manifest order). A
        job needs each plain job it names to succeed, and each matrix to have
        ``min_succeeded`` items succeed; otherwise it is NOT_STARTED, naming
        what failed. An item of a ``fail_fast`` matrix that fails stops the
        matrix's other items (and those not started never start).

        ``known`` are results of an earlier process of this run (a daemon's
        store): a job whose known outcome is final (not Detached, not
        Unknown) is not driven again. After :meth:`cancel` it returns what
        each job came to; a cancellation from outside propagates."""
        self._task_group()  # inside 'async with'
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
        for key, result in (known or {}).items():
            if key in finished and result.outcome not in (Outcome.DETACHED, Outcome.UNKNOWN):
                results[key] = result

        self._waiting = scopes
        stopped = self._stopped

        def halt(matrix: str, item: str) -> None:
            halted[matrix] = item
            for other in manifest.matrices[matrix].items:
                if other != item and other in scopes:
                    scopes[other].cancel()

        async def one(key: str) -> None:
            spec = manifest.jobs[key]
            scope = scopes[key] = anyio.CancelScope()
            try:
                if key in results:  # ended in an earlier process of the run
                    return
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
                if key in stopped:  # asked while it waited for what it needs
                    results[key] = self._not_started(key, spec.kind, "stopped before it started")
                    return
                with scope:  # stop_job cancels it while the job waits for a slot
                    async with slots.hold(position[key], limit_names(spec.kind, spec.matrix)):
                        if spec.matrix is None or spec.matrix not in halted:
                            await self._drive_spec(manifest, key)
                if key in stopped and key not in results:
                    results[key] = self._not_started(key, spec.kind, "stopped before it started")
                elif key not in results:  # stopped by fail_fast before it started
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
                self._settle(key, spec.kind)
                raise
            finally:
                finished[key].set()

        cancelled = anyio.CancelScope()
        self._manifest_scopes.append(cancelled)
        try:
            with cancelled:
                if self.cancelled:
                    cancelled.cancel()
                async with anyio.create_task_group() as tg:
                    for key in order:
                        tg.start_soon(one, key, name=f"manifest:{self.run_id}:{key}")
        finally:
            self._manifest_scopes.remove(cancelled)
        for key in order:
            self._settle(key, manifest.jobs[key].kind)
        return {key: results[key] for key in order}

    def _settle(self, key: str, kind: str) -> None:
        """A job's result once the run was cancelled: its own, or NotStarted."""
        if key in self.results:
            return
        started = self.jobs.get(key)
        if started is not None and started.result is not None:
            self.results[key] = started.result
        else:
            self.results[key] = self._not_started(key, kind, "run cancelled")

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

    def _not_started(self, key: str, kind: str, reason: str) -> JobResult:
        result = JobResult(key=key, kind=kind, name=None, outcome=Outcome.NOT_STARTED,
                           failure_reason=reason)
        self.bus.publish(Notice(key, "error", reason, time=time.time()))
        self.bus.publish(Finished(key, result, time=time.time()))
        return result

    def _task_group(self) -> TaskGroup:
        if self._tg is None:
            raise RuntimeError("use the Run inside 'async with'")
        return self._tg
