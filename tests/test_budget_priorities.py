"""Budgets by priority and by region: who is served first, how long the less
urgent wait, what a cancelled waiter leaves behind, how big each budget is in
each region, and what the account's Service Quotas say. All on fake clocks."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
import botocore.session
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from anyio.abc import TaskGroup
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st

from smrun.budget import (
    DEFAULT_RATES,
    HEADROOM,
    OTHER_RATE,
    Budgets,
    Priority,
    default_rates,
    precedence,
    quota_family,
    quota_rate,
    quotas_from_service_quotas,
    rates_from_quotas,
)
from tests.test_budget import FakeTime, budgets

FAMILY = ("sagemaker", "DescribeTrainingJob")


class ManualTime:
    """A clock that moves only when the test moves it; a sleeper wakes once
    the clock has passed its deadline."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, anyio.Event]] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        wake = anyio.Event()
        self._sleepers.append((self.now + seconds, wake))
        await wake.wait()

    def wake_due(self) -> None:
        due = [s for s in self._sleepers if s[0] <= self.now + 1e-9]
        self._sleepers = [s for s in self._sleepers if s not in due]
        for _, wake in due:
            wake.set()

    async def run_until(self, until: float, step: float = 0.25) -> None:
        """Move the clock in steps, letting every task run as far as it can at each."""
        await anyio.wait_all_tasks_blocked()
        while self.now < until - 1e-9:
            self.now = min(until, self.now + step)
            self.wake_due()
            await anyio.wait_all_tasks_blocked()


def manual(time: ManualTime, **kwargs: Any) -> Budgets:
    return Budgets(rates={"sagemaker.describe": 1.0}, clock=time.clock, sleep=time.sleep, **kwargs)


def queue(
    tg: TaskGroup,
    b: Budgets,
    time: ManualTime,
    name: str,
    priority: Priority,
    served: list[tuple[str, float]],
) -> anyio.CancelScope:
    """Start a caller that waits for one token and notes when it got it."""
    scope = anyio.CancelScope()

    async def caller() -> None:
        with scope:
            await b.acquire(*FAMILY, priority)
            served.append((name, time.now))

    tg.start_soon(caller)
    return scope


# ---------------------------------------------------------------- sizes by region


@pytest.mark.parametrize(
    ("region", "get", "filter_", "describe"),
    [
        ("us-east-1", 20.0, 20.0, 20.0),
        ("us-east-2", 20.0, 8.0, 20.0),
        ("us-west-2", 8.0, 8.0, 20.0),
        ("eu-west-1", 8.0, 8.0, 20.0),
        ("eu-central-1", 8.0, 4.0, 20.0),
        ("eu-west-3", 24.0, 8.0, 20.0),
        ("ap-northeast-3", 8.0, 4.0, 20.0),
        ("il-central-1", 8.0, 4.0, 20.0),
        ("ap-southeast-2", 20.0, 8.0, 20.0),
        # no published numbers: the smallest ones
        ("cn-north-1", 8.0, 4.0, 4.0),
        ("us-gov-west-1", 8.0, 4.0, 4.0),
        ("xx-nowhere-9", 8.0, 4.0, 4.0),
        (None, 8.0, 4.0, 4.0),
    ],
)
def test_logs_budgets_are_80_percent_of_the_regions_quotas(
    region: str | None, get: float, filter_: float, describe: float
) -> None:
    rates = default_rates(region)
    assert (rates["logs.get"], rates["logs.filter"], rates["logs.describe"]) == (
        get,
        filter_,
        describe,
    )


def logs_regions() -> list[str]:
    return sorted(botocore.session.get_session().get_available_regions("logs"))


@pytest.mark.parametrize("region", logs_regions())
def test_no_region_botocore_knows_gets_less_than_an_unknown_one_nor_more_than_any_quota(
    region: str,
) -> None:
    rates = default_rates(region)
    assert rates.keys() == DEFAULT_RATES.keys()
    for family in ("logs.get", "logs.filter", "logs.describe"):
        assert DEFAULT_RATES[family] <= rates[family] <= HEADROOM * 30.0


