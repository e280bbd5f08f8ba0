"""The hub's decisions: which streams share a read, and when a prefix is listed again.

Plain functions over plain data, tested without a network (see
:mod:`smrun.logs.hub` for the I/O around them).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

# FilterLogEvents takes at most this many logStreamNames
MAX_BATCH = 100


@dataclass(frozen=True)
class Due(Generic[K]):
    """A stream that is due for a read, as the planner sees it."""

    key: K
    name: str  # the stream's name (two jobs may follow the same stream)
    start: int | None  # where its read starts (ms); None: from its head
    finish: bool  # it is being drained after its job's terminal status


@dataclass(frozen=True)
class Batch(Generic[K]):
    """One FilterLogEvents search: up to ``MAX_BATCH`` stream names from one start."""

    keys: tuple[K, ...]
    names: tuple[str, ...]  # sorted, each once
    start: int | None
    finish: bool  # read at Priority.FINISH: a drain waits for it


def plan_batches(due: Sequence[Due[K]], *, size: int = MAX_BATCH, spread: int) -> list[Batch[K]]:
    """Cut the due streams into searches. A search starts at the earliest
    start of its streams and returns every event of each of them from there,
    so streams are sorted by start and a batch is cut when it holds ``size``
    names or when a stream starts more than ``spread`` ms after the batch's
    first: one stream far behind never drags 99 others back with it. Streams
    read from their head (never read yet) are batched only with each other.
    Batches with a draining stream come first (they are what ends jobs)."""
    size = max(1, min(size, MAX_BATCH))
    ordered = sorted(due, key=lambda d: (d.start is not None, d.start or 0))
    batches: list[Batch[K]] = []
    keys: list[K] = []
    names: set[str] = set()
    first: Due[K] | None = None
    finish = False

    def close() -> None:
        if first is not None:
            batches.append(Batch(tuple(keys), tuple(sorted(names)), first.start, finish))

    for item in ordered:
        fits = first is not None and (
            (item.name in names or len(names) < size)
            and (first.start is None) == (item.start is None)
            and (item.start is None or first.start is None or item.start - first.start <= spread)
        )
        if not fits:
            close()
            keys, names, first, finish = [], set(), item, False
        keys.append(item.key)
        names.add(item.name)
        finish = finish or item.finish
    close()
    return sorted(batches, key=lambda b: not b.finish)


def rediscovery_delay(
    *, known: int, misses: int, quiet: int, base: float, cap: float, settled_max: float
) -> float:
    """Seconds until a job's prefix is listed again (DescribeLogStreams: one
    call per job and pass, the scarcest budget).

    While the job has no stream its containers have not written yet: the
    first pass came ``base`` after it was followed, and each pass in a row
    that found nothing (``misses``) doubles the wait, up to ``cap`` (passes at
    5, 15, 35, 75, 135 s... with the defaults). Once it has streams, a new
    one appears only when an instance restarts (spot, retry: its status
    changes, and a poke lists it within ``base``) or starts late; the drain
    lists once more at the end. So the re-checks, the safety net, back off
    from ``2 * cap``, doubling with each pass in a row that found nothing new
    (``quiet``), up to ``settled_max``: a 2-minute job costs none, an hour-long
    one five."""
    if known == 0:
        return float(min(cap, base * 2 ** min(misses, 30)))
    return float(min(max(settled_max, cap), cap * 2 ** min(quiet + 1, 30)))


def drain_read_due(
    *, last_read: float | None, found_lines: bool, since: float, grace: float, now: float
) -> bool:
    """Whether a draining stream is read this round: at once after the
    terminal status (``since``); then every round while its reads find lines;
    once quiet, once more when ``grace`` has passed (what arrived meanwhile
    comes then, in one read instead of one a round); then no more."""
    if last_read is None or last_read < since:
        return True
    if found_lines:
        return True
    return last_read < since + grace <= now


def discovery_rank(*, finish: bool, known: int, poked: bool) -> int:
    """Who is listed first when DescribeLogStreams' budget is short (lower
    first): a drain's last look, then jobs still waiting for their first
    stream (or poked, or leaving), then the safety-net passes of jobs whose
    streams are known, which may wait."""
    if finish:
        return 0
    if known == 0 or poked:
        return 1
    return 2
