"""What emulated SageMaker jobs share: a status timeline, planned log lines, the
Create/Describe/List/Stop operations around a table of jobs.

A kind module subclasses :class:`EmulatedJob` (how one job looks and logs) and
:class:`JobTable` (the operations, named after its noun, e.g.
``ProcessingJob`` gives CreateProcessingJob, DescribeProcessingJob,
ListProcessingJobs and StopProcessingJob). Everything is fixed at creation and
read at the world's time, as :mod:`smrun.emulator.resources` explains.

Each transition of a job's timeline is also put on the scheduler, so that at
the moment it happens on the clock the kind's List* index moves the job (its
status and LastModifiedTime) and a :class:`~smrun.emulator.resources.StateChange`
goes to whoever listens (EventBridge). A stop rewrites the timeline; the
transitions it cancels find themselves gone when they fall due and do nothing.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from smrun.emulator.listing import ListIndex
from smrun.emulator.protocol import ApiError, Params
from smrun.emulator.quotas import Demand
from smrun.emulator.resources import NOT_FOUND, Result, SageMaker, StateChange

LATE_INGESTION = 0.5  # seconds the last line of a stream reaches CloudWatch after the end
TERMINAL = frozenset({"Completed", "Failed", "Stopped"})


@dataclass(frozen=True)
class Transition:
    status: str  # the job's status from ``start`` on
    start: float


class Timeline:
    """A job's statuses over time: planned at creation, cut short by a stop."""

    def __init__(self, transitions: Sequence[Transition]) -> None:
        if not transitions:
            raise ValueError("a timeline needs at least its first status")
        self.transitions = list(transitions)
        self.stopped_at: float | None = None
        # told of the transitions a stop adds (the job's table schedules them)
        self.replanned: Callable[[Sequence[Transition]], None] | None = None

    def history(self, now: float) -> list[Transition]:
        """The transitions that happened by ``now`` (the first one always has)."""
        count = bisect.bisect_right([t.start for t in self.transitions], now)
        return self.transitions[: max(count, 1)]

    def current(self, now: float) -> Transition:
        return self.history(now)[-1]

    def ended(self, now: float) -> float | None:
        """When the job reached its terminal status, if it has by ``now``."""
        state = self.current(now)
        return state.start if state.status in TERMINAL else None

    def stop(self, now: float, delay: float, what: str) -> None:
        """Stopping now, Stopped ``delay`` seconds later; ``what`` names the
        job in the error a terminal job answers with."""
        state = self.current(now)
        if state.status in TERMINAL:
            raise ApiError(
                "ValidationException",
                f"The request was rejected because the {what} is in status {state.status}.",
            )
        if state.status == "Stopping":
            return
        self.stopped_at = now
        added = self.stopping(now, delay)
        self.transitions = [*self.history(now), *added]
        if self.replanned is not None:
            self.replanned(added)

    def stopping(self, now: float, delay: float) -> list[Transition]:
        """What a stop at ``now`` adds: Stopping, then Stopped ``delay`` later."""
        return [Transition("Stopping", now), Transition("Stopped", now + delay)]

    def keeps(self, timestamp: float) -> bool:
        """Whether a line written at ``timestamp`` is still written: a stopped
        container writes nothing after the stop."""
        return self.stopped_at is None or timestamp <= self.stopped_at


@dataclass(frozen=True)
class PlannedLine:
    stream: str
    timestamp: float  # when the container wrote it
    ingested: float  # when CloudWatch has it
    message: str


def spread(count: int, start: float, end: float) -> list[float]:
    """``count`` instants from just after ``start`` up to ``end`` (the last one)."""
    return [start + (end - start) * (k + 1) / count for k in range(count)]


class EmulatedJob:
    """One job: its request, its timeline and the lines it will log."""

    resource_type = ""  # the ARN's resource type, e.g. "processing-job"
    stop_delay = 1.0  # seconds from Stop* to Stopped; kinds read it from a tag

    def __init__(self, sagemaker: SageMaker, name: str, params: Params, created: float) -> None:
        self.name = name
        self.arn = sagemaker.arn(self.resource_type, name)
        self.request = params
        self.created = created
        self.epoch = int(created)
        self.timeline = Timeline([Transition("InProgress", created)])

    def log_lines(self) -> list[PlannedLine]:
        return []

    def describe(self, now: float, echo: Callable[[Params], Result]) -> Result:
        raise NotImplementedError

    def summary(self, now: float) -> Result:
        raise NotImplementedError

    def run_times(self, now: float, started: float, *, start: str, end: str) -> Result:
        """The members ``start`` (when the instances were ready, unless the job
        was stopped before) and ``end`` (when it turned terminal), once each
        happened by ``now``."""
        times: Result = {}
        stopped = self.timeline.stopped_at
        if started <= now and (stopped is None or started <= stopped):
            times[start] = started
        ended = self.timeline.ended(now)
        if ended is not None:
            times[end] = ended
        return times


J = TypeVar("J", bound=EmulatedJob)


