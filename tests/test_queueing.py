"""Slots (max_parallel) and the capacity queues (ResourceLimitExceeded), on their own."""

from __future__ import annotations

import anyio
import pytest

from smrun.queueing import (
    Capacity,
    CapacityTimeout,
    NoCapacity,
    Slots,
    increase_hint,
    instance_types,
    quota_name,
)

MESSAGE = (
    "The account-level service limit 'ml.m5.large for training job usage' is 2 Instances, "
    "with current utilization of 2 Instances and a request delta of 1 Instances. Please use "
    "AWS Service Quotas to request an increase for this quota."
)


def test_the_quota_is_read_from_sagemaker_s_message() -> None:
    assert quota_name(MESSAGE) == "ml.m5.large for training job usage"
    assert quota_name("  something else  ") == "something else"
    assert "--service-code sagemaker" in increase_hint("ml.m5.large for training job usage")
    assert "QuotaName=='ml.m5.large for training job usage'" in increase_hint(
        "ml.m5.large for training job usage"
    )


def test_instance_types_are_found_however_deep() -> None:
    request = {
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        "ProductionVariants": [
            {"InstanceType": "ml.c5.xlarge"}, {"InstanceType": "ml.g4dn.xlarge"},
        ],
    }
    assert instance_types(request) == {"ml.m5.large", "ml.c5.xlarge", "ml.g4dn.xlarge"}
    assert instance_types({"ModelName": "m"}) == frozenset()


async def test_slots_are_never_exceeded_and_waiters_are_served_in_manifest_order() -> None:
    slots = Slots({"matrix:sweep": 2, "run": 3})
    started: list[int] = []
    running = 0
    peak = 0
    done = {order: anyio.Event() for order in range(6)}

    async def job(order: int) -> None:
        nonlocal running, peak
        async with slots.hold(order, ["run", "matrix:sweep"]):
            started.append(order)
            running += 1
            peak = max(peak, running)
            await done[order].wait()
            running -= 1

    async with anyio.create_task_group() as tg:
        for order in (5, 3, 4, 0, 1, 2):  # arrive out of order
            tg.start_soon(job, order)
            await anyio.wait_all_tasks_blocked()
        assert started == [5, 3]  # free slots go to whoever comes
        assert slots.waiting() == 4
        for order in (5, 3, 0, 1):
            done[order].set()
            await anyio.wait_all_tasks_blocked()
        assert started == [5, 3, 0, 1, 2, 4]  # the waiters in manifest order
        for event in done.values():
            event.set()
    assert peak == 2
    assert slots.peak["matrix:sweep"] == 2
    assert slots.used["run"] == 0


async def test_a_claim_that_does_not_fit_lets_one_needing_other_limits_pass() -> None:
    slots = Slots({"kind:training": 1, "run": 5})
    order: list[str] = []
    hold_first = anyio.Event()

    async def job(name: str, position: int, names: list[str]) -> None:
        async with slots.hold(position, names):
            order.append(name)
            if name == "train-a":
                await hold_first.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(job, "train-a", 0, ["run", "kind:training"])
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(job, "train-b", 1, ["run", "kind:training"])
        tg.start_soon(job, "transform", 2, ["run", "kind:transform"])
        await anyio.wait_all_tasks_blocked()
        assert order == ["train-a", "transform"]
        hold_first.set()
    assert order == ["train-a", "transform", "train-b"]


async def test_a_cancelled_waiter_gives_its_place_up() -> None:
    slots = Slots({"run": 1})
    got: list[str] = []
    gate = anyio.Event()

    async def job(name: str, position: int) -> None:
        async with slots.hold(position, ["run"]):
            got.append(name)
            await gate.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(job, "first", 0)
        await anyio.wait_all_tasks_blocked()
        with anyio.CancelScope() as scope:
            scope.cancel()
            await job("cancelled", 1)
        tg.start_soon(job, "third", 2)
        await anyio.wait_all_tasks_blocked()
        gate.set()
    assert got == ["first", "third"]
    assert slots.waiting() == 0 and slots.used["run"] == 0


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Slots({"run": 0})