def test_the_conservative_table_is_the_one_without_a_region() -> None:
    assert default_rates(None) == DEFAULT_RATES
    assert Budgets().rate("logs", "GetLogEvents") == DEFAULT_RATES["logs.get"]
    assert Budgets(region="eu-west-3").rate("logs", "GetLogEvents") == 24.0


@pytest.mark.parametrize(
    ("service", "operation", "rate"),
    [
        ("sqs", "ReceiveMessage", 10.0),
        ("sqs", "DeleteMessageBatch", 20.0),
        ("sqs", "GetQueueAttributes", 20.0),
        ("events", "PutRule", 10.0),
        ("events", "PutTargets", 10.0),
        ("sagemaker", "ListTrainingJobs", 2.0),
        ("sagemaker", "DescribeTrainingJob", 20.0),
    ],
)
def test_queue_and_event_calls_have_budgets_of_their_own(
    service: str, operation: str, rate: float
) -> None:
    assert Budgets(region="us-east-1").rate(service, operation) == rate
    assert rate != OTHER_RATE


# ---------------------------------------------------------------- precedence


def test_a_more_urgent_waiter_overtakes_only_those_that_arrived_shortly_before() -> None:
    aging = 10.0
    live_at_0 = precedence(Priority.LIVE, 0.0, aging)
    assert precedence(Priority.FINISH, 5.0, aging) < live_at_0
    assert precedence(Priority.FINISH, 11.0, aging) > live_at_0
    assert precedence(Priority.DISCOVER, 0.0, aging) > precedence(Priority.FINISH, 19.0, aging)
    # strict priority: arriving first never helps the less urgent
    assert precedence(Priority.FINISH, 1e9, math.inf) < precedence(Priority.DISCOVER, 0.0, math.inf)


times = st.floats(min_value=0.0, max_value=1e5, allow_nan=False)


@given(st.sampled_from(Priority), times, times)
def test_within_one_priority_the_first_to_arrive_goes_first(
    priority: Priority, a: float, b: float
) -> None:
    for aging in (10.0, math.inf):
        if a < b:
            assert precedence(priority, a, aging) < precedence(priority, b, aging)


@given(st.sampled_from(Priority), times, st.sampled_from(Priority), times)
def test_precedence_is_a_priority_that_improves_a_level_per_aging_seconds_waited(
    p1: Priority, t1: float, p2: Priority, t2: float
) -> None:
    aging, now = 10.0, 2e5  # any moment after both arrived

    def effective(p: Priority, t: float) -> float:
        return p - (now - t) / aging

    e1, e2 = effective(p1, t1), effective(p2, t2)
    if abs(e1 - e2) > 1e-6:
        assert (precedence(p1, t1, aging) < precedence(p2, t2, aging)) == (e1 < e2)


# ---------------------------------------------------------------- served by priority


async def test_waiters_are_served_most_urgent_first_and_in_turn_within_a_priority() -> None:
    time = ManualTime()
    b = manual(time)
    await b.acquire(*FAMILY)  # the one token of the burst
    served: list[tuple[str, float]] = []
    async with anyio.create_task_group() as tg:
        for name, priority in [
            ("discover", Priority.DISCOVER),
            ("live-a", Priority.LIVE),
            ("finish", Priority.FINISH),
            ("live-b", Priority.LIVE),
        ]:
            queue(tg, b, time, name, priority, served)
        await time.run_until(5.0)
    assert served == [("finish", 1.0), ("live-a", 2.0), ("live-b", 3.0), ("discover", 4.0)]


async def test_a_more_urgent_caller_arriving_during_the_wait_takes_the_next_token() -> None:
    time = ManualTime()
    b = manual(time)
    await b.acquire(*FAMILY)
    served: list[tuple[str, float]] = []
    async with anyio.create_task_group() as tg:
        queue(tg, b, time, "discover", Priority.DISCOVER, served)
        await time.run_until(0.5)  # discover is asleep until 1.0 for the next token
        queue(tg, b, time, "finish", Priority.FINISH, served)
        await time.run_until(3.0)
    assert served == [("finish", 1.0), ("discover", 2.0)]


