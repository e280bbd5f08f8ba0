"""Daemon: many runs on one engine, kept in a store, under leases.

The daemon validates a submitted manifest (exactly as ``smrun validate``
does), records it as a pending run, and drives every run it holds: each on
the shared :class:`~smrun.engine.Engine`, recorded by a
:class:`~smrun.recorder.StoreRecorder`. A heartbeat renews the leases of
the runs it holds, takes over unfinished runs nobody holds (new ones, and
those of a daemon that died), and acts on stops asked through any daemon.

A run taken over (after a restart, or from a dead daemon) resumes: the
manifest runs again under the same run id, so every job attaches to its
SageMaker resource (names are deterministic), its logs resume from the
positions in the store, and jobs that had ended are not driven again.

Shutdown detaches by default: every job keeps running in SageMaker, the
leases are given up, and the next daemon to claim the runs picks them up
(``on_shutdown=OnCancel.STOP`` stops them instead).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from smrun.engine import Engine, new_run_id
from smrun.events import Event, Notice
from smrun.kind import Kind
from smrun.manifest import DEFAULT_MAX_MATRIX, Manifest, ManifestError, load_manifest
from smrun.recorder import StoreRecorder, run_record
from smrun.run import Run
from smrun.settings import OnCancel
from smrun.store import RunRecord, RunStatus, Store
from smrun.types import JobResult


@dataclass(frozen=True)
class DaemonSettings:
    """How the daemon holds runs. Production values; tests shorten them."""

    lease_ttl: float = 30.0  # a run is free for another daemon this long after the last renewal
    heartbeat: float = 5.0  # renew, claim and look for stop requests this often
    max_runs: int = 200  # runs driven at once by this daemon
    # how often a stream of a run held elsewhere looks for events, when the
    # store can't tell of them (PostgreSQL's LISTEN is down)
    remote_poll: float = 1.0
    on_shutdown: OnCancel = OnCancel.DETACH

    @classmethod
    def fast(cls) -> DaemonSettings:
        return cls(lease_ttl=3.0, heartbeat=0.2, remote_poll=0.1)


def new_owner() -> str:
    """This process's name in the leases: host, pid and a random part."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def manifest_text(text: str) -> str:
    """A manifest's text as load_manifest reads text, not a path (one line of YAML too)."""
    return text if "\n" in text or text.lstrip().startswith("{") else text + "\n"


def run_status(results: Mapping[str, JobResult], *, stopped: bool) -> RunStatus:
    if stopped:
        return RunStatus.STOPPED
    if all(r.ok for r in results.values()):
        return RunStatus.SUCCEEDED
    return RunStatus.FAILED


