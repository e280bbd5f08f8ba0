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
from datetime import datetime, timezone

from smrun.types import Description


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


def newer(previous: Update | None, update: Update) -> bool:
    """Whether ``update`` is to be applied to a resource whose last applied
    update is ``previous``.

    - Nothing applied yet: yes.
    - Both carry ``modified``: a later one is applied, an earlier one is out of
      order and dropped.
    - At the same ``modified`` (or when either lacks one), it is applied only
      if it says something new: another status, a secondary status that
      differs (an update without one, like a List* summary, says nothing about
      it), or complete facts where the previous ones were not. The same
      instant, status and secondary status is a duplicate.

    Two different states at the same millisecond are applied in arrival order:
    SageMaker's LastModifiedTime moves on every change, so that is taken not to
    happen. Never raises."""
    if previous is None:
        return True
    if previous.modified is not None and update.modified is not None:
        before, after = as_utc(previous.modified), as_utc(update.modified)
        if after != before:
            return after > before
    if update.status != previous.status:
        return True
    if update.secondary is not None and update.secondary != previous.secondary:
        return True
    return update.complete and not previous.complete


def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime (a naive one is taken to be UTC already)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)