async def live_load_delays_rediscovery(aging: float) -> tuple[float, float, float]:
    """Three jobs read live as fast as the budget allows (60 reads each) while
    one rediscovery is asked for after a few seconds: (asked, served, when the
    live load ended)."""
    time = FakeTime()
    b = budgets(time, rates={"logs.describe": 1.0}, aging=aging)
    at: dict[str, float] = {}

    async def rediscover() -> None:
        at["asked"] = time.now
        await b.acquire("logs", "DescribeLogStreams", Priority.DISCOVER)
        at["served"] = time.now

    async def live_reader(tg: TaskGroup, starts_rediscovery: bool) -> None:
        for n in range(60):
            await b.acquire("logs", "DescribeLogStreams", Priority.LIVE)
            if starts_rediscovery and n == 4:
                tg.start_soon(rediscover)
        at["live_done"] = time.now

    async with anyio.create_task_group() as tg:
        for i in range(3):
            tg.start_soon(live_reader, tg, i == 0)
    assert b.stats()["logs.describe"].acquired == 181
    return at["asked"], at["served"], at["live_done"]


async def test_under_constant_live_load_rediscovery_is_late_by_the_aging_time_not_starved() -> None:
    asked, served, live_done = await live_load_delays_rediscovery(aging=10.0)
    # behind the live reads already queued (three, at one a second) and those
    # that arrive within the aging time after it
    assert 10.0 <= served - asked <= 10.0 + 3.0 + 1.0
    assert served < live_done - 100.0


async def test_without_aging_rediscovery_waits_as_long_as_live_load_lasts() -> None:
    asked, served, live_done = await live_load_delays_rediscovery(aging=math.inf)
    assert served - asked > 150.0
    assert served >= live_done


# ---------------------------------------------------------------- cancellation


async def test_a_cancelled_waiter_leaves_the_queue_and_the_rest_keep_their_times() -> None:
    time = ManualTime()
    b = manual(time)
    await b.acquire(*FAMILY)
    served: list[tuple[str, float]] = []
    async with anyio.create_task_group() as tg:
        queue(tg, b, time, "a", Priority.LIVE, served)
        middle = queue(tg, b, time, "b", Priority.LIVE, served)
        queue(tg, b, time, "c", Priority.LIVE, served)
        await time.run_until(0.5)
        middle.cancel()
        await time.run_until(4.0)
    assert served == [("a", 1.0), ("c", 2.0)]
    stats = b.stats()["sagemaker.describe"]
    assert (stats.acquired, stats.waiting) == (3, 0)


async def test_cancelling_the_caller_asleep_for_the_next_token_hands_that_token_on() -> None:
    time = ManualTime()
    b = manual(time)
    await b.acquire(*FAMILY)
    served: list[tuple[str, float]] = []
    async with anyio.create_task_group() as tg:
        first = queue(tg, b, time, "first", Priority.FINISH, served)
        queue(tg, b, time, "next", Priority.DISCOVER, served)
        await time.run_until(0.5)
        first.cancel()
        await time.run_until(3.0)
    # at 1.0, not before (no token made up) and not after (none lost)
    assert served == [("next", 1.0)]


async def test_a_waiter_cancelled_just_as_its_turn_comes_passes_the_turn_on() -> None:
    time = ManualTime()
    b = manual(time)
    await b.acquire(*FAMILY)
    served: list[tuple[str, float]] = []
    async with anyio.create_task_group() as tg:
        queue(tg, b, time, "a", Priority.LIVE, served)
        second = queue(tg, b, time, "b", Priority.LIVE, served)
        queue(tg, b, time, "c", Priority.LIVE, served)
        await time.run_until(0.75)
        time.now = 1.0
        time.wake_due()  # a takes its token and wakes b ...
        second.cancel()  # ... which is cancelled before it runs
        await time.run_until(4.0)
    assert served == [("a", 1.0), ("c", 2.0)]
    assert b.stats()["sagemaker.describe"].waiting == 0


