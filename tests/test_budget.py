"""Shared API rate budgets: pure decisions, then Budgets on a fake clock."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import anyio
import anyio.lowlevel
import pytest

from smrun.budget import (
    Budgets,
    decrease,
    family_of,
    recover,
    refill,
    wait_time,
)


class FakeTime:
    """A clock that moves only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds
        await anyio.lowlevel.checkpoint()


def budgets(time: FakeTime, **kwargs: object) -> Budgets:
    return Budgets(clock=time.clock, sleep=time.sleep, **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- decisions


@pytest.mark.parametrize(
    ("service", "operation", "family"),
    [
        ("sagemaker", "DescribeTrainingJob", "sagemaker.describe"),
        ("sagemaker", "ListTrainingJobs", "sagemaker.list"),
        ("sagemaker", "ListTrainingJobsForHyperParameterTuningJob", "sagemaker.list"),
        ("sagemaker", "CreateTrainingJob", "sagemaker.create"),
        ("sagemaker", "UpdateEndpoint", "sagemaker.create"),
        ("sagemaker", "DeleteEndpoint", "sagemaker.create"),
        ("sagemaker", "StopTransformJob", "sagemaker.create"),
        ("sagemaker", "AddTags", "sagemaker.other"),
        ("logs", "GetLogEvents", "logs.get"),
        ("logs", "DescribeLogStreams", "logs.describe"),
        ("logs", "FilterLogEvents", "logs.filter"),
        ("logs", "DescribeLogGroups", "logs.other"),
        ("sqs", "ReceiveMessage", "sqs.receive"),
        ("sqs", "DeleteMessageBatch", "sqs.other"),
        ("events", "PutTargets", "events.other"),
    ],
)
def test_operations_map_to_their_quota_family(service: str, operation: str, family: str) -> None:
    assert family_of(service, operation) == family


def test_refill_adds_rate_times_elapsed_up_to_the_burst() -> None:
    assert refill(0.0, 20.0, 0.1, 20.0) == pytest.approx(2.0)
    assert refill(19.5, 20.0, 1.0, 20.0) == 20.0
    # a clock that steps back must not drain the bucket
    assert refill(3.0, 20.0, -5.0, 20.0) == 3.0


def test_wait_time_is_the_time_to_one_whole_token() -> None:
    assert wait_time(1.0, 2.0) == 0.0
    assert wait_time(0.0, 2.0) == pytest.approx(0.5)
    assert wait_time(-1.0, 2.0) == pytest.approx(1.0)
    assert wait_time(0.0, math.inf) == 0.0


def test_aimd_halves_down_to_a_floor_and_climbs_back_linearly() -> None:
    assert decrease(20.0, floor=1.0) == 10.0
    assert decrease(1.5, floor=1.0) == 1.0
    assert recover(10.0, 20.0, elapsed=2.0, per_second=1.0) == 12.0
    assert recover(19.0, 20.0, elapsed=5.0, per_second=1.0) == 20.0


# ---------------------------------------------------------------- Budgets


async def test_a_burst_is_free_then_calls_are_spaced_at_the_rate() -> None:
    time = FakeTime()
    b = budgets(time, region="us-east-1")  # GetLogEvents: 25 TPS there, a budget of 20
    for _ in range(20):
        await b.acquire("logs", "GetLogEvents")
    assert time.now == 0.0
    for _ in range(20):
        await b.acquire("logs", "GetLogEvents")
    assert time.now == pytest.approx(1.0)
    stats = b.stats()["logs.get"]
    assert stats.acquired == 40
    assert stats.wait_seconds == pytest.approx(1.0)


async def test_no_second_holds_more_calls_than_the_rate_even_with_saved_tokens() -> None:
    # AWS counts calls per second: the bucket's five saved create tokens are
    # spent two a second, never five at once
    time = FakeTime()
    b = budgets(time)
    let_go: list[float] = []
    for _ in range(5):
        await b.acquire("sagemaker", "CreateTrainingJob")
        let_go.append(time.now)
    assert let_go == pytest.approx([0.0, 0.0, 1.0, 1.0, 2.0])
    time.now = 30.0  # long idle: the bucket is full again
    for _ in range(8):
        await b.acquire("sagemaker", "StopTrainingJob")
        let_go.append(time.now)
    per_second = Counter(int(t + 1e-9) for t in let_go)
    assert max(per_second.values()) == 2


async def test_families_do_not_share_tokens() -> None:
    time = FakeTime()
    b = budgets(time, rates={"sagemaker.list": 1.0})
    await b.acquire("sagemaker", "ListTrainingJobs")
    await b.acquire("sagemaker", "DescribeTrainingJob")
    assert time.now == 0.0
    await b.acquire("sagemaker", "ListProcessingJobs")
    assert time.now == pytest.approx(1.0)


async def test_waiters_are_served_in_turn_so_no_job_starves() -> None:
    time = FakeTime()
    b = budgets(time, rates={"sagemaker.describe": 1.0})
    owners: list[str] = []

    async def job(name: str) -> None:
        for _ in range(6):
            await b.acquire("sagemaker", "DescribeTrainingJob")
            owners.append(name)

    async with anyio.create_task_group() as tg:
        for name in "ABC":
            tg.start_soon(job, name)
    assert len(owners) == 18
    # once all three are queued, nobody gets two tokens in a row
    settled = owners[2:-2]
    assert all(a != b for a, b in itertools.pairwise(settled)), owners
    assert time.now == pytest.approx(17.0)


async def test_throttling_halves_the_rate_once_per_cooldown_and_it_recovers() -> None:
    time = FakeTime()
    b = budgets(time, region="us-east-1")
    assert b.rate("logs", "GetLogEvents") == 20.0
    b.throttled("logs", "GetLogEvents")
    b.throttled("logs", "GetLogEvents")  # same burst of errors: one cut
    assert b.rate("logs", "GetLogEvents") == pytest.approx(10.0)
    time.now += b.decrease_cooldown
    b.throttled("logs", "GetLogEvents")
    # 10, plus 1 s of recovery at 1/s, then halved
    assert b.rate("logs", "GetLogEvents") == pytest.approx(5.5)
    for _ in range(10):
        time.now += b.decrease_cooldown
        b.throttled("logs", "GetLogEvents")
    assert b.rate("logs", "GetLogEvents") >= 1.0  # the floor
    time.now += 60.0
    assert b.rate("logs", "GetLogEvents") == 20.0
    stats = b.stats()["logs.get"]
    assert stats.throttled == 13
    assert stats.max_rate == 20.0


async def test_throttling_spends_no_saved_burst() -> None:
    time = FakeTime()
    b = budgets(time)
    b.throttled("logs", "DescribeLogStreams")
    # the bucket was full (4 tokens in an unknown region), but after a throttle
    # the next call waits
    await b.acquire("logs", "DescribeLogStreams")
    assert time.now > 0.0


async def test_throttling_slows_acquisition_down() -> None:
    time = FakeTime()
    b = budgets(time, rates={"sagemaker.describe": 10.0}, bursts={"sagemaker.describe": 1.0})
    for _ in range(11):
        await b.acquire("sagemaker", "DescribeTrainingJob")
    unthrottled = time.now
    b.throttled("sagemaker", "DescribeTrainingJob")
    start = time.now
    for _ in range(10):
        await b.acquire("sagemaker", "DescribeTrainingJob")
    assert time.now - start > 1.5 * unthrottled


async def test_an_unlimited_family_never_waits() -> None:
    time = FakeTime()
    b = budgets(time, rates={"logs.get": math.inf})
    for _ in range(1000):
        await b.acquire("logs", "GetLogEvents")
    b.throttled("logs", "GetLogEvents")
    assert time.now == 0.0
    assert b.stats()["logs.get"].acquired == 1000


async def test_a_cancelled_waiter_takes_no_token() -> None:
    time = FakeTime()
    b = budgets(time, rates={"sagemaker.list": 1.0})
    await b.acquire("sagemaker", "ListTrainingJobs")

    async def never_wakes(seconds: float) -> None:
        await anyio.sleep_forever()

    b._sleep = never_wakes
    with anyio.move_on_after(0.01):
        await b.acquire("sagemaker", "ListTrainingJobs")
    b._sleep = time.sleep
    assert b.stats()["sagemaker.list"].acquired == 1
    await b.acquire("sagemaker", "ListTrainingJobs")
    assert b.stats()["sagemaker.list"].acquired == 2