class JobTable(Generic[J]):
    """Create/Describe/List/Stop for one job kind, over its jobs by name.

    Subclasses set ``noun``, ``what`` (the kind in error messages) and
    ``log_group``, and implement :meth:`new_job`; :meth:`check` may refuse a
    request before anything is created. A kind whose jobs run on instances
    tells them by :meth:`demand`: a new job is admitted against the account's
    quotas (:mod:`smrun.emulator.quotas`) before it exists, and holds its
    instances until it turns terminal.
    """

    noun = ""  # e.g. "ProcessingJob"
    what = ""  # e.g. "processing job"
    log_group = ""
    detail_type = ""  # of its EventBridge events, e.g. "SageMaker Processing Job State Change"
    not_found_code = "ValidationException"  # the error an unknown name gets
    # As for training jobs: MaxResults jobs are picked first, then filtered
    # by StatusEquals, so a page can come back short while more match.
    status_after_page = True
    summaries_member = ""  # default: f"{noun}Summaries"
    default_order = "Ascending"  # List*'s SortOrder when none is given

    def __init__(self, sagemaker: SageMaker) -> None:
        self.sagemaker = sagemaker
        self.jobs: dict[str, J] = {}  # by lower-cased name: names are case-insensitive
        describe = sagemaker.protocol.model.operation_model(f"Describe{self.noun}")
        self._echoed = frozenset(describe.output_shape.members)
        self.index: ListIndex[J] = ListIndex(
            summaries=self.summaries_member or f"{self.noun}Summaries",
            summary=lambda job, now: job.summary(now),
            default_order=self.default_order,
            status_after_page=self.status_after_page,
            filters=self.list_filters(),
        )

    @property
    def name_member(self) -> str:
        return f"{self.noun}Name"

    @property
    def status_member(self) -> str:
        return f"{self.noun}Status"

    def install(self) -> None:
        for operation, handler in (
            (f"Create{self.noun}", self.create),
            (f"Describe{self.noun}", self.describe),
            (f"List{self.noun}s", self.list),
            (f"Stop{self.noun}", self.stop),
        ):
            self.sagemaker.register(operation, handler)

    # -- what a kind provides ----------------------------------------------

    def new_job(self, params: Params, now: float) -> J:
        raise NotImplementedError

    def list_filters(self) -> Mapping[str, Callable[[J, Any], bool]]:
        """List* request members of this kind's own, and how each tests a job."""
        return {}

    def settled(self, status: str) -> bool:
        """Whether a job in ``status`` may stay there for good."""
        return status in TERMINAL

    async def check(self, params: Params) -> None:
        """Refuse a request (raise :class:`ApiError`) before anything exists."""

    def demand(self, job: J) -> Demand | None:
        """The instances ``job`` runs on, counted against the account's quotas."""
        return None

    # -- the operations ----------------------------------------------------

    def echo(self, request: Params) -> Result:
        """The request members that Describe* answers with, as given."""
        return {k: v for k, v in request.items() if k in self._echoed}

    def job(self, name: str) -> J:
        try:
            return self.jobs[name.lower()]
        except KeyError:
            raise ApiError(self.not_found_code, NOT_FOUND) from None

    def refuse_existing(self, name: str) -> None:
        existing = self.jobs.get(name.lower())
        if existing is not None:
            raise ApiError(
                "ResourceInUse",
                f"{self.what.capitalize()} names must be unique within an AWS account and "
                f"region, and a {self.what} with this name already exists ({existing.arn})",
            )

    async def create(self, params: Params) -> Result:
        self.refuse_existing(params[self.name_member])
        await self.check(params)
        job = self.start(params, self.sagemaker.now)
        return {f"{self.noun}Arn": job.arn}

    def start(self, params: Params, created: float) -> J:
        """A new job, created at ``created``, with its log lines scheduled;
        refused (ResourceLimitExceeded) if it would go over a quota."""
        job = self.new_job(params, created)
        demand = self.demand(job)
        if demand is not None:
            self.sagemaker.concurrency.admit(demand)
        self.jobs[job.name.lower()] = job
        self.sagemaker.add_resource(job.arn, params.get("Tags"))
        if demand is not None:
            self.sagemaker.concurrency.hold(job.arn, job.arn, demand)
        first = job.timeline.transitions[0]
        self.index.add(job, job.name, job.created, first.status, first.start)
        job.timeline.replanned = lambda added: self.follow(job, added)
        self.follow(job, job.timeline.transitions)
        self.schedule(job, job.log_lines())
        return job

    def follow(self, job: J, transitions: Iterable[Transition]) -> None:
        """Put each transition on the scheduler, to be announced when it happens."""
        scheduler = self.sagemaker.scheduler
        for transition in transitions:
            scheduler.at_or_now(transition.start, functools.partial(self.moved, job, transition))

    def moved(self, job: J, transition: Transition) -> None:
        if not any(t is transition for t in job.timeline.transitions):
            return  # cancelled by a stop
        at = transition.start
        if transition.status in TERMINAL:
            self.sagemaker.concurrency.release(job.arn)
        self.index.move(job.name, transition.status, at)
        self.sagemaker.state_changed(
            StateChange(
                detail_type=self.detail_type,
                arn=job.arn,
                at=at,
                describe=f"Describe{self.noun}",
                detail=lambda: job.describe(at, self.echo),
                settled=self.settled(transition.status),
            )
        )

    def schedule(self, job: J, lines: Iterable[PlannedLine]) -> None:
        """Write each line when it reaches CloudWatch, unless the job was
        stopped before the container wrote it."""
        logs = self.sagemaker.logs
        for line in lines:

            def write(line: PlannedLine = line) -> None:
                if job.timeline.keeps(line.timestamp):
                    logs.put(
                        self.log_group,
                        line.stream,
                        [(round(line.timestamp * 1000), line.message)],
                        ingestion_time=round(line.ingested * 1000),
                    )

            self.sagemaker.scheduler.at(line.ingested, write)

    def describe(self, params: Params) -> Result:
        return self.job(params[self.name_member]).describe(self.sagemaker.now, self.echo)

    def stop(self, params: Params) -> Result:
        job = self.job(params[self.name_member])
        job.timeline.stop(self.sagemaker.now, job.stop_delay, self.what)
        return {}

    def list(self, params: Params) -> Result:
        return self.index.answer(params, self.sagemaker.now)