arrivals = st.tuples(st.just("arrive"), st.sampled_from(Priority))
cancels = st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=20))
ticks = st.tuples(st.just("tick"), st.sampled_from([0.25, 0.5, 1.0]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(arrivals, cancels, ticks), max_size=30))
async def test_cancellations_anywhere_never_make_up_lose_or_wedge_a_token(
    steps: list[tuple[str, Any]],
) -> None:
    time = ManualTime()
    rate = burst = 2.0
    b = Budgets(
        rates={"sagemaker.describe": rate},
        bursts={"sagemaker.describe": burst},
        clock=time.clock,
        sleep=time.sleep,
    )
    served: list[tuple[str, float]] = []
    scopes: list[anyio.CancelScope] = []
    cancelled: set[str] = set()
    async with anyio.create_task_group() as tg:
        for kind, value in steps:
            if kind == "arrive":
                scopes.append(queue(tg, b, time, str(len(scopes)), value, served))
                await anyio.wait_all_tasks_blocked()
            elif kind == "cancel" and scopes:
                name = str(value % len(scopes))
                if name not in {n for n, _ in served}:
                    cancelled.add(name)
                scopes[int(name)].cancel()
                await anyio.wait_all_tasks_blocked()
            elif kind == "tick":
                await time.run_until(time.now + value)
        await time.run_until(time.now + len(scopes) / rate + 1.0)
    names = [n for n, _ in served]
    assert sorted(names + sorted(cancelled)) == sorted(str(i) for i in range(len(scopes)))
    for count, (_, at) in enumerate(served, start=1):
        assert count <= burst + rate * at + 1e-6
    if scopes:
        stats = b.stats()["sagemaker.describe"]
        assert (stats.acquired, stats.waiting) == (len(served), 0)


# ---------------------------------------------------------------- stats


async def test_stats_show_tokens_and_mean_wait_per_priority() -> None:
    time = ManualTime()
    b = manual(time)
    await b.acquire(*FAMILY, Priority.LIVE)  # no wait
    served: list[tuple[str, float]] = []
    async with anyio.create_task_group() as tg:
        for name, priority in [
            ("discover", Priority.DISCOVER),
            ("live-a", Priority.LIVE),
            ("finish", Priority.FINISH),
            ("live-b", Priority.LIVE),
        ]:
            queue(tg, b, time, name, priority, served)
        await time.run_until(5.0)
    stats = b.stats()["sagemaker.describe"]
    by = stats.by_priority
    assert (by[Priority.FINISH].acquired, by[Priority.FINISH].mean_wait) == (1, 1.0)
    assert by[Priority.LIVE].acquired == 3
    assert by[Priority.LIVE].mean_wait == pytest.approx(5 / 3)
    assert (by[Priority.DISCOVER].acquired, by[Priority.DISCOVER].mean_wait) == (1, 4.0)
    assert stats.acquired == 5
    assert stats.wait_seconds == pytest.approx(10.0)
    assert stats.mean_wait == pytest.approx(2.0)


async def test_an_unlimited_family_counts_its_priorities_too() -> None:
    b = Budgets({"logs.get": math.inf})
    await b.acquire("logs", "GetLogEvents", Priority.FINISH)
    await b.acquire("logs", "GetLogEvents", Priority.DISCOVER)
    by = b.stats()["logs.get"].by_priority
    assert [by[p].acquired for p in Priority] == [1, 0, 1]


# ---------------------------------------------------------------- sizing later


async def test_budgets_made_before_the_region_was_known_take_its_size() -> None:
    time = FakeTime()
    b = budgets(time)
    await b.acquire("logs", "GetLogEvents")
    assert b.rate("logs", "GetLogEvents") == 8.0
    b.size_for("us-east-1")
    assert b.rate("logs", "GetLogEvents") == 20.0
    assert b.stats()["logs.get"].max_rate == 20.0
    # a bigger bucket is not a free burst: what was saved at 8 stays
    for _ in range(8):
        await b.acquire("logs", "GetLogEvents")
    assert time.now > 0.0