def outcome_counts(results: Mapping[str, JobResult]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in results.values():
        counts[result.outcome.value] = counts.get(result.outcome.value, 0) + 1
    return counts


@dataclass
class _Held:
    """A run this daemon drives."""

    record: RunRecord
    run: Run | None = None
    recorder: StoreRecorder | None = None
    stopping: bool = False  # a stop was asked: the run ends as stopped
    shutdown: bool = False  # the daemon is shutting down
    lost: bool = False  # another daemon took the lease
    stop_jobs: set[str] = field(default_factory=set)


class Daemon:
    """``async with Daemon(engine, store) as daemon: await daemon.submit(text)``.

    Error handling: a manifest that does not validate raises
    :class:`~smrun.manifest.ManifestError` from :meth:`submit` and records
    nothing; a run id reused for another manifest raises
    :class:`~smrun.store.RunConflict`. A run that fails to load when it is
    taken over (a kind that this daemon lacks) is recorded failed, with the
    reason. Database errors while recording are retried by the recorder; a
    lost lease detaches the run.
    """

    def __init__(
        self,
        engine: Engine,
        store: Store,
        *,
        owner: str | None = None,
        settings: DaemonSettings | None = None,
        max_matrix: int = DEFAULT_MAX_MATRIX,
        on_event: Callable[[str, Event], None] | None = None,
        log: Callable[[str, str], None] | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.owner = owner or new_owner()
        self.settings = settings or DaemonSettings()
        self.max_matrix = max_matrix
        self.kinds: Mapping[str, Kind] = engine.kinds
        self.held: dict[str, _Held] = {}
        self.ready = False
        self.started = time.time()
        self._on_event = on_event  # (run_id, event): metrics see every run's events
        self._log = log or (lambda level, message: None)
        self._changed: dict[str, anyio.Event] = {}
        self._poke = anyio.Event()
        self._manifests: dict[tuple[str, str], Manifest] = {}
        self._closing = False
        self._idle = anyio.Event()  # set when no run is held
        self._idle.set()
        engine.notices.add_sink(self._engine_notice)

    # --- submissions and requests -------------------------------------------

    def validate(self, text: str, source: str = "<submitted>") -> Manifest:
        """The manifest, validated as ``smrun validate`` does (ManifestError)."""
        return load_manifest(manifest_text(text), kinds=self.kinds, source=source,
                             max_matrix=self.max_matrix)

    async def submit(
        self, text: str, *, run_id: str | None = None, source: str = "api",
        options: Mapping[str, Any] | None = None,
    ) -> tuple[RunRecord, bool]:
        """Record a run of ``text``; ``(run, created)``. The same ``run_id``
        and text again is the same run (``created`` False)."""
        self.validate(text, source if source != "api" else "<submitted>")
        now = time.time()
        record = RunRecord(
            run_id=run_id or new_run_id(), manifest=text, digest=digest(text), source=source,
            status=RunStatus.PENDING, options=dict(options or {}), created=now, updated=now,
        )
        stored, created = await self.store.create_run(record)
        if created:
            self._poke.set()
        return stored, created

    def manifest_of(self, run: RunRecord) -> Manifest | None:
        """The run's manifest, parsed once (None when it no longer validates)."""
        key = (run.run_id, run.digest)
        if key not in self._manifests:
            try:
                self._manifests[key] = self.validate(run.manifest, run.source or run.run_id)
            except ManifestError:
                return None
        return self._manifests[key]

    async def stop(self, run_id: str, job: str | None = None) -> bool:
        """Stop a run (or one of its jobs), wherever it is driven; False when
        there is no such run. Jobs are stopped, not detached."""
        held = self.held.get(run_id)
        if held is not None:
            self._stop_here(held, job)
            return True
        run = await self.store.get_run(run_id)
        if run is None:
            return False
        if run.status.finished:
            return True
        if job is None:
            await self.store.update_run(run_id, stop_requested=True)
        else:  # a job's stop is asked of its holder through the run's options
            jobs = sorted({*run.options.get("stop_jobs", []), job})
            await self.store.update_run(run_id, options={**run.options, "stop_jobs": jobs})
        return True

    def changed(self, run_id: str) -> anyio.Event:
        """Set when events of the run are written by this daemon (then replaced)."""
        event = self._changed.get(run_id)
        if event is None:
            event = self._changed[run_id] = anyio.Event()
        return event

    def holds(self, run_id: str) -> bool:
        return run_id in self.held

    # --- the life of the daemon ----------------------------------------------

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Hold and drive runs until cancelled; then detach (or stop) them.

        The runs are tasks of the engine's task group, not of this one, so
        that the cancellation of the daemon reaches no job: each run is
        cancelled here, by the shutdown policy, and waited for."""
        tg = self.engine.task_group
        async with anyio.create_task_group() as listening:
            # what other daemons write to the store wakes this one's streams
            listening.start_soon(self.store.listen, self._written, name="store:listen")
            try:
                await self._adopt(tg)
                self.ready = True
                task_status.started()
                while True:
                    await self._beat(tg)
                    with anyio.move_on_after(self.settings.heartbeat):
                        await self._poke.wait()
                    self._poke = anyio.Event()
            finally:
                listening.cancel_scope.cancel()
                self.ready = False
                with anyio.CancelScope(shield=True):
                    await self._shutdown()

    async def _adopt(self, tg: TaskGroup) -> None:
        """Runs this owner held before a restart (same owner name) are taken up at once."""
        unfinished = await self.store.list_runs(status=[RunStatus.RUNNING], limit=10_000)
        mine = [r.run_id for r in unfinished if r.owner == self.owner]
        if mine:
            held = await self.store.renew(self.owner, mine, ttl=self.settings.lease_ttl)
            for run in unfinished:
                if run.run_id in held:
                    self._start(tg, run)

    async def _beat(self, tg: TaskGroup) -> None:
        settings = self.settings
        if self.held:
            kept = await self.store.renew(self.owner, list(self.held), ttl=settings.lease_ttl)
            for run_id in set(self.held) - kept:
                self._lose(run_id)
            for run_id in list(self.held):
                run = await self.store.get_run(run_id)
                held = self.held.get(run_id)
                if run is None or held is None:
                    continue
                if run.stop_requested and not held.stopping:
                    self._stop_here(held, None)
                for job in run.options.get("stop_jobs", []):
                    if job not in held.stop_jobs:
                        self._stop_here(held, job)
        room = settings.max_runs - len(self.held)
        if room > 0 and not self._closing:
            for run in await self.store.claim(self.owner, ttl=settings.lease_ttl, limit=room):
                self._start(tg, run)

    def _start(self, tg: TaskGroup, run: RunRecord) -> None:
        if run.run_id in self.held:
            return
        self.held[run.run_id] = _Held(run)
        self._idle = anyio.Event()
        tg.start_soon(self._drive, run.run_id, name=f"daemon-run:{run.run_id}")

    async def _shutdown(self) -> None:
        """Detach (or stop) every run held, and wait until each has written
        what it holds and given its lease up."""
        self._closing = True
        policy = self.settings.on_shutdown
        for held in list(self.held.values()):
            held.shutdown = True
            if held.run is not None:
                held.run.cancel(policy)
        if self.held:
            await self._idle.wait()

    # --- one run -------------------------------------------------------------

    async def _drive(self, run_id: str) -> None:
        """Drive one run. Shielded: the cancellation of the daemon (or of the
        engine around it) never reaches a job directly; :meth:`_shutdown`
        cancels each run by the shutdown policy instead, and waits for it."""
        held = self.held[run_id]
        record = held.record
        try:
            with anyio.CancelScope(shield=True):
                await self._drive_held(held)
        except Exception as error:  # the run could not be driven: say why, keep the daemon
            self._log("error", f"run {run_id}: {type(error).__name__}: {error}")
        finally:
            self.held.pop(run_id, None)
            if not self.held:
                self._idle.set()
            if not held.lost:
                with anyio.CancelScope(shield=True):
                    try:
                        await self.store.release(self.owner, record.run_id)
                    except Exception as error:
                        self._log("warning", f"run {run_id}: could not release its lease: {error}")

    async def _drive_held(self, held: _Held) -> None:
        record = held.record
        run_id = record.run_id
        manifest = self.manifest_of(record)
        recorder = held.recorder = StoreRecorder(
            self.store, run_id, owner=self.owner,
            positions=await self.store.positions(run_id),
            on_written=lambda _id: self._written(run_id),
            on_lost=lambda: self._lose(run_id),
            on_error=lambda error: self._log("warning", f"run {run_id}: recording: {error}"),
        )
        if manifest is None:
            await self._finish(held, RunStatus.FAILED, {"error": "the manifest no longer "
                               "validates with this daemon's kinds"})
            return
        known = {
            job.job: JobResult.from_dict(job.result)
            for job in await self.store.jobs(run_id) if job.result is not None
        }
        policy = OnCancel(record.options.get("on_cancel", OnCancel.STOP.value))
        sinks: list[Callable[[Event], None]] = []
        if self._on_event is not None:
            on_event = self._on_event
            sinks.append(lambda event: on_event(run_id, event))
        await self.store.update_run(run_id, owner=self.owner, status=RunStatus.RUNNING)
        recorder.append(run_record(RunStatus.RUNNING.value, owner=self.owner))
        async with anyio.create_task_group() as tg:
            tg.start_soon(recorder.run, name=f"recorder:{run_id}")
            try:
                async with self.engine.run(run_id, log=recorder, sinks=sinks,
                                           on_cancel=policy) as run:
                    held.run = run
                    if held.shutdown:  # the daemon began to shut down meanwhile
                        run.cancel(self.settings.on_shutdown)
                    for job in held.stop_jobs:
                        self._stop_job(run, job)
                    results = await run.run_manifest(manifest, known=known)
            finally:
                held.run = None
                await recorder.close()
                tg.cancel_scope.cancel()
        if held.lost:
            return
        if run.cancelled and not held.stopping:  # the daemon is shutting down
            if self.settings.on_shutdown is OnCancel.DETACH:
                return  # the run stays running, for the next daemon to take up
            held.stopping = True
        status = run_status(results, stopped=held.stopping)
        await self._finish(held, status, {"counts": outcome_counts(results)})

    async def _finish(self, held: _Held, status: RunStatus, summary: dict[str, Any]) -> None:
        run_id = held.record.run_id
        recorder = held.recorder
        if recorder is not None and not recorder.lost:
            recorder.append(run_record(status.value, **summary))
            await recorder.flush()
        await self.store.update_run(run_id, owner=self.owner, status=status, ended=time.time(),
                                    summary=summary)
        self._written(run_id)

    def _engine_notice(self, event: Event) -> None:
        """The engine's own notices (throttling, ...) are the daemon's: its log."""
        if isinstance(event, Notice):
            self._log(event.level, event.message if not event.job
                      else f"{event.job}: {event.message}")

    def _stop_here(self, held: _Held, job: str | None) -> None:
        if job is None:
            held.stopping = True
            if held.run is not None:
                held.run.cancel(OnCancel.STOP)
            return
        held.stop_jobs.add(job)
        if held.run is not None:
            self._stop_job(held.run, job)

    @staticmethod
    def _stop_job(run: Run, job: str) -> None:
        handle = run.jobs.get(job)
        if handle is None or not handle.done:
            run.engine.task_group.start_soon(run.stop_job, job)

    def _lose(self, run_id: str) -> None:
        held = self.held.get(run_id)
        if held is None or held.lost:
            return
        held.lost = True
        self._log("warning", f"run {run_id}: its lease was taken over; detaching")
        if held.run is not None:
            held.run.cancel(OnCancel.DETACH)

    def _written(self, run_id: str | None) -> None:
        """Wake the streams of ``run_id`` (None: of every run) to read the store."""
        if run_id is None:
            woken, self._changed = list(self._changed.values()), {}
        else:
            event = self._changed.pop(run_id, None)
            woken = [event] if event is not None else []
        for event in woken:
            event.set()
