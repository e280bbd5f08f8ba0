"""The emulated CloudWatch Logs: AWS semantics, pagination, tokens and faults."""

from __future__ import annotations

import time
from typing import Any

from smrun.emulator import Emulator, FakeClock, FaultConfig
from tests.helpers import error_of

GROUP = "/aws/sagemaker/TrainingJobs"


def ms(clock: FakeClock) -> int:
    return int(clock.now * 1000)


async def read_all_forward(logs: Any, stream: str, **extra: Any) -> tuple[list[str], int]:
    """Follow forward tokens until one comes back unchanged; (messages, calls)."""
    messages: list[str] = []
    token: str | None = None
    calls = 0
    while True:
        params: dict[str, Any] = {"logGroupName": GROUP, "logStreamName": stream, **extra}
        if token is None:
            params["startFromHead"] = True
        else:
            params["nextToken"] = token
        page = await logs.get_log_events(**params)
        calls += 1
        messages += [e["message"] for e in page["events"]]
        if page["nextForwardToken"] == token:
            return messages, calls
        token = page["nextForwardToken"]


async def test_group_and_stream_creation_errors(fake_emulator: Emulator, aws_client: Any) -> None:
    logs = await aws_client("logs", fake_emulator)
    await logs.create_log_group(logGroupName="g")
    assert await error_of(logs.create_log_group, logGroupName="g") == (
        "ResourceAlreadyExistsException",
        "The specified log group already exists",
    )
    assert (await error_of(logs.create_log_stream, logGroupName="nope", logStreamName="s"))[0] == (
        "ResourceNotFoundException"
    )
    await logs.create_log_stream(logGroupName="g", logStreamName="s")
    code, _ = await error_of(logs.create_log_stream, logGroupName="g", logStreamName="s")
    assert code == "ResourceAlreadyExistsException"