def test_measured_quotas_size_the_budgets_but_rates_given_still_win() -> None:
    b = Budgets({"logs.get": 3.0}, region="us-west-2")
    b.size_for("us-west-2", {"logs.describe": 40.0, "logs.get": 16.0})
    assert b.rate("logs", "DescribeLogStreams") == 40.0
    assert b.rate("logs", "GetLogEvents") == 3.0
    assert b.rate("logs", "FilterLogEvents") == 8.0


def test_a_throttled_family_climbs_back_to_its_new_size() -> None:
    time = FakeTime()
    b = budgets(time)
    b.throttled("logs", "GetLogEvents")
    assert b.rate("logs", "GetLogEvents") == 4.0
    b.size_for("us-east-1")
    assert b.rate("logs", "GetLogEvents") == 4.0
    time.now += 60.0
    assert b.rate("logs", "GetLogEvents") == 20.0


# ---------------------------------------------------------------- Service Quotas


@pytest.mark.parametrize(
    ("quota", "family"),
    [
        ({"QuotaCode": "L-4FE15505", "QuotaName": "renamed"}, "logs.get"),
        ({"QuotaCode": "L-55E3CA17"}, "logs.filter"),
        ({"QuotaCode": "L-3F243AD0"}, "logs.describe"),
        ({"QuotaCode": "L-NEW", "QuotaName": "GetLogEvents throttle limit in TPS"}, "logs.get"),
        (
            {"QuotaName": "FilterLogEvents throttle limit in transactions per second"},
            "logs.filter",
        ),
        (
            {"QuotaName": "DescribeLogStreams throttle limit in transactions per second"},
            "logs.describe",
        ),
        ({"QuotaName": "GetLogEvents throttle limit in transactions per second in a burst"}, None),
        ({"QuotaName": "DescribeLogGroups throttle limit in transactions per second"}, None),
        ({"QuotaCode": "L-7E1FAE88", "QuotaName": "PutLogEvents throttle limit in TPS"}, None),
        ({}, None),
    ],
)
def test_quotas_are_recognised_by_code_or_by_name(
    quota: Mapping[str, Any], family: str | None
) -> None:
    assert quota_family(quota) == family


@pytest.mark.parametrize(
    ("quota", "rate"),
    [
        ({"Value": 25.0}, 25.0),
        ({"Value": 25.0, "Period": {"PeriodValue": 1, "PeriodUnit": "SECOND"}}, 25.0),
        ({"Value": 600.0, "Period": {"PeriodValue": 1, "PeriodUnit": "MINUTE"}}, 10.0),
        ({"Value": 50.0, "Period": {"PeriodValue": 2, "PeriodUnit": "SECOND"}}, 25.0),
        ({"Value": 0.0}, None),
        ({"Value": "25"}, None),
        ({"Value": True}, None),
        ({"Value": 25.0, "Period": {"PeriodValue": 1, "PeriodUnit": "FORTNIGHT"}}, None),
        ({}, None),
    ],
)
def test_quota_values_become_calls_per_second(quota: Mapping[str, Any], rate: float | None) -> None:
    assert quota_rate(quota) == rate


def entry(code: str, value: float, region: str = "us-east-1") -> dict[str, Any]:
    return {
        "ServiceCode": "logs",
        "QuotaCode": code,
        "QuotaArn": f"arn:aws:servicequotas:{region}:123456789012:logs/{code}",
        "Value": value,
    }


GET, FILTER, DESCRIBE = "L-4FE15505", "L-55E3CA17", "L-3F243AD0"


def test_applied_quotas_win_over_defaults_at_the_usual_headroom() -> None:
    applied = [entry(DESCRIBE, 50.0)]
    defaults = [entry(DESCRIBE, 25.0), entry(GET, 10.0), entry(FILTER, 5.0)]
    assert rates_from_quotas(applied, defaults, "us-east-1") == {
        "logs.describe": 40.0,
        "logs.get": 8.0,
        "logs.filter": 4.0,
    }


