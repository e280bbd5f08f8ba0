"""FilterLogEvents as CloudWatch documents it: stream selection and its errors, the
time range, event ids, page limits, tokens, empty pages that still carry a
token, the newest-first order, and reads that bisect instead of scanning."""

from __future__ import annotations

from typing import Any

from smrun.emulator import Emulator, FakeClock, FaultConfig
from tests.helpers import error_of

GROUP = "/aws/sagemaker/TrainingJobs"


def ms(clock: FakeClock) -> int:
    return int(clock.now * 1000)


async def read_all(logs: Any, **params: Any) -> tuple[list[dict[str, Any]], list[int]]:
    """Follow tokens until none comes back: (every event, each page's size)."""
    events: list[dict[str, Any]] = []
    sizes: list[int] = []
    params = {"logGroupName": GROUP, **params}
    while True:
        page = await logs.filter_log_events(**params)
        events += page["events"]
        sizes.append(len(page["events"]))
        if "nextToken" not in page:
            return events, sizes
        params["nextToken"] = page["nextToken"]


async def test_streams_by_name_or_prefix_and_their_errors(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    logs = await aws_client("logs", fake_emulator, validate=False)
    now = ms(fake_clock)
    store = fake_emulator.logs
    store.put(GROUP, "job-1/algo-1", [(now, "one")])
    store.put(GROUP, "job-10/algo-1", [(now + 1, "ten")])
    store.put(GROUP, "job-2/algo-1", [(now + 2, "two")])

    prefixed = await logs.filter_log_events(logGroupName=GROUP, logStreamNamePrefix="job-1/")
    assert [e["message"] for e in prefixed["events"]] == ["one"]  # not job-10's
    assert prefixed["searchedLogStreams"] == []  # no longer supported, as CloudWatch says
    named = await logs.filter_log_events(
        logGroupName=GROUP, logStreamNames=["job-2/algo-1", "job-1/algo-1", "job-1/algo-1"]
    )
    assert [e["message"] for e in named["events"]] == ["one", "two"]

    assert await error_of(
        logs.filter_log_events,
        logGroupName=GROUP,
        logStreamNames=["job-1/algo-1"],
        logStreamNamePrefix="job-1/",
    ) == (
        "InvalidParameterException",
        "logStreamNames and logStreamNamePrefix are mutually exclusive.",
    )
    assert await error_of(
        logs.filter_log_events, logGroupName=GROUP, logStreamNames=["job-1/algo-1", "job-3/x"]
    ) == ("ResourceNotFoundException", "The specified log stream does not exist.")
    assert (await error_of(logs.filter_log_events, logGroupName="/no/such/group"))[0] == (
        "ResourceNotFoundException"
    )

    for n in range(3, 101):
        if n != 10:
            store.put(GROUP, f"job-{n}/algo-1", [(now + n, f"job {n}")])
    hundred = [f"job-{n}/algo-1" for n in range(1, 101)]
    page = await logs.filter_log_events(logGroupName=GROUP, logStreamNames=hundred)
    assert len(page["events"]) == 100
    code, message = await error_of(
        logs.filter_log_events, logGroupName=GROUP, logStreamNames=[*hundred, "job-10/algo-1"]
    )
    assert code == "InvalidParameterException"
    assert message.startswith("1 validation error detected: Value '[")
    assert message.endswith(
        "at 'logStreamNames' failed to satisfy constraint: "
        "Member must have length less than or equal to 100"
    )
    code, message = await error_of(logs.filter_log_events, logGroupName=GROUP, limit=10_001)
    assert code == "InvalidParameterException"
    assert "Member must have value less than or equal to 10000" in message


async def test_time_range_is_inclusive_at_both_ends_and_events_interleave(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    logs = await aws_client("logs", fake_emulator)
    t = ms(fake_clock)
    store = fake_emulator.logs
    store.put(GROUP, "j/a", [(t, "a0"), (t + 10, "a10"), (t + 20, "a20")])
    store.put(GROUP, "j/b", [(t + 5, "b5"), (t + 10, "b10"), (t + 30, "b30")])
    # written out of order within a stream: still found in time order
    store.put(GROUP, "j/a", [(t + 15, "a15")])

    ranged = await logs.filter_log_events(logGroupName=GROUP, startTime=t + 10, endTime=t + 20)
    assert [e["message"] for e in ranged["events"]] == ["a10", "b10", "a15", "a20"]
    assert [e["timestamp"] for e in ranged["events"]] == [t + 10, t + 10, t + 15, t + 20]
    assert all(e["ingestionTime"] == t for e in ranged["events"])
    point = await logs.filter_log_events(logGroupName=GROUP, startTime=t + 30, endTime=t + 30)
    assert [e["message"] for e in point["events"]] == ["b30"]
    everything = await logs.filter_log_events(logGroupName=GROUP)
    assert [e["message"] for e in everything["events"]] == [
        "a0", "b5", "a10", "b10", "a15", "a20", "b30"
    ]
    assert {e["logStreamName"] for e in everything["events"]} == {"j/a", "j/b"}
    assert "nextToken" not in everything

    newest_first, _ = await read_all(logs, startFromHead=False, limit=3)
    assert [e["message"] for e in newest_first] == [
        "b30", "a20", "a15", "b10", "a10", "b5", "a0"
    ]


async def test_event_ids_are_unique_and_the_same_on_every_call(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    logs = await aws_client("logs", fake_emulator)
    t = ms(fake_clock)
    for stream in ("j/a", "j/b", "j/c"):
        fake_emulator.logs.put(GROUP, stream, [(t + i, f"{stream} {i}") for i in range(20)])
    whole = await logs.filter_log_events(logGroupName=GROUP)
    paged, sizes = await read_all(logs, limit=7)
    assert sizes == [7] * 8 + [4]
    ids = [e["eventId"] for e in whole["events"]]
    assert len(set(ids)) == 60
    assert all(len(i) == 56 and i.isdigit() for i in ids)
    assert [e["eventId"] for e in paged] == ids
    assert [(e["logStreamName"], e["message"]) for e in paged] == [
        (e["logStreamName"], e["message"]) for e in whole["events"]
    ]
    only_b = await logs.filter_log_events(logGroupName=GROUP, logStreamNames=["j/b"])
    by_message = {e["message"]: e["eventId"] for e in whole["events"]}
    assert all(by_message[e["message"]] == e["eventId"] for e in only_b["events"])


async def test_pages_stop_at_the_limit_10000_events_or_1_mb(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    logs = await aws_client("logs", fake_emulator)
    t = ms(fake_clock)
    fake_emulator.logs.put(GROUP, "many/a", [(t + i, f"line {i}") for i in range(10_050)])
    first = await logs.filter_log_events(logGroupName=GROUP, logStreamNamePrefix="many/")
    assert len(first["events"]) == 10_000 and "nextToken" in first
    rest = await logs.filter_log_events(
        logGroupName=GROUP, logStreamNamePrefix="many/", nextToken=first["nextToken"]
    )
    assert [e["message"] for e in rest["events"]] == [f"line {i}" for i in range(10_000, 10_050)]
    assert "nextToken" not in rest
    limited = await logs.filter_log_events(logGroupName=GROUP, limit=3)
    assert [e["message"] for e in limited["events"]] == ["line 0", "line 1", "line 2"]

    big = "x" * 5_000
    fake_emulator.logs.put(GROUP, "big/a", [(t + i, big) for i in range(300)])
    events, sizes = await read_all(logs, logStreamNamePrefix="big/")
    # CloudWatch counts 26 bytes a message on top of its own
    assert sizes[0] == 1_048_576 // (5_000 + 26) == 208
    assert sum(sizes) == len(events) == 300


async def test_empty_pages_still_carry_a_token_when_the_search_is_not_done(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    logs = await aws_client("logs", fake_emulator)
    t = ms(fake_clock)
    lines = [(t + i, "ERROR disk full" if i % 300 == 299 else f"ok {i}") for i in range(1_000)]
    fake_emulator.logs.put(GROUP, "j/a", lines)

    # a call looks at no more than filter_scan_limit events, matching or not
    fake_emulator.faults = FaultConfig(filter_scan_limit=100)
    first = await logs.filter_log_events(logGroupName=GROUP, filterPattern="ERROR")
    assert first["events"] == [] and "nextToken" in first  # a client stopping here sees nothing
    found, sizes = await read_all(logs, filterPattern="ERROR")
    assert [e["timestamp"] - t for e in found] == [299, 599, 899]
    assert sizes == [0, 0, 1, 0, 0, 1, 0, 0, 1, 0]
    assert fake_emulator.logs_service.filter_scanned >= 1_000

    # the fault knob: every 2nd page that has events comes back empty, with a
    # token from where that call began; following tokens loses nothing
    fake_emulator.faults = FaultConfig(filter_empty_page_every=2)
    events, sizes = await read_all(logs, limit=300)
    assert 0 in sizes
    assert [e["timestamp"] - t for e in events] == list(range(1_000))
    stopped_early: list[dict[str, Any]] = []
    params: dict[str, Any] = {"logGroupName": GROUP, "limit": 300}
    while True:
        page = await logs.filter_log_events(**params)
        if not page["events"]:
            break  # the mistake this emulates: an empty page is not the end
        stopped_early += page["events"]
        params["nextToken"] = page["nextToken"]
    assert len(stopped_early) < 1_000
    # even on every call, the page after an emptied one is not emptied: no loop
    fake_emulator.faults = FaultConfig(filter_empty_page_every=1)
    events, sizes = await read_all(logs, limit=400)
    assert sizes == [0, 400, 0, 400, 0, 200]
    assert [e["timestamp"] - t for e in events] == list(range(1_000))


async def test_a_token_resumes_after_the_streams_grew(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    logs = await aws_client("logs", fake_emulator)
    t = ms(fake_clock)
    store = fake_emulator.logs
    store.put(GROUP, "j/a", [(t + 1, "a1"), (t + 3, "a3")])
    store.put(GROUP, "j/b", [(t + 2, "b2")])
    first = await logs.filter_log_events(logGroupName=GROUP, limit=2)
    assert [e["message"] for e in first["events"]] == ["a1", "b2"]
    store.put(GROUP, "j/b", [(t + 4, "b4")])
    store.put(GROUP, "j/c", [(t + 2, "c2"), (t + 5, "c5")])  # c2 sorts after b2: still ahead
    store.put(GROUP, "j/a", [(t, "a0")])  # before the token's position: behind it
    rest, _ = await read_all(logs, nextToken=first["nextToken"])
    assert [e["message"] for e in rest] == ["c2", "a3", "b4", "c5"]
    code, message = await error_of(logs.filter_log_events, logGroupName=GROUP, nextToken="zz")
    assert (code, message) == ("InvalidParameterException", "The specified nextToken is invalid.")


async def test_reading_the_newest_events_of_100_streams_looks_only_at_them(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    logs = await aws_client("logs", fake_emulator)
    t = ms(fake_clock)
    streams = [f"job-{n:03d}/algo-1-1" for n in range(100)]
    for n, stream in enumerate(streams):
        lines = [(t + 10 * i + n % 10, f"{n}:{i}") for i in range(1_000)]
        fake_emulator.logs.put(GROUP, stream, lines)
    service = fake_emulator.logs_service
    before = service.filter_scanned
    # the newest 50 ms: 5 lines of each stream
    newest = await logs.filter_log_events(
        logGroupName=GROUP, logStreamNames=streams, startTime=t + 9_950
    )
    assert len(newest["events"]) == 500 and "nextToken" not in newest
    assert {e["message"].split(":")[1] for e in newest["events"]} == {
        "995", "996", "997", "998", "999"
    }
    timestamps = [e["timestamp"] for e in newest["events"]]
    assert timestamps == sorted(timestamps)
    # 100,000 events are stored; the call looked at the 500 it returned
    assert service.filter_scanned - before == 500
