"""The engine's shared CloudWatch Logs reader (runner.logs.hub).

Pure decisions first (batches, positions and windows, the discovery
schedule); then every failure case of the package docstring against the
emulator; then the main ones against moto's server; then a scale model of the
1,000-job fan-out with production timings divided by 20.

Every test that follows lines checks them exactly once: per stream, the
messages printed equal the messages written, in order.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import botocore
import pytest
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from smrun.budget import Budgets, Priority, default_rates
from smrun.emulator import Emulator, FaultConfig
from smrun.events import LogLine
from smrun.logs import (
    Due,
    Follower,
    FollowerStats,
    JobLogs,
    LogFollower,
    LogHub,
    Position,
    discovery_rank,
    drain_read_due,
    format_position,
    parse_position,
    plan_batches,
    read_start,
    rediscovery_delay,
)
from smrun.logs.positions import next_floor
from smrun.types import LogSource

GROUP = "/aws/sagemaker/TrainingJobs"
FAST: dict[str, Any] = {
    "poll_interval": 0.02,
    "idle_max": 0.1,
    "discover_interval": 0.05,
    "discover_max": 0.5,
    "drain_grace": 0.2,
}


# ---------------------------------------------------------------- decisions: batches


def due(name: str, start: int | None, finish: bool = False, key: str | None = None) -> Due[str]:
    return Due(key or name, name, start, finish)


def test_a_batch_holds_at_most_100_names_from_its_earliest_start() -> None:
    streams = [due(f"job-{n}/algo-1", 1_000 + n) for n in range(250)]
    batches = plan_batches(streams, spread=10_000)
    assert [len(b.names) for b in batches] == [100, 100, 50]
    assert [b.start for b in batches] == [1_000, 1_100, 1_200]
    assert sorted(k for b in batches for k in b.keys) == sorted(d.key for d in streams)


def test_a_stream_far_behind_gets_its_own_batch_instead_of_dragging_the_others_back() -> None:
    busy = [due(f"job-{n}/algo-1", 100_000 + n) for n in range(5)]
    behind = due("job-9/algo-1", 10_000)
    batches = plan_batches([*busy, behind], spread=15_000)
    assert [(b.start, len(b.keys)) for b in batches] == [(10_000, 1), (100_000, 5)]


def test_streams_never_read_are_batched_only_with_each_other() -> None:
    batches = plan_batches(
        [due("a/1", None), due("b/1", 5_000), due("c/1", None), due("d/1", 5_001)], spread=15_000
    )
    assert [(b.start, b.names) for b in batches] == [
        (None, ("a/1", "c/1")), (5_000, ("b/1", "d/1")),
    ]


def test_batches_with_a_draining_stream_come_first() -> None:
    batches = plan_batches(
        [due("a/1", 1_000), due("b/1", 90_000, finish=True), due("c/1", 90_001)], spread=15_000
    )
    assert [(b.names, b.finish) for b in batches] == [(("b/1", "c/1"), True), (("a/1",), False)]


def test_two_jobs_following_one_stream_share_its_name_in_a_batch() -> None:
    batches = plan_batches(
        [due("s/1", 1_000, key="first"), due("s/1", 1_000, key="second")], size=1, spread=0
    )
    assert len(batches) == 1
    assert batches[0].names == ("s/1",)
    assert batches[0].keys == ("first", "second")


# ---------------------------------------------------------------- decisions: positions


def test_a_position_prints_each_event_once_and_nothing_below_its_horizon() -> None:
    position = Position()
    assert position.offer("e1", 1_000)
    assert not position.offer("e1", 1_000)  # the window read it again
    assert position.offer("e2", 900)  # visible late, older: still printed once
    assert position.high == 1_000
    position.horizon = 950
    assert not position.offer("e3", 940)


def test_the_floor_trails_the_stream_by_the_window_and_a_quiet_one_trails_its_batch() -> None:
    # a stream that gave lines: its own newest line minus the window
    assert next_floor(None, high=50_000, newest=50_000, window=10_000, stall=60_000) == 40_000
    # a quiet stream (newest printed at 1_000) in a batch whose newest line is at
    # 200_000: it follows the batch at the stall, not its own old line
    assert next_floor(-9_000, high=1_000, newest=200_000, window=10_000, stall=60_000) == 140_000
    # never back
    assert next_floor(140_000, high=1_000, newest=None, window=10_000, stall=60_000) == 140_000
    # nothing printed and nothing seen: from the head
    assert next_floor(None, high=None, newest=None, window=10_000, stall=60_000) is None


def test_ids_are_kept_for_the_widest_window_only() -> None:
    position = Position()
    for stamp in range(0, 100_000, 1_000):
        position.offer(f"e{stamp}", stamp)
    position.settle(newest=99_000, window=10_000, stall=60_000, retain=30_000)
    assert position.horizon == 69_000
    assert min(position.seen.values()) == 69_000
    assert position.floor == 89_000


def test_a_drain_reads_further_back_than_a_live_read() -> None:
    position = Position(high=100_000, floor=90_000, horizon=70_000)
    assert read_start(position, draining=False, drain_window=30_000) == 90_000
    assert read_start(position, draining=True, drain_window=30_000) == 70_000
    # a quiet stream's floor may run ahead of its newest line: the drain goes back
    quiet = Position(high=100_000, floor=150_000, horizon=70_000)
    assert read_start(quiet, draining=True, drain_window=30_000) == 70_000
    # nothing printed yet: the drain reads the whole stream, a live read its floor
    fresh = Position(floor=150_000)
    assert read_start(fresh, draining=True, drain_window=30_000) is None
    assert read_start(fresh, draining=False, drain_window=30_000) == 150_000


def test_a_saved_position_resumes_at_its_time_with_the_ids_printed_at_it() -> None:
    position = Position()
    position.offer("e1", 5_000)
    position.offer("e2", 7_000)
    position.offer("e3", 7_000)
    saved = format_position(position)
    assert saved == "t:7000:e2,e3"
    resumed = parse_position(saved)
    assert (resumed.high, resumed.floor, resumed.horizon) == (7_000, 7_000, 7_000)
    assert not resumed.offer("e2", 7_000)  # printed before the restart
    assert not resumed.offer("e1", 5_000)  # older than the saved time: taken as printed
    assert resumed.offer("e4", 7_000)  # same millisecond, not printed before
    assert format_position(Position()) is None


def test_a_getlogevents_token_can_only_be_read_again_from_the_head() -> None:
    position = parse_position("f/00000000000000000007/s")
    assert position.legacy
    assert read_start(position, draining=False, drain_window=30_000) is None


def test_too_many_lines_in_one_millisecond_are_saved_without_ids() -> None:
    position = Position()
    for n in range(25):
        position.offer(f"e{n}", 1_000)
    assert format_position(position) == "t:1000"


def test_a_drain_reads_at_once_then_while_lines_come_then_once_after_the_grace() -> None:
    def read(last_read: float | None, found_lines: bool, now: float) -> bool:
        return drain_read_due(
            last_read=last_read, found_lines=found_lines, since=100.0, grace=5.0, now=now
        )

    assert read(None, False, now=100.0)  # never read
    assert read(99.0, False, now=100.5)  # last read before the terminal status
    assert read(101.0, True, now=103.0)  # its lines are still coming: every round
    assert not read(101.0, False, now=103.0)  # quiet, inside the grace: wait
    assert read(101.0, False, now=105.0)  # once after the grace
    assert not read(105.5, False, now=108.0)  # that read found nothing: done


# ---------------------------------------------------------------- decisions: discovery


def test_a_prefix_without_streams_is_listed_again_backing_off_up_to_the_cap() -> None:
    delays = [
        rediscovery_delay(known=0, misses=m, quiet=0, base=5.0, cap=60.0, settled_max=960.0)
        for m in range(1, 7)
    ]
    assert delays == [10.0, 20.0, 40.0, 60.0, 60.0, 60.0]


def test_a_job_with_streams_is_rechecked_rarely_and_ever_more_rarely() -> None:
    delays = [
        rediscovery_delay(known=2, misses=0, quiet=q, base=5.0, cap=60.0, settled_max=960.0)
        for q in range(6)
    ]
    # a two-minute job is not listed again before its drain
    assert delays == [120.0, 240.0, 480.0, 960.0, 960.0, 960.0]


def test_drains_are_listed_first_then_jobs_without_streams_then_the_safety_net() -> None:
    ranks = {
        "drain": discovery_rank(finish=True, known=2, poked=False),
        "new": discovery_rank(finish=False, known=0, poked=False),
        "poked": discovery_rank(finish=False, known=2, poked=True),
        "safety net": discovery_rank(finish=False, known=2, poked=False),
    }
    assert ranks["drain"] < ranks["new"] == ranks["poked"] < ranks["safety net"]


# ---------------------------------------------------------------- the emulator


class Calls:
    """The hub's ``call``: a client that retries nothing (so throttling reaches
    the hub), recording each operation with its priority; ``before`` may raise."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.log: list[tuple[str, Priority, dict[str, Any]]] = []
        self.before: Callable[[str, dict[str, Any]], None] | None = None
        self.after: Callable[[str, dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None

    async def __call__(
        self, service: str, operation: str, /, *, priority: Priority = Priority.LIVE, **params: Any
    ) -> Any:
        assert service == "logs"
        self.log.append((operation, priority, params))
        if self.before is not None:
            self.before(operation, params)
        response = await getattr(self.client, botocore.xform_name(operation))(**params)
        if self.after is not None:
            response = self.after(operation, params, response)
        return response

    def count(self, operation: str, priority: Priority | None = None) -> int:
        return sum(
            1 for op, p, _ in self.log if op == operation and (priority is None or p == priority)
        )

    def searches_of(self, stream: str) -> int:
        return sum(
            1 for op, _, params in self.log
            if op == "FilterLogEvents" and stream in params["logStreamNames"]
        )


class Lines:
    """A job's sink: what the hub published to it."""

    def __init__(self) -> None:
        self.lines: list[LogLine] = []
        self.on_line: Callable[[LogLine], None] | None = None

    def __call__(self, line: LogLine) -> None:
        self.lines.append(line)
        if self.on_line is not None:
            self.on_line(line)

    def of(self, stream: str) -> list[str]:
        return [x.message for x in self.lines if x.stream == stream]

    def messages(self) -> list[str]:
        return [x.message for x in self.lines]

    def streams(self) -> set[str]:
        return {x.stream for x in self.lines}


def now_ms() -> int:
    return int(time.time() * 1000)


def numbered(stream: str, count: int, first: int = 0) -> list[str]:
    return [f"{stream} {i}" for i in range(first, first + count)]


def write(emu: Emulator, stream: str, messages: list[str], start: int, **kwargs: Any) -> None:
    emu.logs.put(GROUP, stream, [(start + i, m) for i, m in enumerate(messages)], **kwargs)


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    # polling, not an Event: the conditions are about what another task published
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.005)


async def quiet_while(
    rested: Callable[[], int], busy: Callable[[], int], span: float = 0.3, timeout: float = 10.0
) -> None:
    """Wait until ``rested()`` has not moved for ``span`` seconds in which
    ``busy()`` did (a stream no longer read while its neighbour still is)."""
    with anyio.fail_after(timeout):
        while True:
            before, busy_before = rested(), busy()
            await anyio.sleep(span)
            if rested() == before and busy() > busy_before:
                return


def source(job: str) -> list[LogSource]:
    return [LogSource(GROUP, f"{job}/")]


async def drained(hub: LogHub, job: str, lines: Lines, **kwargs: Any) -> JobLogs:
    """Follow ``job`` whose status is already terminal: drain, return the handle."""
    logs = hub.follow(job, source(job), lines, **kwargs)
    done = anyio.Event()
    done.set()
    with anyio.fail_after(20):
        await logs.run(done)
    return logs


@pytest.fixture
async def calls(emulator: Emulator, aws_client: Any) -> Calls:
    return Calls(await aws_client("logs", emulator))


async def test_many_jobs_share_searches_and_every_line_arrives_once_in_order(
    emulator: Emulator, calls: Calls
) -> None:
    jobs = [f"train-{n}-{n * 7919 % 1000:03x}" for n in range(12)]
    streams = {job: [f"{job}/algo-1-1700000000", f"{job}/algo-2-1700000000"] for job in jobs}
    late = {job: f"{job}/algo-1-1700000999" for job in jobs[:3]}  # a spot restart
    sinks = {job: Lines() for job in jobs}
    terminals = {job: anyio.Event() for job in jobs}
    base = now_ms() - 60_000
    async with LogHub(call=calls, **FAST) as hub:
        handles = {job: hub.follow(job, source(job), sinks[job]) for job in jobs}

        async def writer(job: str) -> None:
            for first in range(0, 60, 10):
                for stream in streams[job]:
                    write(emulator, stream, numbered(stream, 10, first), base + first)
                if first == 30 and job in late:
                    write(emulator, late[job], numbered(late[job], 5), base + 1_000)
                await anyio.sleep(0.03)
            await until(lambda: len(sinks[job].lines) == 120 + 5 * (job in late))
            terminals[job].set()

        async with anyio.create_task_group() as tg:
            for job in jobs:
                tg.start_soon(handles[job].run, terminals[job])
                tg.start_soon(writer, job)
    for job in jobs:
        for stream in streams[job]:
            assert sinks[job].of(stream) == numbered(stream, 60), stream
        if job in late:
            assert sinks[job].of(late[job]) == numbered(late[job], 5)
        assert sinks[job].streams() <= {*streams[job], late.get(job)}
    # one search serves several jobs: far fewer calls than streams times rounds
    names = [len(p["logStreamNames"]) for op, _, p in calls.log if op == "FilterLogEvents"]
    assert max(names) > 2
    assert hub.stats.reads < sum(len(s) for s in streams.values()) * 10


async def test_the_lines_of_one_read_are_merged_by_timestamp_across_streams(
    emulator: Emulator, calls: Calls
) -> None:
    a, b = "job-1/algo-1-1700000000", "job-1/algo-2-1700000000"
    base = now_ms()
    emulator.logs.put(GROUP, a, [(base, "a0"), (base + 2, "a2"), (base + 4, "a4")])
    emulator.logs.put(GROUP, b, [(base + 1, "b1"), (base + 3, "b3")])
    lines = Lines()
    async with LogHub(call=calls, **FAST) as hub:
        await drained(hub, "job-1", lines)
    assert lines.messages() == ["a0", "b1", "a2", "b3", "a4"]
    assert [x.instance for x in lines.lines] == ["algo-1", "algo-2"] * 2 + ["algo-1"]


async def test_discovery_follows_every_page_and_a_job_of_120_streams_is_read_in_batches(
    emulator: Emulator, calls: Calls
) -> None:
    names = [f"job-1/i-{n:04d}-1700000000" for n in range(120)]
    base = now_ms()
    for n, stream in enumerate(names):
        write(emulator, stream, [f"line {n}"], base + n)
    lines = Lines()
    async with LogHub(call=calls, **FAST) as hub:
        logs = await drained(hub, "job-1", lines)
    assert sorted(lines.messages()) == sorted(f"line {n}" for n in range(120))
    assert logs.stats.streams == 120
    pages = [p for op, _, p in calls.log if op == "DescribeLogStreams"]
    assert all(p["limit"] <= 50 for p in pages)
    assert any("nextToken" in p for p in pages)  # 120 streams: three pages a pass
    batches = [p["logStreamNames"] for op, _, p in calls.log if op == "FilterLogEvents"]
    assert max(len(b) for b in batches) == 100
    assert {n for b in batches for n in b} == set(names)


async def test_a_stream_that_appears_while_the_job_runs_is_found_by_the_next_pass(
    emulator: Emulator, calls: Calls
) -> None:
    first, late = "job-1/algo-1-1700000000", "job-1/algo-1-1700000999"
    write(emulator, first, ["first"], now_ms())
    lines = Lines()
    terminal = anyio.Event()
    async with LogHub(call=calls, **FAST) as hub:
        logs = hub.follow("job-1", source("job-1"), lines)
        async with anyio.create_task_group() as tg:
            tg.start_soon(logs.run, terminal)
            await until(lambda: lines.messages() == ["first"])
            write(emulator, late, ["after restart"], now_ms())
            # printed before the terminal status, so not thanks to the drain
            await until(lambda: "after restart" in lines.messages())
            terminal.set()
    assert lines.messages() == ["first", "after restart"]


async def test_a_poke_lists_a_job_soon_instead_of_at_the_backed_off_pass(
    emulator: Emulator, calls: Calls
) -> None:
    first, late = "job-1/algo-1-1700000000", "job-1/algo-1-1700000999"
    write(emulator, first, ["first"], now_ms())
    lines = Lines()
    terminal = anyio.Event()
    # with streams known, the next pass would come after discover_max (an hour)
    async with LogHub(call=calls, **{**FAST, "discover_max": 3600.0}) as hub:
        logs = hub.follow("job-1", source("job-1"), lines)
        async with anyio.create_task_group() as tg:
            tg.start_soon(logs.run, terminal)
            await until(lambda: lines.messages() == ["first"])
            passes = calls.count("DescribeLogStreams")
            write(emulator, late, ["after restart"], now_ms())
            await anyio.sleep(0.3)  # many discover_intervals: nothing lists it unasked
            assert calls.count("DescribeLogStreams") == passes
            logs.poke()
            await until(lambda: "after restart" in lines.messages())
            terminal.set()
    assert lines.messages() == ["first", "after restart"]


async def test_a_stream_that_appears_after_the_terminal_status_is_found_by_the_drain(
    emulator: Emulator, calls: Calls
) -> None:
    first, last = "job-1/algo-1-1700000000", "job-1/algo-2-1700000000"
    write(emulator, first, ["early"], now_ms())
    lines = Lines()
    terminal = anyio.Event()
    async with LogHub(call=calls, **{**FAST, "discover_max": 3600.0}) as hub:
        logs = hub.follow("job-1", source("job-1"), lines)
        async with anyio.create_task_group() as tg:
            tg.start_soon(logs.run, terminal)
            await until(lambda: lines.messages() == ["early"])
            terminal.set()
            write(emulator, last, ["newest"], now_ms())
    assert lines.messages() == ["early", "newest"]
    # the drain's last listing went first in the queue
    assert calls.count("DescribeLogStreams", Priority.FINISH) >= 1


async def test_job_1_never_reads_job_10(emulator: Emulator, calls: Calls) -> None:
    base = now_ms()
    for job in ("job-1", "job-10", "job-1-x"):
        write(emulator, f"{job}/algo-1-1700000000", [f"from {job}"], base)
    sinks = {job: Lines() for job in ("job-1", "job-10")}
    async with LogHub(call=calls, **FAST) as hub:
        async with anyio.create_task_group() as tg:
            for job, lines in sinks.items():
                tg.start_soon(drained, hub, job, lines)
    assert sinks["job-1"].messages() == ["from job-1"]
    assert sinks["job-10"].messages() == ["from job-10"]
    prefixes = {p["logStreamNamePrefix"] for op, _, p in calls.log if op == "DescribeLogStreams"}
    assert prefixes == {"job-1/", "job-10/"}


async def test_a_line_visible_late_within_the_window_is_printed_once(
    emulator: Emulator, calls: Calls
) -> None:
    stream = "job-1/algo-1-1700000000"
    base = now_ms()
    write(emulator, stream, ["t0", "t1"], base)
    lines = Lines()
    terminal = anyio.Event()
    async with LogHub(call=calls, **FAST) as hub:
        logs = hub.follow("job-1", source("job-1"), lines)
        async with anyio.create_task_group() as tg:
            tg.start_soon(logs.run, terminal)
            write(emulator, stream, ["t+5s"], base + 5_000)
            await until(lambda: len(lines.lines) == 3)
            # shows up after the line at +5 s, stamped 3 s before it: inside the window
            write(emulator, stream, ["t+2s, late"], base + 2_000)
            await until(lambda: len(lines.lines) == 4)
            await anyio.sleep(0.2)  # many rounds, each reading the window again
            terminal.set()
    assert lines.messages() == ["t0", "t1", "t+5s", "t+2s, late"]
    assert hub.stats.repeats > 0  # the window was read again, and nothing printed twice


async def test_lines_ingested_after_the_terminal_status_within_the_grace_are_delivered(
    emulator: Emulator, calls: Calls
) -> None:
    stream = "job-1/algo-1-1700000000"
    end = now_ms()
    write(emulator, stream, ["before the end"], end - 1)
    lines = Lines()
    terminal = anyio.Event()
    async with LogHub(call=calls, **{**FAST, "drain_grace": 0.5}) as hub:
        logs = hub.follow("job-1", source("job-1"), lines)
        async with anyio.create_task_group() as tg:
            tg.start_soon(logs.run, terminal)
            await until(lambda: len(lines.lines) == 1)
            terminal.set()
            await anyio.sleep(0.2)  # inside the grace, after a drain read or more
            # stamped at the end, 20 s older than the newest line: beyond the
            # live window (10 s), inside the drain's (30 s)
            write(emulator, stream, ["stamped at the end"], end)
            write(emulator, stream, ["20 s older, late"], end - 20_000)
    # both came in one read, where a stream's events are in timestamp order
    assert lines.messages() == ["before the end", "20 s older, late", "stamped at the end"]


async def test_lines_a_quiet_stream_sends_late_in_order_come_with_the_drain(
    emulator: Emulator, calls: Calls
) -> None:
    busy, quiet = "job-1/algo-1-1700000000", "job-1/algo-2-1700000000"
    base = now_ms() - 600_000
    write(emulator, quiet, ["quiet 0"], base)
    write(emulator, busy, ["busy 0"], base)
    lines = Lines()
    terminal = anyio.Event()
    async with LogHub(call=calls, **{**FAST, "stall": 10.0}) as hub:
        logs = hub.follow("job-1", source("job-1"), lines)
        async with anyio.create_task_group() as tg:
            tg.start_soon(logs.run, terminal)
            await until(lambda: len(lines.lines) == 2)
            # the busy instance goes on 5 minutes; the quiet one's agent holds its lines
            write(emulator, busy, numbered(busy, 10, 1), base + 300_000)
            await until(lambda: len(lines.of(busy)) == 11)
            await anyio.sleep(0.2)  # the quiet stream now reads from 10 s behind busy
            # then sends them, in order, stamped a minute after its last line
            write(emulator, quiet, numbered(quiet, 3, 1), base + 60_000)
            terminal.set()
    assert lines.of(quiet) == ["quiet 0", *numbered(quiet, 3, 1)]
    assert lines.of(busy) == ["busy 0", *numbered(busy, 10, 1)]


async def test_empty_pages_with_a_token_are_followed_to_the_end(
    emulator: Emulator, calls: Calls
) -> None:
    stream = "job-1/algo-1-1700000000"
    write(emulator, stream, numbered(stream, 40), now_ms())
    # every 2nd page that has events comes back empty with a token; pages of 5
    emulator.faults = FaultConfig(filter_empty_page_every=2)
    empties = 0

    def count(operation: str, params: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
        nonlocal empties
        if operation == "FilterLogEvents" and not response["events"] and "nextToken" in response:
            empties += 1
        return response

    calls.after = count
    lines = Lines()
    async with LogHub(call=calls, **{**FAST, "page_events": 5, "drain_grace": 0.0}) as hub:
        await drained(hub, "job-1", lines)
    assert lines.of(stream) == numbered(stream, 40)
    assert empties >= 5


async def test_a_search_longer_than_one_read_goes_on_with_its_token(
    emulator: Emulator, calls: Calls
) -> None:
    stream = "job-1/algo-1-1700000000"
    write(emulator, stream, numbered(stream, 100), now_ms())
    lines = Lines()
    hub_options = {**FAST, "page_events": 10, "max_pages_per_read": 2}
    async with LogHub(call=calls, **hub_options) as hub:
        await drained(hub, "job-1", lines)
    assert lines.of(stream) == numbered(stream, 100)
    searches = [p for op, _, p in calls.log if op == "FilterLogEvents"]
    assert sum("nextToken" in p for p in searches) >= 9


async def test_throttling_is_retried_and_loses_nothing(emulator: Emulator, calls: Calls) -> None:
    streams = [f"job-{n}/algo-1-1700000000" for n in range(4)]
    base = now_ms()
    for stream in streams:
        write(emulator, stream, numbered(stream, 30), base)
    emulator.faults = FaultConfig(
        throttle=0.4, operations=frozenset({"FilterLogEvents", "DescribeLogStreams"}), seed=11
    )
    sinks = [Lines() for _ in streams]
    async with LogHub(call=calls, **FAST) as hub:
        async with anyio.create_task_group() as tg:
            for n, lines in enumerate(sinks):
                tg.start_soon(drained, hub, f"job-{n}", lines)
    for stream, lines in zip(streams, sinks, strict=True):
        assert lines.messages() == numbered(stream, 30)
    assert hub.stats.throttled > 0


async def test_a_deleted_stream_is_searched_apart_and_the_others_lose_nothing(
    emulator: Emulator, calls: Calls, aws_client: Any
) -> None:
    streams = [f"job-1/algo-{n}-1700000000" for n in range(1, 5)]
    base = now_ms()
    for stream in streams:
        write(emulator, stream, numbered(stream, 3), base)
    client = await aws_client("logs", emulator)
    lines = Lines()
    terminal = anyio.Event()
    async with LogHub(call=calls, **FAST) as hub:
        logs = hub.follow("job-1", source("job-1"), lines)
        async with anyio.create_task_group() as tg:
            tg.start_soon(logs.run, terminal)
            await until(lambda: len(lines.lines) == 12)
            await client.delete_log_stream(logGroupName=GROUP, logStreamName=streams[1])
            for stream in (streams[0], streams[2], streams[3]):
                write(emulator, stream, numbered(stream, 3, 3), base + 3)
            await until(lambda: len(lines.lines) == 21)
            terminal.set()
    for stream in (streams[0], streams[2], streams[3]):
        assert lines.of(stream) == numbered(stream, 6)
    assert lines.of(streams[1]) == numbered(streams[1], 3)
    assert hub.stats.splits >= 1


async def test_a_restart_resumes_from_the_saved_positions_and_prints_nothing_twice(
    emulator: Emulator, calls: Calls
) -> None:
    stream = "job-1/algo-1-1700000000"
    base = now_ms()
    write(emulator, stream, numbered(stream, 20), base)
    # three lines in the newest millisecond: the saved ids keep them from repeating
    emulator.logs.put(GROUP, stream, [(base + 20, f"{stream} same ms {i}") for i in range(3)])
    saved: dict[str, str] = {}
    before = Lines()
    async with LogHub(call=calls, **FAST) as hub:
        await drained(hub, "job-1", before, on_token=saved.__setitem__)
    assert len(before.lines) == 23
    assert saved[stream].startswith(f"t:{base + 20}:")
    # the process restarts; the job wrote on meanwhile, some in that same millisecond
    emulator.logs.put(GROUP, stream, [(base + 20, f"{stream} same ms 3")])
    write(emulator, stream, numbered(stream, 5, 100), base + 100)
    after = Lines()
    async with LogHub(call=calls, **FAST) as hub:
        logs = await drained(hub, "job-1", after, tokens=dict(saved), on_token=saved.__setitem__)
    assert after.messages() == [f"{stream} same ms 3", *numbered(stream, 5, 100)]
    assert logs.stats.streams == 1


async def test_a_getlogevents_token_of_the_old_follower_prints_that_stream_again(
    emulator: Emulator, calls: Calls
) -> None:
    stream = "job-1/algo-1-1700000000"
    write(emulator, stream, numbered(stream, 5), now_ms())
    lines = Lines()
    async with LogHub(call=calls, **FAST) as hub:
        # a token the per-job follower saved before the restart: read from the head
        await drained(hub, "job-1", lines, tokens={stream: "f/00000000000000000003/s"})
    assert lines.messages() == numbered(stream, 5)  # the first 3 were printed before too


async def test_the_old_follower_starts_a_stream_the_hub_followed_at_its_saved_time(
    emulator: Emulator, calls: Calls
) -> None:
    stream = "job-1/algo-1-1700000000"
    base = now_ms()
    write(emulator, stream, numbered(stream, 5), base)
    plain = Calls(calls.client)
    lines = Lines()
    follower = LogFollower(
        call=plain, job="job-1", sources=source("job-1"), publish=lines,
        tokens={stream: f"t:{base + 3}"}, poll_interval=0.02, idle_max=0.1,
        discover_interval=0.05, drain_grace=0.1,
    )
    terminal = anyio.Event()
    terminal.set()
    await follower.run(terminal)
    # GetLogEvents has no event ids: the saved millisecond's line is printed again
    assert lines.messages() == numbered(stream, 2, 3)


async def test_a_source_that_leaves_is_drained_then_rests_and_resumes_if_it_comes_back(
    emulator: Emulator, calls: Calls
) -> None:
    a, b = "tune-001-aaaaaaaa/algo-1-1700000000", "tune-002-bbbbbbbb/algo-1-1700000000"
    source_a = LogSource(GROUP, "tune-001-aaaaaaaa/", "001")
    source_b = LogSource(GROUP, "tune-002-bbbbbbbb/", "002")
    base = now_ms()
    write(emulator, a, ["a1", "a2"], base)
    write(emulator, b, ["b1"], base)
    lines = Lines()
    terminal = anyio.Event()
    async with LogHub(call=calls, **FAST) as hub:
        logs = hub.follow("tune", [source_a], lines)
        async with anyio.create_task_group() as tg:
            tg.start_soon(logs.run, terminal)
            await until(lambda: lines.messages() == ["a1", "a2"])
            logs.set_sources([source_b])
            write(emulator, a, ["a3, just before it left"], base + 3)
            await until(lambda: {"b1", "a3, just before it left"} <= set(lines.messages()))
            # once drained past the grace, a rests: no longer searched while b still is
            await quiet_while(lambda: calls.searches_of(a), lambda: calls.searches_of(b))
            # it comes back: the lines it wrote meanwhile, and nothing twice
            write(emulator, a, ["a4"], base + 4)
            logs.set_sources([source_a, source_b])
            await until(lambda: "a4" in lines.messages())
            terminal.set()
    assert lines.of(a) == ["a1", "a2", "a3, just before it left", "a4"]
    assert lines.of(b) == ["b1"]
    assert {x.instance for x in lines.lines} == {"001:algo-1", "002:algo-1"}


async def test_drains_are_read_and_listed_at_finish_live_reads_at_live_listings_at_discover(
    emulator: Emulator, calls: Calls
) -> None:
    stream = "job-1/algo-1-1700000000"
    write(emulator, stream, ["a"], now_ms())
    lines = Lines()
    terminal = anyio.Event()
    async with LogHub(call=calls, **FAST) as hub:
        logs = hub.follow("job-1", source("job-1"), lines)
        async with anyio.create_task_group() as tg:
            tg.start_soon(logs.run, terminal)
            await until(lambda: lines.messages() == ["a"])
            live = len(calls.log)
            terminal.set()
    before, after = calls.log[:live], calls.log[live:]
    assert {(op, p) for op, p, _ in before} == {
        ("DescribeLogStreams", Priority.DISCOVER), ("FilterLogEvents", Priority.LIVE),
    }
    assert ("FilterLogEvents", Priority.FINISH) in {(op, p) for op, p, _ in after}
    assert ("DescribeLogStreams", Priority.FINISH) in {(op, p) for op, p, _ in after}
    # at most one live read, planned in the round the terminal status came in
    assert sum(1 for op, p, _ in after if (op, p) == ("FilterLogEvents", Priority.LIVE)) <= 1


async def test_busy_streams_are_searched_more_often_than_idle_ones(
    emulator: Emulator, calls: Calls
) -> None:
    busy, idle = "job-1/algo-1-1700000000", "job-2/algo-1-1700000000"
    base = now_ms()
    write(emulator, busy, ["b0"], base)
    write(emulator, idle, ["once"], base)
    sinks = {"job-1": Lines(), "job-2": Lines()}
    terminals = {job: anyio.Event() for job in sinks}
    async with LogHub(call=calls, **{**FAST, "idle_max": 0.16}) as hub:

        async def writer() -> None:
            await until(lambda: len(sinks["job-1"].lines) == 1)
            for i in range(1, 40):
                write(emulator, busy, [f"b{i}"], base + i)
                await anyio.sleep(0.02)
            await until(lambda: len(sinks["job-1"].lines) == 40)
            for event in terminals.values():
                event.set()

        async with anyio.create_task_group() as tg:
            for job, lines in sinks.items():
                tg.start_soon(hub.follow(job, source(job), lines).run, terminals[job])
            tg.start_soon(writer)
    assert sinks["job-1"].of(busy) == [f"b{i}" for i in range(40)]
    assert calls.searches_of(idle) < calls.searches_of(busy) / 2


async def test_access_denied_is_raised_from_run_and_the_other_jobs_go_on(
    emulator: Emulator, calls: Calls
) -> None:
    other = "/aws/sagemaker/ProcessingJobs"
    write(emulator, "job-1/algo-1-1700000000", ["a"], now_ms())
    emulator.logs.put(other, "job-2/algo-1-1700000000", [(now_ms(), "b")])

    def deny(operation: str, params: dict[str, Any]) -> None:
        if operation == "FilterLogEvents" and params["logGroupName"] == GROUP:
            raise ClientError({"Error": {"Code": "AccessDeniedException"}}, operation)

    calls.before = deny
    denied, fine = Lines(), Lines()
    async with LogHub(call=calls, **FAST) as hub:
        with pytest.raises(ClientError, match="AccessDenied"):
            await drained(hub, "job-1", denied)
        logs = hub.follow("job-2", [LogSource(other, "job-2/")], fine)
        done = anyio.Event()
        done.set()
        await logs.run(done)
    assert fine.messages() == ["b"]


async def test_an_endpoint_s_drain_is_bounded_by_its_caller_and_then_nothing_is_read(
    emulator: Emulator, calls: Calls
) -> None:
    group = "/aws/sagemaker/Endpoints/ep-1"
    stream = "AllTraffic/i-0abc123"
    lines = Lines()
    async with LogHub(call=calls, **FAST) as hub:
        logs = hub.follow("ep-1", [LogSource(group, "AllTraffic/")], lines)

        async def serve() -> None:
            n = 0
            while True:
                emulator.logs.put(group, stream, [(now_ms(), f"request {n}")])
                n += 1
                await anyio.sleep(0.01)

        async with anyio.create_task_group() as tg:
            tg.start_soon(serve)
            done = anyio.Event()
            done.set()
            with anyio.move_on_after(0.6):
                await logs.run(done)  # never ends by itself: the streams never end
            searched = calls.searches_of(stream)
            await anyio.sleep(0.2)
            assert calls.searches_of(stream) == searched
            tg.cancel_scope.cancel()
    assert len(lines.lines) > 10
    assert len(lines.messages()) == len(set(lines.messages()))
    assert hub.stats.streams == 0


async def test_a_job_without_sources_is_done_at_once_and_a_prefix_needs_its_slash(
    emulator: Emulator, calls: Calls
) -> None:
    async with LogHub(call=calls, **FAST) as hub:
        logs = hub.follow("model", [], Lines())
        done = anyio.Event()
        done.set()
        with anyio.fail_after(1):
            await logs.run(done)
        with pytest.raises(ValueError, match="job-10"):
            hub.follow("job-1", [LogSource(GROUP, "job-1")], Lines())
    assert calls.log == []
    with pytest.raises(RuntimeError, match="async with"):
        hub.follow("job-1", source("job-1"), Lines())


async def test_both_readers_behind_the_follower_shape_print_the_same_lines(
    emulator: Emulator, calls: Calls
) -> None:
    stream = "job-1/algo-1-1700000000"
    write(emulator, stream, numbered(stream, 5), now_ms())

    async def as_a_job_does(follower: Follower) -> FollowerStats:
        follower.set_sources(source("job-1"))
        follower.poke()
        done = anyio.Event()
        done.set()
        with anyio.fail_after(10):
            await follower.run(done)
        return follower.stats

    own, shared = Lines(), Lines()
    own_stats = await as_a_job_does(LogFollower(
        call=Calls(calls.client), job="job-1", sources=[], publish=own,
        poll_interval=0.02, idle_max=0.1, discover_interval=0.05, drain_grace=0.2,
    ))
    async with LogHub(call=calls, **FAST) as hub:
        shared_stats = await as_a_job_does(hub.follow("job-1", [], shared))
    assert own.messages() == shared.messages() == numbered(stream, 5)
    assert own_stats.events == shared_stats.events == 5
    assert own_stats.streams == shared_stats.streams == 1


# ---------------------------------------------------------------- moto's server


@pytest.fixture
async def moto(moto_url: str) -> AsyncIterator[Any]:
    async with get_session().create_client(
        "logs",
        region_name="us-east-1",
        endpoint_url=moto_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ) as client:
        yield client


def moto_group(tag: str) -> str:
    # one moto server serves the whole module: each test gets its own group
    return f"/aws/sagemaker/TrainingJobs/{tag}-{time.monotonic_ns()}"


async def moto_put(client: Any, group: str, stream: str, messages: list[str], start: int) -> None:
    try:
        await client.create_log_stream(logGroupName=group, logStreamName=stream)
    except ClientError as error:
        if "AlreadyExists" not in str(error):
            raise
    await client.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": start + i, "message": m} for i, m in enumerate(messages)],
    )


async def moto_drained(hub: LogHub, group: str, job: str, lines: Lines, **kwargs: Any) -> JobLogs:
    logs = hub.follow(job, [LogSource(group, f"{job}/")], lines, **kwargs)
    done = anyio.Event()
    done.set()
    with anyio.fail_after(30):
        await logs.run(done)
    return logs


async def test_moto_many_jobs_and_look_alike_prefixes_get_every_line_once(moto: Any) -> None:
    group = moto_group("many")
    await moto.create_log_group(logGroupName=group)
    jobs = ["job-1", "job-10", "job-2"]
    base = now_ms()
    streams = {job: [f"{job}/algo-{n}-1700000000" for n in (1, 2)] for job in jobs}
    for job in jobs:
        for stream in streams[job]:
            await moto_put(moto, group, stream, numbered(stream, 30), base)
    calls = Calls(moto)
    sinks = {job: Lines() for job in jobs}
    terminals = {job: anyio.Event() for job in jobs}
    # small pages: moto paginates FilterLogEvents by its token
    async with LogHub(call=calls, **{**FAST, "page_events": 7}) as hub:
        async with anyio.create_task_group() as tg:
            for job in jobs:
                logs = hub.follow(job, [LogSource(group, f"{job}/")], sinks[job])
                tg.start_soon(logs.run, terminals[job])
            await until(lambda: all(len(s.lines) == 60 for s in sinks.values()))
            for job in jobs:
                for stream in streams[job]:
                    await moto_put(moto, group, stream, numbered(stream, 10, 30), base + 30)
            await until(lambda: all(len(s.lines) == 80 for s in sinks.values()))
            for event in terminals.values():
                event.set()
    for job in jobs:
        for stream in streams[job]:
            assert sinks[job].of(stream) == numbered(stream, 40)
        assert sinks[job].streams() == set(streams[job])
    assert any(len(p["logStreamNames"]) > 2 for op, _, p in calls.log if op == "FilterLogEvents")
    assert any("nextToken" in p for op, _, p in calls.log if op == "FilterLogEvents")


async def test_moto_discovery_follows_every_page_past_50_streams(moto: Any) -> None:
    group = moto_group("pages")
    await moto.create_log_group(logGroupName=group)
    names = [f"job-1/i-{n:04d}-1700000000" for n in range(55)]
    base = now_ms()
    for n, stream in enumerate(names):
        await moto_put(moto, group, stream, [f"line {n}"], base + n)
    lines = Lines()
    async with LogHub(call=Calls(moto), **FAST) as hub:
        logs = await moto_drained(hub, group, "job-1", lines)
    assert sorted(lines.messages()) == sorted(f"line {n}" for n in range(55))
    assert logs.stats.streams == 55


async def test_moto_a_late_stream_is_found_while_the_job_runs(moto: Any) -> None:
    group = moto_group("late")
    await moto.create_log_group(logGroupName=group)
    await moto_put(moto, group, "job-1/algo-1-1700000000", ["first"], now_ms())
    lines = Lines()
    terminal = anyio.Event()
    async with LogHub(call=Calls(moto), **FAST) as hub:
        logs = hub.follow("job-1", [LogSource(group, "job-1/")], lines)
        async with anyio.create_task_group() as tg:
            tg.start_soon(logs.run, terminal)
            await until(lambda: lines.messages() == ["first"])
            await moto_put(moto, group, "job-1/algo-1-1700000999", ["after restart"], now_ms())
            await until(lambda: "after restart" in lines.messages())
            terminal.set()
    assert lines.messages() == ["first", "after restart"]


async def test_moto_a_restart_resumes_from_saved_positions(moto: Any) -> None:
    group = moto_group("resume")
    stream = "job-1/algo-1-1700000000"
    await moto.create_log_group(logGroupName=group)
    base = now_ms()
    await moto_put(moto, group, stream, numbered(stream, 50), base)
    saved: dict[str, str] = {}
    before, after = Lines(), Lines()
    async with LogHub(call=Calls(moto), **FAST) as hub:
        await moto_drained(hub, group, "job-1", before, on_token=saved.__setitem__)
    assert before.messages() == numbered(stream, 50)
    await moto_put(moto, group, stream, numbered(stream, 20, 50), base + 50)
    async with LogHub(call=Calls(moto), **FAST) as hub:
        await moto_drained(hub, group, "job-1", after, tokens=dict(saved))
    assert after.messages() == numbered(stream, 20, 50)


async def test_moto_a_deleted_stream_goes_quiet_and_the_others_go_on(moto: Any) -> None:
    # moto drops a missing name from logStreamNames instead of refusing the search
    group = moto_group("deleted")
    await moto.create_log_group(logGroupName=group)
    gone, kept = "job-1/algo-1-1700000000", "job-1/algo-2-1700000000"
    base = now_ms()
    for stream in (gone, kept):
        await moto_put(moto, group, stream, numbered(stream, 2), base)
    lines = Lines()
    terminal = anyio.Event()
    async with LogHub(call=Calls(moto), **FAST) as hub:
        logs = hub.follow("job-1", [LogSource(group, "job-1/")], lines)
        async with anyio.create_task_group() as tg:
            tg.start_soon(logs.run, terminal)
            await until(lambda: len(lines.lines) == 4)
            await moto.delete_log_stream(logGroupName=group, logStreamName=gone)
            await moto_put(moto, group, kept, numbered(kept, 2, 2), base + 2)
            await until(lambda: len(lines.lines) == 6)
            terminal.set()
    assert lines.of(kept) == numbered(kept, 4)
    assert lines.of(gone) == numbered(gone, 2)


# ---------------------------------------------------------------- the scale model

SCALE = 20  # production timings divided by this
JOBS = 100
JOB_SECONDS = 120 / SCALE
LINE_EVERY = 5 / SCALE  # a line every 5 s per instance, in production time


@pytest.mark.parametrize("sweep_from", [50, 10**6], ids=["swept", "listed-per-job"])
async def test_scale_model_of_the_fan_out_costs_few_calls_per_job_and_lines_arrive_soon(
    emulator: Emulator, calls: Calls, sweep_from: int
) -> None:
    """N jobs x 2 instances, 120 s each, production timings (Settings()) and
    AWS-sized budgets, all divided by SCALE; jobs start over 60 s (scaled).
    The per-job costs do not depend on N once a search is full (100 streams).
    Past ``sweep_from`` jobs the group is swept (the default, 50) instead of
    listed per job. The latencies are printed, not asserted: on a loaded
    machine they measure the machine (bench/fanout.py measures them at
    production timings)."""
    scaled: dict[str, Any] = {
        "poll_interval": 2.0 / SCALE,
        "idle_max": 10.0 / SCALE,
        "discover_interval": 5.0 / SCALE,
        "discover_max": 60.0 / SCALE,
        "drain_grace": 5.0 / SCALE,
        "window": 10.0 / SCALE,
        "stall": 60.0 / SCALE,
        "drain_window": 30.0 / SCALE,
        "batch_spread": 15.0 / SCALE,
    }
    # the account's budgets in us-west-2 (FilterLogEvents 10/s, DescribeLogStreams
    # 25/s), shared by JOBS instead of 1,000 jobs: the same load per call
    region = default_rates("us-west-2")
    budgets = Budgets({
        family: region[family] * SCALE * JOBS / 1000 for family in ("logs.filter", "logs.describe")
    })

    async def call(service: str, operation: str, /, **params: Any) -> Any:
        await budgets.acquire(service, operation, params.get("priority", Priority.LIVE))
        return await calls(service, operation, **params)

    written: dict[str, float] = {}
    latencies: list[float] = []
    sinks: dict[str, Lines] = {}
    expected: dict[str, list[str]] = {}

    def sink(job: str) -> Lines:
        lines = Lines()

        def on_line(line: LogLine) -> None:
            latencies.append(time.time() - written[line.message])

        lines.on_line = on_line
        sinks[job] = lines
        return lines

    async def job(hub: LogHub, n: int) -> None:
        name = f"train-{n:03d}-{n * 2654435761 % 16**8:08x}"
        await anyio.sleep(n * (60.0 / SCALE) / JOBS)
        terminal = anyio.Event()
        logs = hub.follow(name, source(name), sink(name))
        streams = [f"{name}/algo-{i}-1700000000" for i in (1, 2)]
        for stream in streams:
            expected[stream] = []

        async def containers() -> None:
            started = time.time()
            await anyio.sleep(0.1 * JOB_SECONDS)  # provisioning: no stream yet
            i = 0
            while time.time() - started < JOB_SECONDS:
                for stream in streams:
                    message = f"{stream} {i}"
                    written[message] = time.time()
                    expected[stream].append(message)
                    emulator.logs.put(GROUP, stream, [(now_ms(), message)])
                i += 1
                await anyio.sleep(LINE_EVERY)
            terminal.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(logs.run, terminal)
            tg.start_soon(containers)

    async with LogHub(call=call, **scaled, sweep_from=sweep_from) as hub:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for n in range(JOBS):
                    tg.start_soon(job, hub, n)
    for lines in sinks.values():
        for stream in lines.streams():
            assert lines.of(stream) == expected[stream]
    assert sum(len(lines.lines) for lines in sinks.values()) == sum(map(len, expected.values()))
    per_job = Counter(op for op, _, _ in calls.log)
    reads, listings = per_job["FilterLogEvents"] / JOBS, per_job["DescribeLogStreams"] / JOBS
    p50 = statistics.median(latencies) * SCALE
    p95 = statistics.quantiles(latencies, n=20)[-1] * SCALE
    print(
        f"\nper job: {reads:.2f} FilterLogEvents + {listings:.2f} DescribeLogStreams; "
        f"latency (production seconds) p50 {p50:.1f} s, p95 {p95:.1f} s; {hub.stats}"
    )
    assert reads + listings <= 5.0
    if sweep_from < JOBS:
        assert hub.stats.swept > 0
        assert listings < 1.5  # the jobs before the sweep began, and none after

