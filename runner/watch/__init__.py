"""Status sources behind one seam.

A :class:`Job` does not poll SageMaker itself: it takes :class:`Update`\\ s from
the engine's status source for its kind and keeps its own deadlines. The
sources (one per kind and strategy, shared by every job of that kind) are:

- ``describe``: each job is described on its own, with a delay that grows
  while nothing changes and drops back on every change. For a few jobs.
- ``list``: one List* call per kind and interval reports up to 100 jobs;
  only what a summary lacks (the outputs, at the end) is described.
- ``events``: SageMaker's EventBridge state-change events, read from an SQS
  queue, with a slow reconciling ``list`` poll as a safety net.

The decisions are plain functions over plain data; the sources are the I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from runner.types import Description


@dataclass(frozen=True)
class Update:
    """One fact about one resource's status, from whichever source saw it."""

    kind: str  # the Kind's name ("training", ...)
    name: str  # the SageMaker resource name
    status: str
    secondary: str | None = None
    # the resource's own LastModifiedTime: orders updates that arrive out of order
    modified: datetime | None = None
    # what the source saw: a List* summary, an event's detail, a Describe* response
    facts: Description = field(default_factory=dict)
    # facts is a whole Describe* response: outputs can be read from it
    complete: bool = False
    source: str = ""  # "describe", "list" or "events"


def next_poll_delay(quiet_for: float, poll_min: float, poll_max: float) -> float:
    """Seconds until the next describe, given how long the status has not changed."""
    if quiet_for <= 0:
        return poll_min
    return max(poll_min, min(poll_max, quiet_for / 4.0))
