"""The log hub's sweep: a group with many jobs finds their streams by searching
the whole group (FilterLogEvents without names) instead of one
DescribeLogStreams per job. Against the emulator, and one case against moto."""

from __future__ import annotations

from typing import Any

import anyio
from botocore.exceptions import ClientError

from smrun.budget import Priority
from smrun.emulator import Emulator
from smrun.logs import LogHub
from smrun.logs.hub import _common_prefix
from smrun.types import LogSource
from tests.test_log_hub import (  # calls and moto are fixtures
    FAST,
    Calls,
    Lines,
    calls,  # noqa: F401
    drained,
    moto,  # noqa: F401
    moto_group,
    moto_put,
    now_ms,
    numbered,
    source,
    until,
    write,
)

# four followed prefixes make a group swept
SWEEP: dict[str, Any] = {**FAST, "sweep_from": 4}


def sweeps(made: Calls) -> list[dict[str, Any]]:
    return [p for op, _, p in made.log if op == "FilterLogEvents" and "logStreamNames" not in p]


def test_the_common_prefix_is_that_of_every_name() -> None:
    assert _common_prefix(["sweep-12/", "sweep-1/", "sweep-100/"]) == "sweep-1"
    assert _common_prefix(["a/", "b/"]) == ""
    assert _common_prefix([]) == ""


async def test_many_jobs_are_found_by_sweeps_with_no_listing_and_every_line_arrives_once(
    emulator: Emulator, calls: Calls  # noqa: F811
) -> None:
    jobs = [f"sweep-{n:02d}" for n in range(10)]
    sinks = {job: Lines() for job in jobs}
    terminals = {job: anyio.Event() for job in jobs}
    async with LogHub(call=calls, **SWEEP) as hub:
        handles = {job: hub.follow(job, source(job), sinks[job]) for job in jobs}
        async with anyio.create_task_group() as tg:
            for job in jobs:
                tg.start_soon(handles[job].run, terminals[job])
            await anyio.sleep(0.1)  # the jobs are followed before their containers write
            for job in jobs:
                for instance in (1, 2):
                    stream = f"{job}/algo-{instance}-1700000000"
                    write(emulator, stream, numbered(stream, 30), now_ms())
            for job in jobs:
                await until(lambda job=job: len(sinks[job].lines) == 60)
                terminals[job].set()
    for job in jobs:
        for instance in (1, 2):
            stream = f"{job}/algo-{instance}-1700000000"
            assert sinks[job].of(stream) == numbered(stream, 30)
    assert calls.count("DescribeLogStreams") == 0
    assert hub.stats.swept == 20
    # narrowed to what every followed prefix starts with
    assert {p.get("logStreamNamePrefix") for p in sweeps(calls)} == {"sweep-0"}
    # the drains waited for sweeps, at FINISH
    assert calls.count("FilterLogEvents", Priority.FINISH) >= 1


async def test_below_the_threshold_each_job_lists_its_own_prefix(
    emulator: Emulator, calls: Calls  # noqa: F811
) -> None:
    stream = "solo/algo-1-1700000000"
    write(emulator, stream, ["one"], now_ms())
    lines = Lines()
    async with LogHub(call=calls, **SWEEP) as hub:
        await drained(hub, "solo", lines)
    assert lines.messages() == ["one"]
    assert sweeps(calls) == []
    assert calls.count("DescribeLogStreams") >= 1


async def test_a_stream_that_appears_after_the_terminal_status_is_found_by_a_sweep(
    emulator: Emulator, calls: Calls  # noqa: F811
) -> None:
    jobs = [f"late-{n}" for n in range(5)]
    sinks = {job: Lines() for job in jobs}
    terminals = {job: anyio.Event() for job in jobs}
    for job in jobs:
        write(emulator, f"{job}/algo-1-1700000000", ["early"], now_ms())
    async with LogHub(call=calls, **SWEEP) as hub:
        handles = {job: hub.follow(job, source(job), sinks[job]) for job in jobs}
        async with anyio.create_task_group() as tg:
            for job in jobs:
                tg.start_soon(handles[job].run, terminals[job])
            for job in jobs:
                await until(lambda job=job: sinks[job].messages() == ["early"])
            for job in jobs:
                terminals[job].set()
                write(emulator, f"{job}/algo-2-1700000000", ["newest"], now_ms())
    for job in jobs:
        assert sinks[job].messages() == ["early", "newest"]
    assert calls.count("DescribeLogStreams") == 0


async def test_a_job_of_another_run_in_the_group_is_never_handed_out(
    emulator: Emulator, calls: Calls  # noqa: F811
) -> None:
    jobs = [f"mine-{n}" for n in range(4)]
    # not followed, and a look-alike of mine-1
    write(emulator, "mine-10/algo-1-1700000000", ["not mine"], now_ms())
    for job in jobs:
        write(emulator, f"{job}/algo-1-1700000000", [job], now_ms())
    sinks = {job: Lines() for job in jobs}
    async with LogHub(call=calls, **SWEEP) as hub:
        handles = {job: hub.follow(job, source(job), sinks[job]) for job in jobs}
        terminal = anyio.Event()
        terminal.set()
        async with anyio.create_task_group() as tg:
            for job in jobs:
                tg.start_soon(handles[job].run, terminal)
    assert {job: s.messages() for job, s in sinks.items()} == {job: [job] for job in jobs}
    assert hub.stats.swept == 4