async def test_one_job_ending_wakes_one_waiter_of_its_instance_type() -> None:
    capacity = Capacity(retry=60.0, deadline=60.0)
    capacity.started({"ml.m5.large"})
    capacity.started({"ml.m5.large"})
    woken: list[str] = []

    async def waiter(key: str) -> None:
        await capacity.wait(key, NoCapacity(MESSAGE))
        woken.append(key)

    async with anyio.create_task_group() as tg:
        for key in ("a", "b", "c"):
            tg.start_soon(waiter, key)
            await anyio.wait_all_tasks_blocked()
        capacity.ended({"ml.c5.xlarge"})  # another type frees nothing of this quota
        await anyio.wait_all_tasks_blocked()
        assert woken == []
        capacity.ended({"ml.m5.large"})
        await anyio.wait_all_tasks_blocked()
        assert woken == ["a"]  # one probe, in the order they were refused
        capacity.ended({"ml.m5.large"})
        await anyio.wait_all_tasks_blocked()
        assert woken == ["a", "b"]
        tg.cancel_scope.cancel()
    assert capacity.refusals == 3


async def test_refused_again_the_first_keeps_its_place_and_the_wake_is_spent() -> None:
    capacity = Capacity(retry=60.0, deadline=60.0)
    capacity.started({"ml.m5.large"})
    woken: list[str] = []

    async def waiter(key: str, again: bool = False) -> None:
        await capacity.wait(key, NoCapacity(MESSAGE), again=again)
        woken.append(key)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter, "a")
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(waiter, "b")
        await anyio.wait_all_tasks_blocked()
        capacity.ended({"ml.m5.large"})
        capacity.started({"ml.m5.large"})  # someone took it first: "a" is refused again
        await anyio.wait_all_tasks_blocked()
        assert woken == ["a"]
        tg.start_soon(waiter, "a", True)
        await anyio.wait_all_tasks_blocked()
        assert woken == ["a"]  # "b" did not get a turn: the end that woke "a" was spent
        capacity.ended({"ml.m5.large"})
        await anyio.wait_all_tasks_blocked()
        assert woken == ["a", "a"]
        tg.cancel_scope.cancel()


async def test_with_nothing_of_ours_holding_it_the_first_tries_again_after_a_backoff() -> None:
    capacity = Capacity(retry=0.05, retry_max=0.05, deadline=30.0)
    with anyio.fail_after(5):
        await capacity.wait("a", NoCapacity(MESSAGE))  # returns on its own: the backoff


async def test_no_job_ending_within_the_deadline_fails_the_wait() -> None:
    capacity = Capacity(retry=10.0, deadline=0.1)
    capacity.started({"ml.m5.large"})  # held by a job of ours that never ends
    with anyio.fail_after(5), pytest.raises(CapacityTimeout, match=r"ml\.m5\.large for training"):
        await capacity.wait("a", NoCapacity(MESSAGE))
    assert capacity.waiting() == 0


async def test_a_quota_naming_no_instance_type_is_freed_by_any_job() -> None:
    capacity = Capacity(retry=60.0, deadline=60.0)
    capacity.started({"ml.m5.large"})
    refused = NoCapacity("The account-level service limit 'Number of concurrent training "
                         "jobs' is 1, with current utilization of 1.")
    assert refused.quota == "Number of concurrent training jobs"
    done = anyio.Event()

    async def waiter() -> None:
        await capacity.wait("a", refused)
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        capacity.ended({"ml.m5.large"})
        with anyio.fail_after(5):
            await done.wait()


async def test_a_new_job_joins_the_line_behind_the_jobs_already_waiting() -> None:
    capacity = Capacity(retry=60.0, deadline=60.0)
    capacity.started({"ml.m5.large"})
    assert capacity.ahead({"ml.m5.large"}) is None  # nobody waits: it just tries
    order: list[str] = []

    async def refused_first() -> None:
        await capacity.wait("a", NoCapacity(MESSAGE))
        order.append("a")

    async def newcomer() -> None:
        ahead = capacity.ahead({"ml.m5.large"})
        assert ahead is not None and ahead.quota == "ml.m5.large for training job usage"
        await capacity.wait("b", ahead, counted=False)
        order.append("b")

    async with anyio.create_task_group() as tg:
        tg.start_soon(refused_first)
        await anyio.wait_all_tasks_blocked()
        assert capacity.ahead({"ml.c5.xlarge"}) is None  # another type is not in this line
        tg.start_soon(newcomer)
        await anyio.wait_all_tasks_blocked()
        capacity.ended({"ml.m5.large"})
        await anyio.wait_all_tasks_blocked()
        assert order == ["a"]
        capacity.ended({"ml.m5.large"})
        await anyio.wait_all_tasks_blocked()
        assert order == ["a", "b"]
    assert capacity.refusals == 1  # only SageMaker's answer counts
