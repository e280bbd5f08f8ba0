"""Where runs live between processes: one interface, SQLite and PostgreSQL.

A daemon (and ``smrun run --state-dir``) keeps here what SageMaker can't tell
it after a restart: each run's manifest and status, which SageMaker resource
each job is and how it ended, the log position of every stream, and every
event the run published (so a client that reconnects with ``Last-Event-ID``
gets each event once, across a restart of the daemon too).

- :class:`SqliteStore` (``sqlite.py``): one file under the state directory,
  for one daemon or one ``smrun run``.
- :class:`PostgresStore` (``postgres.py``): several daemons share it. Each
  unfinished run is held by one daemon at a time under a lease that its
  heartbeats renew (:meth:`Store.claim`, :meth:`Store.renew`); a daemon that
  dies leaves its runs to the others once the lease expires.

Error handling: :meth:`Store.write` is fenced by the lease. A daemon whose
lease on a run was taken over gets :class:`LeaseLost` and must stop driving
that run (its events and positions are not written), so a run is never
recorded by two daemons at once. :meth:`Store.create_run` raises
:class:`RunConflict` for a run id already used by another manifest. Other
database errors propagate.

Both stores pass the same suite of tests (``tests/test_store.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol


class RunStatus(str, Enum):
    """Where a run stands."""

    PENDING = "pending"  # recorded, no daemon has started it yet
    RUNNING = "running"  # a daemon drives its jobs
    SUCCEEDED = "succeeded"  # every job ended well
    FAILED = "failed"  # a job failed, or could not start
    STOPPED = "stopped"  # stopped on request (its jobs were stopped)

    @property
    def finished(self) -> bool:
        return self not in (RunStatus.PENDING, RunStatus.RUNNING)


UNFINISHED = (RunStatus.PENDING, RunStatus.RUNNING)


class RunConflict(Exception):
    """A run id already names a run of another manifest."""


class LeaseLost(Exception):
    """This daemon no longer holds the run's lease: another daemon took it over."""


@dataclass
class RunRecord:
    """One run as stored."""

    run_id: str
    manifest: str  # the manifest's text (YAML or JSON), as submitted
    digest: str  # sha256 of the manifest text: same id + same digest = same run
    source: str = ""  # where it came from (a file name, "api", an SQS message id)
    status: RunStatus = RunStatus.PENDING
    options: dict[str, Any] = field(default_factory=dict)  # e.g. {"on_cancel": "stop"}
    created: float = 0.0  # seconds since the epoch
    updated: float = 0.0
    ended: float | None = None
    owner: str | None = None  # the daemon holding the lease
    lease_until: float | None = None
    stop_requested: bool = False  # a stop asked of whichever daemon holds it
    summary: dict[str, Any] = field(default_factory=dict)  # counts by outcome, once ended


@dataclass
class JobRecord:
    """One job of a run as stored (the last of each field recorded)."""

    run_id: str
    job: str
    kind: str | None = None
    name: str | None = None  # the SageMaker resource name
    status: str | None = None
    outcome: str | None = None  # an Outcome value, once ended
    result: dict[str, Any] | None = None  # JobResult.to_dict(), redacted, once ended
    updated: float = 0.0


