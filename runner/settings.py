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
    poll_min: float = 5.0  # first describe delay after a change
    poll_max: float = 60.0  # describe delay of a job that has been quiet for a while
    log_poll: float = 2.0  # between log read rounds
    log_idle_max: float = 10.0  # an idle stream is read at most this rarely
    log_discover: float = 5.0  # between DescribeLogStreams rounds while streams appear
    log_discover_max: float = 60.0  # backed off to this while nothing new appears
    # a log group with this many jobs finds their streams by one search of the
    # whole group (FilterLogEvents) instead of a DescribeLogStreams per job
    log_sweep_from: int = 50
    drain_grace: float = 5.0  # keep draining logs this long after the terminal status
    # an endpoint's streams never end: stop following them this long after InService;
    # a job's drain runs to its last line and only warns past this
    drain_limit: float = 60.0
    stop_grace: float = 120.0  # after cancellation, wait this long for Stopped
    # after a cancelled create call, look this long for the resource it may have made
    create_settle: float = 30.0
    unknown_after: float = 900.0  # report Unknown when no describe succeeds for this long
    on_cancel: OnCancel = OnCancel.STOP
    # status watching (runner.watch): with `auto`, a kind is listed once it has this
    # many jobs; a List* pass looks back this far behind the newest change it saw
    # (clock skew, SageMaker's eventual consistency); a reconciling pass lists
    # everything since the oldest job this often (and with events, this often)
    list_from: int = 3
    list_skew: float = 5.0
    list_reconcile: float = 300.0
    events_reconcile: float = 60.0
    # a create refused with ResourceLimitExceeded waits for capacity: tried again
    # when a job of the run ends, or after this backoff (doubling to the max)
    # when none that could free it runs; fails when no job ended for the deadline
    capacity_retry: float = 30.0
    capacity_retry_max: float = 300.0
    capacity_deadline: float = 3600.0
    tuning_log_tails: int = 10  # children of a tuning job whose logs are followed at once

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