async def test_put_log_events_order_and_tokens(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    logs = await aws_client("logs", fake_emulator)
    await logs.create_log_group(logGroupName=GROUP)
    await logs.create_log_stream(logGroupName=GROUP, logStreamName="s")
    now = ms(fake_clock)
    code, message = await error_of(
        logs.put_log_events,
        logGroupName=GROUP,
        logStreamName="s",
        logEvents=[{"timestamp": now, "message": "b"}, {"timestamp": now - 1, "message": "a"}],
    )
    assert code == "InvalidParameterException"
    assert "chronological order" in message
    assert fake_emulator.logs.events(GROUP, "s") == []

    first = await logs.put_log_events(
        logGroupName=GROUP, logStreamName="s", logEvents=[{"timestamp": now, "message": "a"}]
    )
    second = await logs.put_log_events(
        logGroupName=GROUP, logStreamName="s", logEvents=[{"timestamp": now, "message": "b"}]
    )
    assert first["nextSequenceToken"] != second["nextSequenceToken"]

    old, new = now - 15 * 24 * 3600 * 1000, now + 3 * 3600 * 1000
    too_old = await logs.put_log_events(
        logGroupName=GROUP,
        logStreamName="s",
        logEvents=[{"timestamp": old, "message": "old"}, {"timestamp": old + 1, "message": "old"}],
    )
    assert too_old["rejectedLogEventsInfo"] == {"tooOldLogEventEndIndex": 2}
    too_new = await logs.put_log_events(
        logGroupName=GROUP,
        logStreamName="s",
        logEvents=[{"timestamp": now, "message": "c"}, {"timestamp": new, "message": "new"}],
    )
    assert too_new["rejectedLogEventsInfo"] == {"tooNewLogEventStartIndex": 1}
    assert [e.message for e in fake_emulator.logs.events(GROUP, "s")] == ["a", "b", "c"]

    code, message = await error_of(
        logs.put_log_events,
        logGroupName=GROUP,
        logStreamName="s",
        logEvents=[{"timestamp": old, "message": "x"}, {"timestamp": now, "message": "y"}],
    )
    assert code == "InvalidParameterException"
    assert "24 hours" in message

    code, message = await error_of(
        logs.put_log_events,
        logGroupName=GROUP,
        logStreamName="missing",
        logEvents=[{"timestamp": now, "message": "x"}],
    )
    assert (code, message) == (
        "ResourceNotFoundException",
        "The specified log stream does not exist.",
    )


async def test_get_log_events_end_is_an_unchanged_token(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    logs = await aws_client("logs", fake_emulator)
    now = ms(fake_clock)
    fake_emulator.logs.put(GROUP, "s", [(now + i, f"m{i}") for i in range(5)])
    page = await logs.get_log_events(logGroupName=GROUP, logStreamName="s", startFromHead=True)
    assert [e["message"] for e in page["events"]] == [f"m{i}" for i in range(5)]
    assert page["events"][0]["ingestionTime"] == now
    forward = page["nextForwardToken"]
    assert forward.startswith("f/")
    assert page["nextBackwardToken"].startswith("b/")

    again = await logs.get_log_events(logGroupName=GROUP, logStreamName="s", nextToken=forward)
    assert again["events"] == []
    assert again["nextForwardToken"] == forward

    fake_emulator.logs.put(GROUP, "s", [(now + 10, "later")])
    more = await logs.get_log_events(logGroupName=GROUP, logStreamName="s", nextToken=forward)
    assert [e["message"] for e in more["events"]] == ["later"]
    assert more["nextForwardToken"] != forward


async def test_get_log_events_without_start_from_head_reads_the_tail(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    logs = await aws_client("logs", fake_emulator)
    now = ms(fake_clock)
    fake_emulator.logs.put(GROUP, "s", [(now + i, f"m{i}") for i in range(10)])
    tail = await logs.get_log_events(logGroupName=GROUP, logStreamName="s", limit=3)
    assert [e["message"] for e in tail["events"]] == ["m7", "m8", "m9"]
    back = await logs.get_log_events(
        logGroupName=GROUP, logStreamName="s", nextToken=tail["nextBackwardToken"], limit=3
    )
    assert [e["message"] for e in back["events"]] == ["m4", "m5", "m6"]
    ahead = await logs.get_log_events(
        logGroupName=GROUP, logStreamName="s", nextToken=tail["nextForwardToken"]
    )
    assert ahead["events"] == []
    assert ahead["nextForwardToken"] == tail["nextForwardToken"]


async def test_get_log_events_identifier_and_missing_resources(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    logs = await aws_client("logs", fake_emulator)
    fake_emulator.logs.put(GROUP, "s", [(ms(fake_clock), "hello")])
    arn = f"arn:aws:logs:us-east-1:123456789012:log-group:{GROUP}"
    for identifier in (arn, GROUP):
        page = await logs.get_log_events(
            logGroupIdentifier=identifier, logStreamName="s", startFromHead=True
        )
        assert [e["message"] for e in page["events"]] == ["hello"]
    assert await error_of(logs.get_log_events, logGroupName="nope", logStreamName="s") == (
        "ResourceNotFoundException",
        "The specified log group does not exist.",
    )
    assert await error_of(logs.get_log_events, logGroupName=GROUP, logStreamName="nope") == (
        "ResourceNotFoundException",
        "The specified log stream does not exist.",
    )
    code, _ = await error_of(
        logs.get_log_events, logGroupName=GROUP, logGroupIdentifier=arn, logStreamName="s"
    )
    assert code == "InvalidParameterException"


async def test_token_of_another_stream_is_invalid(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    logs = await aws_client("logs", fake_emulator)
    fake_emulator.logs.put(GROUP, "a", [(ms(fake_clock), "x")])
    fake_emulator.logs.put(GROUP, "b", [(ms(fake_clock), "y")])
    page = await logs.get_log_events(logGroupName=GROUP, logStreamName="a", startFromHead=True)
    code, message = await error_of(
        logs.get_log_events,
        logGroupName=GROUP,
        logStreamName="b",
        nextToken=page["nextForwardToken"],
    )
    assert (code, message) == ("InvalidParameterException", "The specified nextToken is invalid.")
    code, _ = await error_of(
        logs.get_log_events, logGroupName=GROUP, logStreamName="b", nextToken="f/garbage"
    )
    assert code == "InvalidParameterException"


async def test_large_stream_pages_by_limit_and_size(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    logs = await aws_client("logs", fake_emulator)
    now = ms(fake_clock)
    fake_emulator.logs.put(GROUP, "big", [(now, f"event {i}") for i in range(100_000)])
    started = time.perf_counter()
    messages, calls = await read_all_forward(logs, "big")
    elapsed = time.perf_counter() - started
    assert messages == [f"event {i}" for i in range(100_000)]
    assert calls == 11  # ten full pages of 10,000, then the unchanged token
    assert elapsed < 20  # generous: a page costs O(page), never O(stream)

    fat = "x" * 100_000
    fake_emulator.logs.put(GROUP, "fat", [(now, fat)] * 25)
    page = await logs.get_log_events(logGroupName=GROUP, logStreamName="fat", startFromHead=True)
    assert len(page["events"]) == 10  # 1 MB a page, counting 26 bytes of overhead each


async def test_page_cost_does_not_grow_with_the_stream(fake_clock: FakeClock) -> None:
    emu = Emulator(clock=fake_clock)
    service = emu.logs_service
    stream = emu.logs.put(GROUP, "s", [(0, "m")] * 200_000)
    token = f"f/{199_990:020d}{stream.uid:020d}{0:016d}/s"

    class Counting(list[Any]):
        reads = 0

        def __getitem__(self, index: Any) -> Any:
            Counting.reads += 1
            return super().__getitem__(index)

    stream.events = Counting(stream.events)
    page = service.get_log_events({"logGroupName": GROUP, "logStreamName": "s", "nextToken": token})
    assert len(page["events"]) == 10
    assert Counting.reads <= 20


async def test_empty_page_fault_advances_nothing_but_changes_the_token(
    fake_clock: FakeClock, aws_client: Any
) -> None:
    async with Emulator(clock=fake_clock, faults=FaultConfig(empty_page_every=2)) as emu:
        logs = await aws_client("logs", emu)
        emu.logs.put(GROUP, "s", [(ms(fake_clock) + i, f"m{i}") for i in range(30)])
        first = await logs.get_log_events(
            logGroupName=GROUP, logStreamName="s", startFromHead=True, limit=10
        )
        assert len(first["events"]) == 10
        empty = await logs.get_log_events(
            logGroupName=GROUP, logStreamName="s", nextToken=first["nextForwardToken"], limit=10
        )
        assert empty["events"] == []
        assert empty["nextForwardToken"] != first["nextForwardToken"]
        # A reader that follows tokens until one repeats still gets every event once.
        messages = [e["message"] for e in first["events"]]
        token = empty["nextForwardToken"]
        while True:
            page = await logs.get_log_events(
                logGroupName=GROUP, logStreamName="s", nextToken=token, limit=10
            )
            messages += [e["message"] for e in page["events"]]
            if page["nextForwardToken"] == token:
                break
            token = page["nextForwardToken"]
        assert messages == [f"m{i}" for i in range(30)]


async def test_describe_log_streams_paginates_by_prefix(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    logs = await aws_client("logs", fake_emulator)
    names = [f"job-1/algo-{i:03d}" for i in range(120)] + ["job-10/algo-1", "job-2/algo-1"]
    for name in names:
        fake_emulator.logs.put(GROUP, name, [(ms(fake_clock), name)])
    seen: list[str] = []
    pages = 0
    params: dict[str, Any] = {"logGroupName": GROUP, "logStreamNamePrefix": "job-1/"}
    while True:
        page = await logs.describe_log_streams(**params)
        pages += 1
        assert len(page["logStreams"]) <= 50
        seen += [s["logStreamName"] for s in page["logStreams"]]
        if "nextToken" not in page:
            break
        params["nextToken"] = page["nextToken"]
    assert pages == 3
    assert seen == sorted(names[:120])

    descending = await logs.describe_log_streams(
        logGroupName=GROUP, logStreamNamePrefix="job-1", descending=True, limit=2
    )
    assert [s["logStreamName"] for s in descending["logStreams"]] == [
        "job-10/algo-1",
        "job-1/algo-119",
    ]
    stream = descending["logStreams"][0]
    assert set(stream) >= {
        "logStreamName",
        "creationTime",
        "firstEventTimestamp",
        "lastEventTimestamp",
        "lastIngestionTime",
        "arn",
        "storedBytes",
    }
    assert stream["arn"] == (
        f"arn:aws:logs:us-east-1:123456789012:log-group:{GROUP}:log-stream:job-10/algo-1"
    )


async def test_describe_log_streams_errors_and_last_event_order(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    logs = await aws_client("logs", fake_emulator, validate=False)
    now = ms(fake_clock)
    fake_emulator.logs.put(GROUP, "late", [(now + 50, "x")])
    fake_emulator.logs.put(GROUP, "early", [(now + 10, "x")])
    fake_emulator.logs.put(GROUP, "middle", [(now + 30, "x")])
    code, message = await error_of(
        logs.describe_log_streams,
        logGroupName=GROUP,
        logStreamNamePrefix="a",
        orderBy="LastEventTime",
    )
    assert (code, message) == (
        "InvalidParameterException",
        "Cannot order by LastEventTime with a logStreamNamePrefix.",
    )
    code, message = await error_of(logs.describe_log_streams, logGroupName=GROUP, limit=51)
    # CloudWatch Logs words constraint violations as InvalidParameterException
    assert code == "InvalidParameterException"
    assert "Member must have value less than or equal to 50" in message
    code, _ = await error_of(logs.describe_log_streams, logGroupName="nope")
    assert code == "ResourceNotFoundException"

    latest_first = await logs.describe_log_streams(
        logGroupName=GROUP, orderBy="LastEventTime", descending=True, limit=2
    )
    assert [s["logStreamName"] for s in latest_first["logStreams"]] == ["late", "middle"]
    rest = await logs.describe_log_streams(
        logGroupName=GROUP,
        orderBy="LastEventTime",
        descending=True,
        nextToken=latest_first["nextToken"],
    )
    assert [s["logStreamName"] for s in rest["logStreams"]] == ["early"]
    assert "nextToken" not in rest


async def test_filter_log_events(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    logs = await aws_client("logs", fake_emulator)
    now = ms(fake_clock)
    fake_emulator.logs.put(GROUP, "job/a", [(now + 0, "ERROR disk full"), (now + 2, "ok a")])
    fake_emulator.logs.put(GROUP, "job/b", [(now + 1, "warning: slow"), (now + 3, "ERROR again")])
    fake_emulator.logs.put(GROUP, "other/c", [(now + 4, "ERROR elsewhere")])

    page = await logs.filter_log_events(
        logGroupName=GROUP, logStreamNamePrefix="job/", filterPattern="ERROR"
    )
    assert [(e["logStreamName"], e["message"]) for e in page["events"]] == [
        ("job/a", "ERROR disk full"),
        ("job/b", "ERROR again"),
    ]
    assert len({e["eventId"] for e in page["events"]}) == 2

    quoted = await logs.filter_log_events(logGroupName=GROUP, filterPattern='"disk full"')
    assert [e["message"] for e in quoted["events"]] == ["ERROR disk full"]

    named = await logs.filter_log_events(
        logGroupName=GROUP, logStreamNames=["job/b"], startTime=now + 2, endTime=now + 3
    )
    assert [e["message"] for e in named["events"]] == ["ERROR again"]

    collected: list[str] = []
    params: dict[str, Any] = {"logGroupName": GROUP, "limit": 2}
    while True:
        result = await logs.filter_log_events(**params)
        collected += [e["message"] for e in result["events"]]
        if "nextToken" not in result:
            break
        params["nextToken"] = result["nextToken"]
    assert collected == [
        "ERROR disk full",
        "warning: slow",
        "ok a",
        "ERROR again",
        "ERROR elsewhere",
    ]

    code, _ = await error_of(
        logs.filter_log_events, logGroupName=GROUP, logStreamNames=["x"], logStreamNamePrefix="j"
    )
    assert code == "InvalidParameterException"