async def test_a_throttled_sweep_is_tried_again_and_loses_nothing(
    emulator: Emulator, calls: Calls  # noqa: F811
) -> None:
    throttled = {"left": 3}

    def before(operation: str, params: dict[str, Any]) -> None:
        if operation == "FilterLogEvents" and "logStreamNames" not in params and throttled["left"]:
            throttled["left"] -= 1
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}},
                "FilterLogEvents",
            )

    calls.before = before
    jobs = [f"slow-{n}" for n in range(4)]
    for job in jobs:
        write(emulator, f"{job}/algo-1-1700000000", numbered(job, 5), now_ms())
    sinks = {job: Lines() for job in jobs}
    async with LogHub(call=calls, **SWEEP) as hub:
        terminal = anyio.Event()
        terminal.set()
        async with anyio.create_task_group() as tg:
            for job in jobs:
                tg.start_soon(hub.follow(job, source(job), sinks[job]).run, terminal)
    assert throttled["left"] == 0
    assert {job: s.messages() for job, s in sinks.items()} == {j: numbered(j, 5) for j in jobs}
    assert hub.stats.throttled >= 3


async def test_a_stream_the_sweeps_miss_is_listed_on_its_own_after_twice_discover_max(
    emulator: Emulator, calls: Calls  # noqa: F811
) -> None:
    jobs = [f"old-{n}" for n in range(4)]
    # written long before the sweeps' start (more than twice discover_max and the
    # window back): as a line that became visible that late would be
    old = now_ms() - 3_600_000
    for job in jobs:
        write(emulator, f"{job}/algo-1-1700000000", [job], old)
    sinks = {job: Lines() for job in jobs}
    terminal = anyio.Event()
    async with LogHub(call=calls, **SWEEP) as hub:
        started = anyio.current_time()
        async with anyio.create_task_group() as tg:
            for job in jobs:
                tg.start_soon(hub.follow(job, source(job), sinks[job]).run, terminal)
            # found while the jobs run, so not by their drains' listings
            await until(lambda: all(s.messages() for s in sinks.values()))
            found_after = anyio.current_time() - started
            listings = calls.count("DescribeLogStreams")
            terminal.set()
    assert {job: s.messages() for job, s in sinks.items()} == {job: [job] for job in jobs}
    assert hub.stats.swept == 0
    assert listings == len(jobs)
    assert found_after >= 2 * SWEEP["discover_max"]


async def test_a_restarted_job_lists_its_prefix_at_once_while_the_group_is_swept(
    emulator: Emulator, calls: Calls  # noqa: F811
) -> None:
    jobs = [f"back-{n}" for n in range(4)]
    old = now_ms() - 3_600_000  # older than any sweep looks
    for job in jobs:
        stream = f"{job}/algo-1-1700000000"
        write(emulator, stream, numbered(stream, 4), old)
    saved = {job: {f"{job}/algo-1-1700000000": f"t:{old + 1}"} for job in jobs}
    sinks = {job: Lines() for job in jobs}
    async with LogHub(call=calls, **{**SWEEP, "discover_max": 3600.0}) as hub:
        terminal = anyio.Event()
        terminal.set()
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for job in jobs:
                    logs = hub.follow(job, source(job), sinks[job], tokens=saved[job])
                    tg.start_soon(logs.run, terminal)
    for job in jobs:
        stream = f"{job}/algo-1-1700000000"
        # resumed at old + 1: that millisecond again, since no ids were saved with it
        assert sinks[job].messages() == numbered(stream, 4)[1:]
    assert calls.count("DescribeLogStreams") >= len(jobs)


async def test_moto_many_jobs_are_found_by_sweeps(moto: Any) -> None:  # noqa: F811
    client = moto
    group = moto_group("sweep")
    await client.create_log_group(logGroupName=group)
    made = Calls(client)
    jobs = [f"m-{n}" for n in range(5)]
    base = now_ms()
    for job in jobs:
        await moto_put(client, group, f"{job}/algo-1-1700000000", numbered(job, 3), base)
    sinks = {job: Lines() for job in jobs}
    async with LogHub(call=made, **SWEEP) as hub:
        terminal = anyio.Event()
        terminal.set()
        async with anyio.create_task_group() as tg:
            for job in jobs:
                logs = hub.follow(job, [LogSource(group, f"{job}/")], sinks[job])
                tg.start_soon(logs.run, terminal)
    assert {job: s.messages() for job, s in sinks.items()} == {j: numbered(j, 3) for j in jobs}
    assert made.count("DescribeLogStreams") == 0
