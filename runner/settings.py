"""Tunable timings of a run, in one place. Tests shrink them; production keeps the defaults."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class OnCancel(str, enum.Enum):
    """What cancelling a run (or the task that runs it) does to its running jobs."""

    STOP = "stop"
    """Stop every non-terminal job this run created."""
    DETACH = "detach"
    """Leave them running; a later run with the same id reattaches."""
    DELETE_ENDPOINTS = "delete-endpoints"
    """Stop jobs, and delete endpoints being created."""


@dataclass(frozen=True)
class Settings:
    """The timings of a run, in seconds unless said otherwise.

    The defaults are sized for AWS (its API quotas and how fast SageMaker
    moves); :meth:`fast` shrinks them for the emulator and tests. Every field
    is a keyword: ``Settings(poll_max=30)``, ``Settings.fast(drain_grace=2)``.
    """

    poll_min: float = 5.0
    """Delay of the first describe after a status change."""
    poll_max: float = 60.0
    """Delay between describes of a job whose status has been quiet for a while."""
    log_poll: float = 2.0
    """Between two rounds of log reads."""
    log_idle_max: float = 10.0
    """An idle log stream is read at most this rarely."""
    log_discover: float = 5.0
    """Between two DescribeLogStreams rounds while a job's streams appear."""
    log_discover_max: float = 60.0
    """What that backs off to while nothing new appears."""
    log_sweep_from: int = 50
    """A log group with this many jobs finds their streams by one search of the
    whole group (FilterLogEvents) instead of a DescribeLogStreams per job."""
    drain_grace: float = 5.0
    """After the terminal status, keep reading a job's logs this long (CloudWatch
    ingests a job's last lines late)."""
    drain_limit: float = 60.0
    """An endpoint's streams never end: stop following them this long after
    InService. A job's drain runs to its last line and only warns past this."""
    stop_grace: float = 120.0
    """After cancellation, wait this long for a stopped job to reach Stopped."""
    create_settle: float = 30.0
    """After a cancelled create call, look this long for the resource it may
    have made."""
    unknown_after: float = 900.0
    """Report a job's outcome as Unknown when no describe succeeds for this long."""
    on_cancel: OnCancel = OnCancel.STOP
    """What cancelling the run does to its running jobs."""
    list_from: int = 3
    """With ``watch="auto"``, a kind's status comes from one List* call for all
    its jobs once it has this many (fewer are described one by one)."""
    list_skew: float = 5.0
    """A List* pass looks back this far behind the newest change it saw (clock
    skew, SageMaker's eventual consistency)."""
    list_reconcile: float = 300.0
    """How often a reconciling List* pass lists everything since the oldest job."""
    events_reconcile: float = 60.0
    """The same, when status comes from EventBridge events (it catches a lost event)."""
    capacity_retry: float = 30.0
    """A create refused with ResourceLimitExceeded is tried again when a job of
    the run ends, or after this backoff when none that could free it runs."""
    capacity_retry_max: float = 300.0
    """The backoff doubles up to this."""
    capacity_deadline: float = 3600.0
    """A job waiting for capacity fails when no job ended for this long."""
    tuning_log_tails: int = 10
    """Children of a tuning job whose logs are followed at once."""

    @classmethod
    def fast(cls, **overrides: object) -> Settings:
        """Timings for the local emulator and tests: everything sub-second."""
        base = cls(
            poll_min=0.1,
            poll_max=0.5,
            log_poll=0.1,
            log_idle_max=0.5,
            log_discover=0.2,
            log_discover_max=2.0,
            drain_grace=1.0,
            drain_limit=5.0,
            stop_grace=10.0,
            unknown_after=30.0,
            create_settle=5.0,
            list_skew=1.0,
            list_reconcile=3.0,
            events_reconcile=1.0,
            capacity_retry=0.2,
            capacity_retry_max=1.0,
        )
        return cls(**{**base.__dict__, **overrides})