def test_a_quota_of_another_region_is_ignored() -> None:
    quotas = [entry(GET, 30.0, region="eu-west-3"), {"QuotaCode": FILTER, "Value": 10.0}]
    assert rates_from_quotas(quotas, region="us-east-1") == {"logs.filter": 8.0}


class QuotaService:
    """Service Quotas as far as the reader asks it: pages of quotas per listing."""

    def __init__(self, listings: Mapping[str, list[list[dict[str, Any]]]]) -> None:
        self.listings = listings
        self.asked: list[str] = []

    async def call(self, service: str, operation: str, /, **params: Any) -> Mapping[str, Any]:
        assert (service, params["ServiceCode"]) == ("service-quotas", "logs")
        self.asked.append(operation)
        pages = self.listings.get(operation)
        if pages is None:
            raise ClientError(
                {"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, operation
            )
        index = int(params.get("NextToken", "0"))
        page: dict[str, Any] = {"Quotas": pages[index]}
        if index + 1 < len(pages):
            page["NextToken"] = str(index + 1)
        return page


async def test_applied_quotas_are_read_page_by_page_and_defaults_fill_the_gaps() -> None:
    service = QuotaService(
        {
            "ListServiceQuotas": [[entry("L-D2832119", 10.0)], [entry(DESCRIBE, 100.0)]],
            "ListAWSDefaultServiceQuotas": [
                [entry(DESCRIBE, 25.0), entry(GET, 25.0)],
                [entry(FILTER, 25.0)],
            ],
        }
    )
    rates = await quotas_from_service_quotas(service.call, "us-east-1")
    assert rates == {"logs.describe": 80.0, "logs.get": 20.0, "logs.filter": 20.0}
    assert service.asked == ["ListServiceQuotas"] * 2 + ["ListAWSDefaultServiceQuotas"] * 2


async def test_defaults_are_not_asked_for_when_the_applied_values_cover_every_family() -> None:
    service = QuotaService(
        {"ListServiceQuotas": [[entry(DESCRIBE, 30.0), entry(GET, 10.0), entry(FILTER, 5.0)]]}
    )
    assert await quotas_from_service_quotas(service.call, "us-east-1") == {
        "logs.describe": 24.0,
        "logs.get": 8.0,
        "logs.filter": 4.0,
    }
    assert service.asked == ["ListServiceQuotas"]


async def test_a_listing_we_may_not_read_contributes_nothing() -> None:
    only_defaults = QuotaService({"ListAWSDefaultServiceQuotas": [[entry(GET, 10.0)]]})
    assert await quotas_from_service_quotas(only_defaults.call, "us-east-1") == {"logs.get": 8.0}
    nothing = QuotaService({})
    assert await quotas_from_service_quotas(nothing.call, "us-east-1") == {}


async def test_no_network_and_no_answer_give_an_empty_result() -> None:
    async def unreachable(service: str, operation: str, /, **params: Any) -> Mapping[str, Any]:
        raise OSError("connection refused")

    async def silent(service: str, operation: str, /, **params: Any) -> Mapping[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    assert await quotas_from_service_quotas(unreachable, "us-east-1") == {}
    assert await quotas_from_service_quotas(silent, "us-east-1", timeout=0.0) == {}


@pytest.fixture
async def quotas_client(moto_url: str) -> AsyncIterator[Any]:
    async with get_session().create_client(
        "service-quotas",
        region_name="us-east-1",
        endpoint_url=moto_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=AioConfig(retries={"total_max_attempts": 1}),
    ) as client:
        yield client


async def test_moto_which_has_no_logs_quotas_leaves_the_defaults(quotas_client: Any) -> None:
    # moto's Service Quotas knows VPC only: ListServiceQuotas is not implemented
    # (a 500) and the Logs defaults are a NoSuchResourceException
    async def call(service: str, operation: str, /, **params: Any) -> Mapping[str, Any]:
        method = getattr(quotas_client, botocore.xform_name(operation))
        result: Mapping[str, Any] = await method(**params)
        return result

    assert await quotas_from_service_quotas(call, "us-east-1") == {}