@dataclass
class Batch:
    """What one :meth:`Store.write` records, in one transaction.

    ``events`` get increasing ids in the order given. ``positions`` are
    ``(job, stream, token)``: a position and the log lines it covers are
    written together, so after a crash a stream resumes exactly after the
    last line recorded."""

    events: list[dict[str, Any]] = field(default_factory=list)  # serialized events
    jobs: list[JobRecord] = field(default_factory=list)  # upserts (None fields kept)
    positions: list[tuple[str, str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.events or self.jobs or self.positions)


@dataclass(frozen=True)
class StoredEvent:
    id: int  # increasing within the store; the SSE event id
    run_id: str
    job: str
    type: str  # the record's "type"
    record: dict[str, Any]


class Store(Protocol):
    """The state of runs, for one process or shared by several."""

    pushing: bool
    """True while :meth:`listen` is told of every write (a reader may then
    wait for it instead of polling)."""

    async def listen(self, written: Callable[[str | None], None]) -> None:
        """Until cancelled, call ``written(run_id)`` when any process has
        written events of a run, and ``written(None)`` when writes may have
        been missed (the listening connection was lost). Returns at once where
        no other process can write (a store of one daemon)."""

    async def open(self) -> None:
        """Connect and create the schema if it is missing (idempotent)."""

    async def close(self) -> None: ...

    # --- runs -------------------------------------------------------------

    async def create_run(self, run: RunRecord) -> tuple[RunRecord, bool]:
        """Record a new run; ``(stored, True)``. The same id with the same
        digest is the same submission: ``(existing, False)``. The same id
        with another digest: :class:`RunConflict`."""

    async def get_run(self, run_id: str) -> RunRecord | None: ...

    async def list_runs(
        self, *, status: Sequence[RunStatus] = (), limit: int = 50, before: str | None = None
    ) -> list[RunRecord]:
        """Newest first (by created, then run_id); ``before`` is the run_id
        of the last run of the previous page."""

    async def update_run(
        self, run_id: str, *, owner: str | None = None, status: RunStatus | None = None,
        ended: float | None = None, summary: Mapping[str, Any] | None = None,
        stop_requested: bool | None = None, options: Mapping[str, Any] | None = None,
    ) -> None:
        """Set the fields given. With ``owner``, only while that owner holds
        the lease (else :class:`LeaseLost`); ``stop_requested`` and
        ``options`` (replaced whole) are set by anyone."""

    # --- leases -----------------------------------------------------------

    async def claim(self, owner: str, *, ttl: float, limit: int) -> list[RunRecord]:
        """Take up to ``limit`` unfinished runs nobody holds (never leased, or
        the lease expired), oldest first, under a lease of ``ttl`` seconds;
        returns them. Two daemons claiming at once never get the same run."""

    async def renew(self, owner: str, run_ids: Sequence[str], *, ttl: float) -> set[str]:
        """Extend ``owner``'s leases; returns the ids it still holds (a run
        missing from the answer was taken over: stop driving it)."""

    async def release(self, owner: str, run_id: str) -> None:
        """Give a run up (shutdown, detach): another daemon may claim it at once."""

    # --- jobs, positions and events ----------------------------------------

    async def write(self, run_id: str, batch: Batch, *, owner: str | None = None) -> list[int]:
        """Record ``batch`` in one transaction; the ids of its events. With
        ``owner``, only while that owner holds the lease (else
        :class:`LeaseLost`, and nothing is written)."""

    async def jobs(self, run_id: str) -> list[JobRecord]: ...

    async def positions(self, run_id: str) -> dict[str, dict[str, str]]:
        """``{job: {stream: token}}``: where each stream's log resumes."""

    async def events(
        self, run_id: str, *, after: int = 0, job: str | None = None,
        types: Sequence[str] = (), limit: int = 1000,
    ) -> list[StoredEvent]:
        """The run's events with ids above ``after``, oldest first; only
        ``job``'s and only these ``types`` when given."""

    async def last_event_id(self, run_id: str) -> int:
        """The highest event id of the run, 0 when it has none."""


# the columns of the ``runs`` table, in the order both stores select them
RUN_COLUMNS = (
    "run_id, manifest, digest, source, status, options, created, updated, ended, "
    "owner, lease_until, stop_requested, summary"
)


def run_from_row(row: Mapping[str, Any]) -> RunRecord:
    """A run from a row of the ``runs`` table (either store: the same columns)."""
    return RunRecord(
        run_id=row["run_id"],
        manifest=row["manifest"],
        digest=row["digest"],
        source=row["source"],
        status=RunStatus(row["status"]),
        options=json.loads(row["options"]),
        created=row["created"],
        updated=row["updated"],
        ended=row["ended"],
        owner=row["owner"],
        lease_until=row["lease_until"],
        stop_requested=bool(row["stop_requested"]),
        summary=json.loads(row["summary"]),
    )


def job_from_row(run_id: str, row: Mapping[str, Any]) -> JobRecord:
    """A job from a row of the ``jobs`` table."""
    result = row["result"]
    return JobRecord(
        run_id=run_id, job=row["job"], kind=row["kind"], name=row["name"],
        status=row["status"], outcome=row["outcome"],
        result=None if result is None else json.loads(result), updated=row["updated"],
    )
