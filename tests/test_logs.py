"""The CloudWatch multi-stream follower.

Pure decisions first; then each rule of the reference's "CloudWatch Logs
layout" against an in-memory CloudWatch that has AWS's awkward edges (pages cut
short, empty pages with a moving token) and against moto's server; then the big
test, >10,000 lines written while following, on moto and on the emulator.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import botocore
import pytest
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from smrun.budget import Budgets
from smrun.events import LogLine
from smrun.logs import (
    LogFollower,
    drain_finished,
    instance_label,
    keep_reading,
    merge_round,
    next_read_delay,
    stream_at_end,
)
from smrun.types import LogSource

GROUP = "/aws/sagemaker/TrainingJobs"
FAST: dict[str, Any] = {
    "poll_interval": 0.01,
    "idle_max": 0.05,
    "discover_interval": 0.02,
    "drain_grace": 0.1,
}
Call = Callable[..., Awaitable[Any]]


# ---------------------------------------------------------------- decisions


@pytest.mark.parametrize(
    ("stream", "prefix", "label", "shown"),
    [
        ("job-1/algo-1-1700000000", "job-1/", "", "algo-1"),
        ("job-1/algo-12-1700000123", "job-1/", "", "algo-12"),
        ("job-1/i-0abc123-1700000000/data-log", "job-1/", "", "i-0abc123/data-log"),
        ("AllTraffic/i-0abc123", "AllTraffic/", "", "i-0abc123"),
        ("tune-001-deadbeef/algo-1-1700000000", "tune-001-deadbeef/", "001", "001:algo-1"),
        ("job-1/", "job-1/", "", "job-1/"),
    ],
)
def test_instance_label_is_the_short_instance_part(
    stream: str, prefix: str, label: str, shown: str
) -> None:
    assert instance_label(stream, prefix, label) == shown


def test_a_stream_ends_only_on_a_repeated_token() -> None:
    assert not stream_at_end(None, "f/1")
    assert not stream_at_end("f/1", "f/2")
    assert stream_at_end("f/2", "f/2")
    # the first read of an empty stream proves nothing
    assert not stream_at_end(None, None)


def test_reading_continues_while_the_token_moves_up_to_a_bound() -> None:
    assert keep_reading("f/1", "f/2", pages=1, max_pages=5)
    assert not keep_reading("f/2", "f/2", pages=1, max_pages=5)
    assert not keep_reading("f/1", "f/2", pages=5, max_pages=5)


def test_idle_streams_back_off_up_to_idle_max_and_busy_ones_are_read_every_round() -> None:
    delays = [next_read_delay(n, poll_interval=2.0, idle_max=10.0) for n in range(6)]
    assert delays == [0.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_merge_round_orders_by_timestamp_and_keeps_each_streams_order() -> None:
    merged = merge_round(
        {
            "a": [{"timestamp": 1, "message": "a1"}, {"timestamp": 5, "message": "a5"}],
            "b": [
                {"timestamp": 1, "message": "b1"},
                {"timestamp": 3, "message": "b3"},
                # a stream's own order wins over timestamps
                {"timestamp": 2, "message": "b2"},
            ],
        }
    )
    assert [e["message"] for _, e in merged] == ["a1", "b1", "b3", "b2", "a5"]
    assert [k for k, _ in merged] == ["a", "b", "b", "b", "a"]


def test_drain_waits_for_both_the_end_and_the_grace() -> None:
    assert not drain_finished(True, since_terminal=1.0, grace=5.0)
    assert not drain_finished(False, since_terminal=9.0, grace=5.0)
    assert drain_finished(True, since_terminal=5.0, grace=5.0)


def test_a_prefix_without_the_slash_is_refused() -> None:
    with pytest.raises(ValueError, match="job-10"):
        LogFollower(call=FakeLogs(), job="j", sources=[LogSource(GROUP, "job-1")], publish=print)


# ---------------------------------------------------------------- an in-memory CloudWatch


class FakeLogs:
    """CloudWatch Logs behind the follower's ``call``, with the edges real AWS
    has: pages cut at ``page_size``, empty pages served with a moving token
    while events are pending, ResourceNotFoundException for missing groups."""

    def __init__(self, page_size: int = 10_000) -> None:
        self.page_size = page_size
        self.groups: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self.empty_pages: dict[str, int] = {}  # stream -> empty pages before its next events
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.before_call: Callable[[str, dict[str, Any]], None] | None = None

    def write(self, stream: str, messages: list[str], start: int, group: str = GROUP) -> None:
        events = self.groups.setdefault(group, {}).setdefault(stream, [])
        events.extend({"timestamp": start + i, "message": m} for i, m in enumerate(messages))

    async def __call__(self, service: str, operation: str, /, **params: Any) -> dict[str, Any]:
        assert service == "logs"
        if self.before_call is not None:
            self.before_call(operation, params)
        self.calls.append((operation, params))
        await anyio.lowlevel.checkpoint()
        group = self.groups.get(params["logGroupName"])
        if group is None:
            raise ClientError(
                {"Error": {"Code": "ResourceNotFoundException", "Message": "no group"}},
                operation,
            )
        if operation == "DescribeLogStreams":
            assert params["limit"] <= 50
            names = sorted(n for n in group if n.startswith(params["logStreamNamePrefix"]))
            first = int(params.get("nextToken", 0))
            page = names[first : first + params["limit"]]
            out: dict[str, Any] = {"logStreams": [{"logStreamName": n} for n in page]}
            if first + len(page) < len(names):
                out["nextToken"] = str(first + len(page))
            return out
        assert operation == "GetLogEvents"
        assert params["startFromHead"] is True
        name = params["logStreamName"]
        stored = group[name]
        sent = params.get("nextToken")
        index, nonce = (0, 0) if sent is None else map(int, sent.split("/")[1:])
        if index < len(stored) and self.empty_pages.get(name, 0) > 0:
            self.empty_pages[name] -= 1
            return {"events": [], "nextForwardToken": f"f/{index}/{nonce + 1}"}
        served = stored[index : index + self.page_size]
        return {"events": served, "nextForwardToken": f"f/{index + len(served)}/{nonce}"}

    def reads(self, stream: str) -> list[dict[str, Any]]:
        return [p for op, p in self.calls if op == "GetLogEvents" and p["logStreamName"] == stream]


class Lines:
    """A sink that keeps what the follower published."""

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


def follower(call: Call, lines: Lines, prefix: str = "job-1/", **kwargs: Any) -> LogFollower:
    options = {**FAST, **kwargs}
    return LogFollower(
        call=call, job="train", sources=[LogSource(GROUP, prefix)], publish=lines, **options
    )


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    # polling, not an Event: the conditions are about what another task published
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.005)


async def test_an_empty_page_mid_stream_does_not_end_it() -> None:
    logs = FakeLogs(page_size=10)
    logs.write("job-1/algo-1-1700000000", [f"m{i}" for i in range(30)], start=1000)
    logs.empty_pages["job-1/algo-1-1700000000"] = 3
    lines = Lines()
    terminal = anyio.Event()
    terminal.set()
    # no grace: only the token may tell the drain that the stream has ended
    await follower(logs, lines, drain_grace=0.0).run(terminal)
    assert lines.messages() == [f"m{i}" for i in range(30)]


async def test_the_drain_reads_past_more_empty_pages_than_one_round_allows() -> None:
    logs = FakeLogs(page_size=1)
    logs.write("job-1/algo-1-1700000000", ["only"], start=1000)
    logs.empty_pages["job-1/algo-1-1700000000"] = 12
    lines = Lines()
    terminal = anyio.Event()
    terminal.set()
    f = follower(logs, lines, max_pages_per_round=5)
    await f.run(terminal)
    assert lines.messages() == ["only"]
    assert f.stats.pages >= 14  # 12 empty, the event, the repeated token


async def test_tokens_are_forwarded_and_the_first_read_starts_from_the_head() -> None:
    stream = "job-1/algo-1-1700000000"
    logs = FakeLogs(page_size=4)
    logs.write(stream, [f"m{i}" for i in range(10)], start=1000)
    logs.empty_pages[stream] = 1
    lines = Lines()
    terminal = anyio.Event()
    terminal.set()
    await follower(logs, lines).run(terminal)
    sent = [p.get("nextToken") for p in logs.reads(stream)]
    assert sent[0] is None
    # every later read sends the token the previous one returned
    assert sent[1:5] == ["f/0/1", "f/4/1", "f/8/1", "f/10/1"]
    # after the end, only the end is ever asked for again
    assert set(sent[5:]) <= {"f/10/1"}
    assert lines.messages() == [f"m{i}" for i in range(10)]


async def test_the_end_is_a_repeated_token_not_an_empty_page() -> None:
    stream = "job-1/algo-1-1700000000"
    logs = FakeLogs()
    logs.write(stream, ["a"], start=1000)
    lines = Lines()
    terminal = anyio.Event()
    terminal.set()
    await follower(logs, lines).run(terminal)
    reads = logs.reads(stream)
    # the page with "a" was not the end: the follower asked again with its token,
    # and stopped only when that same token came back
    assert [r.get("nextToken") for r in reads[:2]] == [None, "f/1/0"]
    assert reads[-1].get("nextToken") == "f/1/0"


async def test_lines_of_one_round_are_merged_by_timestamp_across_streams() -> None:
    logs = FakeLogs()
    logs.write("job-1/algo-1-1700000000", ["a0", "a2", "a4"], start=0)
    logs.write("job-1/algo-2-1700000000", ["b1", "b3"], start=0)
    # interleave the timestamps: a at 0, 2, 4 and b at 1, 3
    for i, event in enumerate(logs.groups[GROUP]["job-1/algo-1-1700000000"]):
        event["timestamp"] = 2 * i
    for i, event in enumerate(logs.groups[GROUP]["job-1/algo-2-1700000000"]):
        event["timestamp"] = 2 * i + 1
    lines = Lines()
    terminal = anyio.Event()
    terminal.set()
    await follower(logs, lines).run(terminal)
    assert lines.messages() == ["a0", "b1", "a2", "b3", "a4"]
    assert [x.instance for x in lines.lines] == ["algo-1", "algo-2"] * 2 + ["algo-1"]


async def test_a_busy_stream_cannot_starve_the_others_within_a_round() -> None:
    logs = FakeLogs(page_size=1)
    logs.write("job-1/algo-1-1700000000", [f"busy{i}" for i in range(100)], start=0)
    logs.write("job-1/algo-2-1700000000", ["quiet"], start=50)
    lines = Lines()
    terminal = anyio.Event()
    terminal.set()
    await follower(logs, lines, max_pages_per_round=5).run(terminal)
    # the quiet stream's line came out with the first round, not after 100 pages
    assert lines.messages().index("quiet") <= 5
    assert lines.of("job-1/algo-1-1700000000") == [f"busy{i}" for i in range(100)]


async def test_after_terminal_the_drain_picks_up_late_lines_and_a_late_stream() -> None:
    logs = FakeLogs()
    first = "job-1/algo-1-1700000000"
    logs.write(first, ["early"], start=0)
    lines = Lines()
    terminal = anyio.Event()
    f = follower(logs, lines, drain_grace=0.2)
    late_stream_created = False

    def after_terminal(line: LogLine) -> None:
        nonlocal late_stream_created
        if line.message == "early":
            terminal.set()
            # written right after the terminal status, as CloudWatch can deliver
            logs.write(first, ["late"], start=1)
        if line.message == "late":
            # created after the drain's first discovery: only the discovery
            # after the grace period can find it
            logs.write("job-1/algo-2-1700000099", ["newest"], start=2)
            late_stream_created = True

    lines.on_line = after_terminal
    async with anyio.create_task_group() as tg:
        tg.start_soon(f.run, terminal)
    assert late_stream_created
    assert lines.messages() == ["early", "late", "newest"]


async def test_idle_streams_are_read_less_often_than_busy_ones() -> None:
    logs = FakeLogs()
    busy, idle = "job-1/algo-1-1700000000", "job-1/algo-2-1700000000"
    logs.write(idle, ["once"], start=0)
    logs.write(busy, ["b0"], start=0)
    lines = Lines()
    terminal = anyio.Event()
    f = follower(logs, lines, poll_interval=0.01, idle_max=0.08)

    async def writer() -> None:
        for i in range(1, 40):
            logs.write(busy, [f"b{i}"], start=i)
            await anyio.sleep(0.01)
        terminal.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(f.run, terminal)
        tg.start_soon(writer)
    assert lines.of(busy) == [f"b{i}" for i in range(40)]
    assert len(logs.reads(idle)) < len(logs.reads(busy)) / 2


async def test_on_token_follows_the_published_lines() -> None:
    stream = "job-1/algo-1-1700000000"
    logs = FakeLogs(page_size=3)
    logs.write(stream, [f"m{i}" for i in range(7)], start=0)
    saved: list[tuple[str, str, int]] = []
    lines = Lines()
    terminal = anyio.Event()
    terminal.set()
    f = follower(logs, lines, on_token=lambda s, t: saved.append((s, t, len(lines.lines))))
    await f.run(terminal)
    assert saved
    for name, token, published in saved:
        # a saved position never runs ahead of the lines already published
        assert name == stream
        assert int(token.split("/")[1]) <= published
    assert saved[-1][1] == "f/7/0"


async def test_throttling_that_escapes_retries_is_retried_not_swallowed() -> None:
    stream = "job-1/algo-1-1700000000"
    logs = FakeLogs()
    logs.write(stream, ["a", "b"], start=0)
    throttles = 3

    def throttle(operation: str, params: dict[str, Any]) -> None:
        nonlocal throttles
        if operation == "GetLogEvents" and throttles:
            throttles -= 1
            raise ClientError({"Error": {"Code": "ThrottlingException"}}, operation)

    logs.before_call = throttle
    lines = Lines()
    terminal = anyio.Event()
    terminal.set()
    f = follower(logs, lines)
    await f.run(terminal)
    assert lines.messages() == ["a", "b"]
    assert f.stats.throttled == 3


async def test_other_errors_are_raised() -> None:
    logs = FakeLogs()
    logs.write("job-1/algo-1-1700000000", ["a"], start=0)

    def deny(operation: str, params: dict[str, Any]) -> None:
        raise ClientError({"Error": {"Code": "AccessDeniedException"}}, operation)

    logs.before_call = deny
    terminal = anyio.Event()
    terminal.set()
    with pytest.raises(ClientError):
        await follower(logs, Lines()).run(terminal)


async def test_sources_added_while_following_are_followed() -> None:
    logs = FakeLogs()
    logs.write("tune-001-aaaaaaaa/algo-1-1700000000", ["child 1"], start=0)
    lines = Lines()
    terminal = anyio.Event()
    f = LogFollower(call=logs, job="tune", sources=[], publish=lines, **FAST)
    async with anyio.create_task_group() as tg:
        tg.start_soon(f.run, terminal)
        await anyio.sleep(0.05)
        f.set_sources([LogSource(GROUP, "tune-001-aaaaaaaa/", "001")])
        await until(lambda: len(lines.lines) == 1)
        terminal.set()
    assert [(x.instance, x.message) for x in lines.lines] == [("001:algo-1", "child 1")]


# ---------------------------------------------------------------- moto's server


@asynccontextmanager
async def serving(backend: str, moto_url: str) -> AsyncIterator[str]:
    """The endpoint of a CloudWatch Logs: moto's server or the project's emulator."""
    if backend == "moto":
        yield moto_url
        return
    from smrun.emulator import Emulator

    async with Emulator() as emu:
        yield str(emu.url)


@pytest.fixture
async def client(moto_url: str) -> AsyncIterator[Any]:
    async with logs_client(moto_url) as c:
        yield c


def logs_client(url: str) -> Any:
    return get_session().create_client(
        "logs",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def client_call(client: Any, log: list[str] | None = None) -> Call:
    async def call(service: str, operation: str, /, **params: Any) -> Any:
        assert service == "logs"
        if log is not None:
            log.append(operation)
        return await getattr(client, botocore.xform_name(operation))(**params)

    return call


def unique_group(tag: str) -> str:
    # one moto server serves the whole module: each test gets its own group
    return f"/aws/sagemaker/TrainingJobs/{tag}-{time.monotonic_ns()}"


async def put(client: Any, group: str, stream: str, messages: list[str], start: int) -> None:
    await client.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": start + i, "message": m} for i, m in enumerate(messages)],
    )


def now_ms() -> int:
    return int(time.time() * 1000)


async def test_moto_a_job_10_stream_is_never_read_for_job_1(client: Any) -> None:
    group = unique_group("prefix")
    await client.create_log_group(logGroupName=group)
    for stream in ("job-1/algo-1-1700000000", "job-10/algo-1-1700000000"):
        await client.create_log_stream(logGroupName=group, logStreamName=stream)
        await put(client, group, stream, [f"from {stream}"], now_ms())
    lines = Lines()
    terminal = anyio.Event()
    terminal.set()
    f = LogFollower(
        call=client_call(client),
        job="job-1",
        sources=[LogSource(group, "job-1/")],
        publish=lines,
        **FAST,
    )
    await f.run(terminal)
    assert lines.messages() == ["from job-1/algo-1-1700000000"]
    assert f.stats.streams == 1


async def test_moto_discovery_paginates_past_50_streams(client: Any) -> None:
    group = unique_group("many")
    await client.create_log_group(logGroupName=group)
    names = [f"job-1/i-{n:04d}-1700000000" for n in range(55)]
    for n, stream in enumerate(names):
        await client.create_log_stream(logGroupName=group, logStreamName=stream)
        await put(client, group, stream, [f"line {n}"], now_ms())
    lines = Lines()
    calls: list[str] = []
    terminal = anyio.Event()
    terminal.set()
    f = LogFollower(
        call=client_call(client, calls),
        job="job-1",
        sources=[LogSource(group, "job-1/")],
        publish=lines,
        **FAST,
    )
    await f.run(terminal)
    assert sorted(lines.messages()) == sorted(f"line {n}" for n in range(55))
    assert f.stats.streams == 55
    assert calls.count("DescribeLogStreams") >= 2 * 2  # two pages, two discoveries


async def test_moto_repeated_discovery_finds_a_stream_that_appears_late(client: Any) -> None:
    group = unique_group("late")
    await client.create_log_group(logGroupName=group)
    await client.create_log_stream(logGroupName=group, logStreamName="job-1/algo-1-1700000000")
    await put(client, group, "job-1/algo-1-1700000000", ["first"], now_ms())
    lines = Lines()
    terminal = anyio.Event()
    f = LogFollower(
        call=client_call(client),
        job="job-1",
        sources=[LogSource(group, "job-1/")],
        publish=lines,
        **FAST,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(f.run, terminal)
        await until(lambda: lines.messages() == ["first"])
        # a spot restart: a second stream with a new epoch, while the job runs
        late = "job-1/algo-1-1700000999"
        await client.create_log_stream(logGroupName=group, logStreamName=late)
        await put(client, group, late, ["after restart"], now_ms())
        # seen before the terminal status, so not thanks to the drain
        await until(lambda: "after restart" in lines.messages())
        terminal.set()
    assert lines.messages() == ["first", "after restart"]


async def test_moto_a_missing_group_is_normal_before_the_job_writes(client: Any) -> None:
    group = unique_group("missing")
    lines = Lines()
    terminal = anyio.Event()
    f = LogFollower(
        call=client_call(client),
        job="job-1",
        sources=[LogSource(group, "job-1/")],
        publish=lines,
        **FAST,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(f.run, terminal)
        await until(lambda: f.stats.not_found >= 2)
        await client.create_log_group(logGroupName=group)
        await client.create_log_stream(logGroupName=group, logStreamName="job-1/algo-1-1")
        await put(client, group, "job-1/algo-1-1", ["hello"], now_ms())
        await until(lambda: lines.messages() == ["hello"])
        terminal.set()
    assert lines.messages() == ["hello"]


async def test_moto_resuming_from_saved_tokens_prints_nothing_twice(client: Any) -> None:
    group = unique_group("resume")
    stream = "job-1/algo-1-1700000000"
    await client.create_log_group(logGroupName=group)
    await client.create_log_stream(logGroupName=group, logStreamName=stream)
    start = now_ms()
    await put(client, group, stream, [f"a{i}" for i in range(50)], start)
    saved: dict[str, str] = {}

    def run_once(lines: Lines) -> LogFollower:
        return LogFollower(
            call=client_call(client),
            job="job-1",
            sources=[LogSource(group, "job-1/")],
            publish=lines,
            tokens=dict(saved),
            on_token=saved.__setitem__,
            **FAST,
        )

    before = Lines()
    terminal = anyio.Event()
    terminal.set()
    await run_once(before).run(terminal)
    assert before.messages() == [f"a{i}" for i in range(50)]
    # the process restarts; the job wrote on meanwhile
    await put(client, group, stream, [f"b{i}" for i in range(20)], start + 50)
    after = Lines()
    await run_once(after).run(terminal)
    assert after.messages() == [f"b{i}" for i in range(20)]


async def test_moto_calls_go_through_the_shared_budget(client: Any) -> None:
    group = unique_group("budget")
    await client.create_log_group(logGroupName=group)
    await client.create_log_stream(logGroupName=group, logStreamName="job-1/algo-1-1")
    await put(client, group, "job-1/algo-1-1", ["x"], now_ms())
    budgets = Budgets()
    plain = client_call(client)

    async def call(service: str, operation: str, /, **params: Any) -> Any:
        await budgets.acquire(service, operation)
        return await plain(service, operation, **params)

    lines = Lines()
    terminal = anyio.Event()
    terminal.set()
    f = LogFollower(
        call=call,
        job="job-1",
        sources=[LogSource(group, "job-1/")],
        publish=lines,
        **FAST,
    )
    await f.run(terminal)
    stats = budgets.stats()
    assert lines.messages() == ["x"]
    assert stats["logs.get"].acquired + stats["logs.describe"].acquired == f.stats.calls


# ---------------------------------------------------------------- the big test

BIG_STREAMS = ("job-1/algo-1-1700000000", "job-1/algo-2-1700000000", "job-1/algo-1-1700000777")
PER_STREAM = 3_500  # 10,500 lines in all
BATCH = 250


@pytest.mark.parametrize("backend", ["moto", "emulator"])
async def test_every_line_of_a_busy_job_arrives_once_and_in_order(
    backend: str, moto_url: str
) -> None:
    group = unique_group("big")
    lines = Lines()
    terminal = anyio.Event()
    async with (
        serving(backend, moto_url) as url,
        logs_client(url) as writer_client,
        logs_client(url) as reader_client,
    ):
        await writer_client.create_log_group(logGroupName=group)
        f = LogFollower(
            call=client_call(reader_client),
            job="job-1",
            sources=[LogSource(group, "job-1/")],
            publish=lines,
            poll_interval=0.02,
            idle_max=0.1,
            discover_interval=0.05,
            drain_grace=0.2,
        )
        base = now_ms() - 3_600_000  # an hour ago: well inside what Logs accepts
        started = time.perf_counter()

        async def write(stream: str, after: anyio.Event | None) -> None:
            if after is not None:
                await after.wait()
            await writer_client.create_log_stream(logGroupName=group, logStreamName=stream)
            for first in range(0, PER_STREAM, BATCH):
                count = min(BATCH, PER_STREAM - first)
                await put(
                    writer_client,
                    group,
                    stream,
                    [f"{stream} {i}" for i in range(first, first + count)],
                    base + first,
                )
                await anyio.sleep(0.002)

        async with anyio.create_task_group() as tg:
            tg.start_soon(f.run, terminal)
            # the third stream appears only once the follower has read lines
            following = anyio.Event()
            lines.on_line = lambda _: following.set()
            async with anyio.create_task_group() as writers:
                writers.start_soon(write, BIG_STREAMS[0], None)
                writers.start_soon(write, BIG_STREAMS[1], None)
                writers.start_soon(write, BIG_STREAMS[2], following)
            terminal.set()
        elapsed = time.perf_counter() - started

    for stream in BIG_STREAMS:
        assert lines.of(stream) == [f"{stream} {i}" for i in range(PER_STREAM)], stream
    assert len(lines.lines) == len(BIG_STREAMS) * PER_STREAM
    assert {x.instance for x in lines.lines} == {"algo-1", "algo-2"}
    print(
        f"\n{backend}: {len(lines.lines)} lines in {elapsed:.2f}s "
        f"({len(lines.lines) / elapsed:.0f} lines/s), {f.stats}"
    )
