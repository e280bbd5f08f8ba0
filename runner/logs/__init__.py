"""CloudWatch Logs of the engine's jobs: per-group discovery, batched reading, a follower per job.

Two readers sit behind one handle shape (:class:`Follower`):

- :class:`LogHub` (``hub.py``), the engine's: one reader per log group shared
  by every job in it. It lists each job's ``{name}/`` prefix with
  DescribeLogStreams and reads up to 100 streams of the group per
  FilterLogEvents call; a job holds a :class:`JobLogs` from ``hub.follow()``.
- :class:`LogFollower` (``follow.py``), one job's own GetLogEvents per
  stream: the ``describe`` strategy's reader for a few jobs, and the fallback.

Why: at 1,000 jobs of 2 instances, one GetLogEvents per stream and round and
one DescribeLogStreams per job and pass queue behind per-account quotas of
10-25 calls a second, and lines arrive minutes late. Batched, a round over
2,000 busy streams is 20 calls.

What we rely on in CloudWatch Logs
----------------------------------
- FilterLogEvents with ``logStreamNames`` (≤ 100) and ``startTime`` returns
  every event of those streams with a timestamp at or after ``startTime`` that
  the search can see, sorted by timestamp, each with its stream's name and an
  ``eventId`` unique in the group; pages (≤ 10,000 events or 1 MB) are
  followed by ``nextToken`` until a page comes without one. An empty page
  with a token is not the end.
- A line the search can't see yet shows up later. We rely on it showing up no
  more than ``window`` (10 s of timestamps) behind a newer line of its own
  stream that we printed already, or ``stall`` (60 s) behind the newest line
  of the other streams read with it. The drain relaxes both (below).
- DescribeLogStreams with ``logStreamNamePrefix`` lists every stream whose
  name starts with the prefix, ≤ 50 a page, by name. A stream appears when
  its container first writes. We rely on the names only, never on
  ``lastEventTimestamp`` (updated "eventually", up to an hour late) or on
  ``orderBy=LastEventTime`` (which can't be combined with a prefix anyway).
- A search naming a stream that does not exist fails whole with
  ResourceNotFoundException (as AWS answers; moto drops the name instead).

How it reads
------------
Each stream has a position (:mod:`smrun.logs.positions`): the newest
timestamp printed, the ids printed within the windows behind it, and where
its next read starts. A read of a batch starts at the earliest start of its
streams; events already printed (by id) or older than the stream's horizon
are dropped, the rest are published merged by timestamp (a stream's own order
is never changed), the job's sinks are flushed once, then the positions are
saved (``on_token``), so a saved position never runs ahead of the lines.

- Batching (:func:`smrun.logs.plan.plan_batches`): every ``poll_interval``
  the due streams of a group are sorted by start and cut into batches of 100
  names, and again where a start lies more than ``batch_spread`` (15 s)
  after the batch's first: a stream far behind never drags 99 others back.
  Streams never read yet are batched only with each other (they read from
  their head). A stream that gave lines is due every round, a quiet one backs
  off up to ``idle_max`` (:func:`smrun.logs.follow.next_read_delay`).
- Windows: a live read starts ``window`` (10 s) behind the stream's newest
  printed line, so late-visible lines are found and, by id, printed once. A
  quiet stream follows its batch ``stall`` (60 s) behind the batch's newest
  line. Ids are kept for ``max(window, drain_window)`` behind the newest line:
  about that many seconds of each stream's lines in memory (at 5 lines/s,
  150 ids a stream; 300,000 ids for 2,000 streams).
- Discovery (:func:`smrun.logs.plan.rediscovery_delay`): one queue per
  group. A job's prefix is first listed ``discover_interval`` after it is
  followed (at once when it has saved positions: an attach after a restart),
  then, while it has no stream, after ``discover_interval`` doubling up to
  ``discover_max`` (5, 15, 35, 75 s...). Once it has streams only a restart
  or a late instance adds one, so the safety-net passes back off from
  2 x ``discover_max`` (120, 240, 480 s... up to ``rediscover_max``, 16 min):
  a 2-minute job costs none, an hour-long one five. ``JobLogs.poke()`` (a
  status change: started, restarted) brings the next pass within
  ``discover_interval`` and restarts the backoff; the drain lists once more.
  Passes are served drain first (Priority.FINISH), then jobs without streams
  or poked, then the safety net (Priority.DISCOVER), so a short budget delays
  the safety net, never a job's first lines or its end.
- The sweep (a group with ``sweep_from``, 50, prefixes or more; back to
  listings below half of it): instead of a DescribeLogStreams per job and
  pass, one FilterLogEvents search of the whole group every
  ``discover_interval``, from ``window`` behind where the last one started,
  narrowed by ``logStreamNamePrefix`` to what every followed prefix starts
  with (``sweep-`` for a matrix). Every page is followed; each stream name
  not known yet under a followed prefix (cut at each "/") is handed to its
  jobs and read from its head by the batched reads. A drain waits for the
  next sweep (at Priority.FINISH) instead of listing. Prefixes are still
  listed on their own by a job attaching after a restart (its streams may be
  quiet), by a job that ends without a stream, by a source that leaves, by
  the safety net, and by a job that no sweep has given a stream within
  twice ``discover_max`` (its first lines became visible too late for the
  sweeps). Cost: about (lines a second in the group x (``discover_interval``
  + ``window``)) / 10,000 calls a sweep, whatever the number of jobs: at
  1,000 running jobs of 2 instances writing a line each 2.4 s, about 12,000
  events, 2 calls a sweep. The group is the account's: another team's jobs
  writing there are read too, and dropped.
- Priorities: drain reads and the drain's last listing at Priority.FINISH,
  live reads at Priority.LIVE, other listings at Priority.DISCOVER. A batch
  with a draining stream is read at FINISH.
- Drain: after the terminal status (``since``), each of the job's streams
  is read ``drain_window`` (30 s) behind its newest line: at once, then every
  round while its reads find lines, then once more when ``drain_grace`` has
  passed (:func:`smrun.logs.plan.drain_read_due`); when a read that started
  after the grace found nothing new for every stream, its prefixes are listed
  once more (FINISH) and new streams are drained too; the drain returns when
  a listing finds nothing new.

What it costs
-------------
With the sweep, no DescribeLogStreams per job but for the cases above; the
scale model measures 1.3 FilterLogEvents and 1.0 DescribeLogStreams a job at
100 jobs (the first 50 list before the sweep begins). Without it (fewer than
``sweep_from`` jobs in the group), per job of 120 s with 2 instances:
DescribeLogStreams about 1 pass to find its streams (plus one for each pass
made before its containers wrote: 5, 15, 35 s... after it was followed) and 1
in its drain; FilterLogEvents about (120 s / ``poll_interval``) / 50 reads,
since one read serves 50 such jobs, plus a few reads a round shared by
everyone (streams read from their head, drains, quiet streams). The scale
model in ``tests/test_log_hub.py`` (production timings and us-west-2's
budgets, divided by 20) measures 3.4-4.3 calls a job at 100 jobs (1.4 reads,
2-3 listings) and 3.4 at 300; at 1,000 jobs (timings divided by 5) 3.3 (0.95
reads, 2.3 listings), with lines printed 1.2 s (p50) and 5.6 s (p95) after
they were written.

Failure cases
-------------
Streams over one page
    DescribeLogStreams is paginated (50 a page, every page followed; a repeated
    token ends it). A job with more than 100 streams is read in several batches.
A sweep throttled
    Tried again after ``discover_interval`` from the same start; a drain waiting
    for it waits for a sweep that went to its end.
Streams that appear late
    A stream listed later joins at the next round, read from its head, so its
    first lines are printed however long ago they were written. While the job
    runs a late stream is found by the next pass: within ``discover_interval``
    after a poke (a restart changes the job's status), otherwise by the
    safety net (2 x ``discover_max`` after the job's streams were found, then
    backing off); one that appears at the end, by the drain's last listing.
Look-alike prefixes
    Prefixes must end with "/" (refused otherwise), and a listed name is handed
    only to the jobs whose prefix it starts with: ``job-1/`` never gets
    ``job-10/algo-1-...``. Events are routed by their exact stream name.
Lines ingested after the job ended
    Delivered if they are visible within ``drain_grace`` of the terminal
    status: the drain goes on until a read that started after the grace finds
    nothing new, and reads ``drain_window`` behind each stream's newest line,
    so a late line up to 30 s older than the newest one printed is still found.
    A line an instance held back and sends in order later (after a stall) is
    newer than the stream's newest printed line and is always found by the
    drain, even if the live reads (``stall``) skipped it.
Empty pages with a token
    Followed: only a page without ``nextToken`` ends a search. A read follows
    at most ``max_pages_per_read`` pages, publishes them, and goes on with the
    same token after the other searches had their turn.
Throttling
    ``Aws.call`` retries it (the budget slows down); if it escapes anyway, the
    same page is asked again after ``poll_interval``, a listing is repeated
    after ``discover_interval``, and a drain's last listing waits for a
    listing that went to its end. Never a lost line, never a failed job.
A stream deleted
    AWS refuses the whole search: the batch is searched in halves until the
    missing stream is alone; it is marked gone (a drain does not wait for it)
    and read again only if a listing shows it again. The other streams lose
    nothing (their positions did not move).
A restart
    Positions are saved as ``t:<ms>[:<ids>]``: the newest printed timestamp
    and the ids printed at it. A restarted job lists at once and resumes each
    stream at that timestamp; lines of it whose ids were saved are not
    printed again. Lines older than it are taken as printed: one that only
    became visible after the restart (late, within the window) is lost, and
    re-reading the window instead would print up to a window of lines twice,
    since the ids in it are not saved (they would make each journal write
    large). More than 20 lines in the newest millisecond are printed again.
    A saved GetLogEvents token (the per-job follower's) can't be turned into a
    timestamp: that stream is read from its head and every line printed before
    the restart is printed again. (The per-job follower, given a ``t:``
    position, starts GetLogEvents at that timestamp, printing the lines of
    that millisecond again.)
Access denied, or any other error
    Raised from the ``run`` of each job whose streams were in the call; the
    other jobs and the hub go on.
An endpoint
    Its streams never end, so its drain never finishes by itself: the caller
    bounds it (a cancel scope), and leaving ``run`` stops reading them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import anyio

from smrun.logs.follow import (
    DESCRIBE_PAGE,
    FollowerStats,
    LogFollower,
    LogsCall,
    drain_finished,
    instance_label,
    keep_reading,
    merge_round,
    next_discovery_delay,
    next_read_delay,
    stream_at_end,
)
from smrun.logs.hub import HubStats, JobLogs, LogHub
from smrun.logs.plan import (
    Batch,
    Due,
    discovery_rank,
    drain_read_due,
    plan_batches,
    rediscovery_delay,
)
from smrun.logs.positions import Position, format_position, parse_position, read_start
from smrun.types import LogSource


class Follower(Protocol):
    """What a job holds to have its logs followed, whichever reader serves it."""

    @property
    def stats(self) -> FollowerStats: ...

    def set_sources(self, sources: Sequence[LogSource]) -> None: ...

    def poke(self) -> None: ...

    async def run(self, terminal: anyio.Event) -> None: ...


__all__ = [
    "DESCRIBE_PAGE",
    "Batch",
    "Due",
    "Follower",
    "FollowerStats",
    "HubStats",
    "JobLogs",
    "LogFollower",
    "LogHub",
    "LogsCall",
    "Position",
    "discovery_rank",
    "drain_finished",
    "drain_read_due",
    "format_position",
    "instance_label",
    "keep_reading",
    "merge_round",
    "next_discovery_delay",
    "next_read_delay",
    "parse_position",
    "plan_batches",
    "read_start",
    "rediscovery_delay",
    "stream_at_end",
]
