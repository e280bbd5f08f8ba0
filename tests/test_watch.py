"""Status sources: the decisions, the list watcher against a scripted SageMaker,
and each strategy end to end on the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
import pytest
from botocore.exceptions import ClientError

from smrun import Outcome, Settings
from smrun.budget import Priority
from smrun.emulator import Emulator
from smrun.emulator.jobs import LATE_INGESTION
from smrun.handlers import KINDS
from smrun.types import Description
from smrun.watch import Update, newer
from smrun.watch.status import (
    KindWatch,
    StatusWatch,
    Strategy,
    Unseen,
    list_params,
    listable,
    summary_update,
)
from tests.helpers import local_runner
from tests.test_runner import training_request

TRAINING = KINDS["training"]
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def update(status: str, secondary: str | None = None, at: float = 0.0,
           source: str = "list") -> Update:
    return Update("training", "job-1", status, secondary, T0 + timedelta(seconds=at),
                  source=source)


# ---------------------------------------------------------------- decisions


def test_a_duplicate_update_is_dropped() -> None:
    first = update("InProgress", "Training", at=1)
    assert newer(None, first)
    assert not newer(first, update("InProgress", "Training", at=1))


def test_an_older_update_is_dropped_even_with_another_status() -> None:
    assert not newer(update("Completed", "Completed", at=5), update("InProgress", "Training", at=3))


def test_a_later_update_is_applied_and_so_is_a_new_status_at_the_same_time() -> None:
    seen = update("InProgress", "Training", at=3)
    assert newer(seen, update("InProgress", "Training", at=4))
    assert newer(seen, update("InProgress", "Uploading", at=3))


def test_updates_without_times_are_compared_by_status() -> None:
    bare = Update("training", "job-1", "InProgress", "Training")
    assert not newer(bare, Update("training", "job-1", "InProgress", "Training"))
    assert newer(bare, Update("training", "job-1", "Completed", "Completed"))


def test_the_list_looks_back_by_the_skew_and_reconciles_from_the_oldest_job() -> None:
    since = T0 + timedelta(minutes=5)
    first = list_params(None, since, 5.0, reconcile=False)
    assert first == {"MaxResults": 100, "LastModifiedTimeAfter": since - timedelta(seconds=5)}
    cursor = T0 + timedelta(minutes=9)
    later = list_params(cursor, since, 5.0, reconcile=False)
    assert later["LastModifiedTimeAfter"] == cursor - timedelta(seconds=5)
    full = list_params(cursor, since, 5.0, reconcile=True)
    assert full == {"MaxResults": 100, "CreationTimeAfter": since - timedelta(seconds=5)}


def test_kinds_whose_hooks_need_the_whole_description_are_not_listed() -> None:
    assert listable(KINDS["training"]) and listable(KINDS["processing"])
    assert not listable(KINDS["endpoint"])  # rollback is read from the whole description
    assert not listable(KINDS["tuning"])  # its children's streams come from its hooks
    assert not listable(KINDS["model"]) and not listable(KINDS["workteam"])


def test_a_summary_becomes_a_partial_update() -> None:
    got = summary_update(TRAINING, {
        "TrainingJobName": "a", "TrainingJobStatus": "InProgress", "SecondaryStatus": "Training",
        "LastModifiedTime": T0, "TrainingJobArn": "arn:x", "CreationTime": T0,
    })
    assert got is not None and not got.complete and got.source == "list"
    assert (got.name, got.status, got.secondary) == ("a", "InProgress", "Training")
    assert got.modified == T0
    assert summary_update(TRAINING, {"TrainingJobStatus": "InProgress"}) is None


# ---------------------------------------------------------------- a scripted SageMaker


class ScriptedList:
    """ListTrainingJobs answers from a table the test edits; records each call."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.calls: list[dict[str, Any]] = []
        self.hidden: set[str] = set()  # left out of incremental passes
        self.failing = False

    def set(self, name: str, status: str, secondary: str, at: float) -> None:
        self.jobs[name] = {"TrainingJobName": name, "TrainingJobArn": f"arn:{name}",
                           "CreationTime": T0, "TrainingJobStatus": status,
                           "SecondaryStatus": secondary,
                           "LastModifiedTime": T0 + timedelta(seconds=at)}

    async def __call__(self, service: str, operation: str, *, priority: Priority,
                       **params: Any) -> dict[str, Any]:
        assert (service, operation) == ("sagemaker", "ListTrainingJobs")
        self.calls.append({"priority": priority, **params})
        if self.failing:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}},
                              operation)
        after = params.get("LastModifiedTimeAfter")
        rows = [dict(j) for n, j in sorted(self.jobs.items())
                if after is None or (j["LastModifiedTime"] > after and n not in self.hidden)]
        start = int(params.get("NextToken", 0))
        page = rows[start:start + params["MaxResults"]]
        answer: dict[str, Any] = {"TrainingJobSummaries": page}
        if start + len(page) < len(rows):
            answer["NextToken"] = str(start + len(page))
        return answer


async def never_described(priority: Priority) -> Description | None:
    raise AssertionError("a listed job is not described")


@pytest.fixture
def scripted() -> Iterator[ScriptedList]:
    yield ScriptedList()


def fast(**overrides: Any) -> Settings:
    return Settings.fast(poll_min=0.05, poll_max=0.05, **overrides)


async def test_one_list_call_reports_every_job_of_the_kind(scripted: ScriptedList) -> None:
    for i in range(150):  # two pages
        scripted.set(f"job-{i:03}", "InProgress", "Starting", at=0)
    async with StatusWatch(KINDS, call=scripted, settings=fast(),
                           strategy=Strategy.LIST) as watch:
        subs = [watch.subscribe(TRAINING, f"job-{i:03}", never_described, T0.timestamp())
                for i in range(150)]
        with anyio.fail_after(5):
            first = [await s.next(None) for s in subs]
        assert all(u is not None and u.secondary == "Starting" for u in first)
        assert len(scripted.calls) == 2 and scripted.calls[1]["NextToken"] == "100"
        scripted.set("job-007", "InProgress", "Training", at=10)
        with anyio.fail_after(5):
            changed = await subs[7].next(None)
        assert changed is not None and changed.secondary == "Training"
        # the next pass asks only for what changed since the newest change it saw
        expected = T0 + timedelta(seconds=10) - timedelta(seconds=fast().list_skew)
        with anyio.fail_after(5):
            while scripted.calls[-1].get("LastModifiedTimeAfter") != expected:
                await anyio.sleep(0.01)
        assert "NextToken" not in scripted.calls[-1]  # one job changed: one page


async def test_the_reconcile_pass_finds_a_change_the_incremental_passes_missed(
    scripted: ScriptedList,
) -> None:
    scripted.set("job-a", "InProgress", "Training", at=0)
    settings = fast(list_reconcile=0.3)
    async with StatusWatch(KINDS, call=scripted, settings=settings,
                           strategy=Strategy.LIST) as watch:
        sub = watch.subscribe(TRAINING, "job-a", never_described, T0.timestamp())
        with anyio.fail_after(5):
            assert (await sub.next(None)) is not None
        scripted.hidden.add("job-a")  # eventual consistency beyond the skew window
        scripted.set("job-a", "Completed", "Completed", at=1)
        with anyio.fail_after(5):
            done = await sub.next(None)
        assert done is not None and done.status == "Completed"
        reconciling = [c for c in scripted.calls if "CreationTimeAfter" in c]
        assert reconciling and all(c["priority"] is Priority.DISCOVER for c in reconciling)


async def test_a_job_no_listing_shows_is_described_on_its_own(scripted: ScriptedList) -> None:
    described: list[str] = []

    async def describe(priority: Priority) -> Description | None:
        described.append("job-x")
        return {"TrainingJobName": "job-x", "TrainingJobStatus": "Failed",
                "FailureReason": "boom", "LastModifiedTime": T0}

    async with StatusWatch(KINDS, call=scripted, settings=fast(list_reconcile=0.2),
                           strategy=Strategy.LIST) as watch:
        sub = watch.subscribe(TRAINING, "job-x", describe, T0.timestamp())
        with anyio.fail_after(5):
            got = await sub.next(None)
    assert got is not None and got.complete and got.status == "Failed"
    assert described == ["job-x"]


async def test_pushed_duplicates_and_stale_events_do_not_wake_the_job(
    scripted: ScriptedList,
) -> None:
    async with StatusWatch(KINDS, call=scripted, settings=fast(events_reconcile=60),
                           strategy=Strategy.EVENTS) as watch:
        sub = watch.subscribe(TRAINING, "job-1", never_described, T0.timestamp())
        assert watch.dispatch(update("InProgress", "Training", at=2, source="events"))
        assert not watch.dispatch(update("InProgress", "Training", at=2, source="events"))
        assert not watch.dispatch(update("InProgress", "Starting", at=1, source="events"))
        assert not watch.dispatch(Update("training", "someone-elses", "Completed"))
        with anyio.fail_after(5):
            got = await sub.next(None)
        assert got is not None and got.secondary == "Training"
        with anyio.move_on_after(0.3):
            await sub.next(None)
            pytest.fail("a duplicate or a stale event woke the job")


async def test_a_list_that_keeps_failing_makes_the_job_unknown(scripted: ScriptedList) -> None:
    scripted.failing = True
    warnings: list[str] = []
    async with StatusWatch(KINDS, call=scripted, settings=fast(unknown_after=0.5),
                           strategy=Strategy.LIST,
                           warn=lambda job, message: warnings.append(message)) as watch:
        sub = watch.subscribe(TRAINING, "job-1", never_described, T0.timestamp())
        with pytest.raises(Unseen), anyio.fail_after(5):
            while True:
                await sub.next(None)
    assert warnings and "AccessDeniedException" in warnings[0]


async def test_auto_lists_a_kind_only_once_it_has_enough_jobs(scripted: ScriptedList) -> None:
    watch = KindWatch(TRAINING, Strategy.AUTO, call=scripted, settings=fast(list_from=3),
                      warn=lambda job, message: None)
    subs = [watch.subscribe(f"j{i}", never_described, 0.0) for i in range(2)]
    assert all(s.mode is Strategy.DESCRIBE for s in subs)
    subs.append(watch.subscribe("j2", never_described, 0.0))
    assert all(s.mode is Strategy.LIST for s in subs)
    endpoint = KindWatch(KINDS["endpoint"], Strategy.LIST, call=scripted, settings=fast(),
                         warn=lambda job, message: None)
    assert endpoint.subscribe("e", never_described, 0.0).mode is Strategy.DESCRIBE


# ---------------------------------------------------------------- on the emulator


def settings() -> Settings:
    return Settings.fast(drain_grace=LATE_INGESTION + 0.2, list_from=1)


@pytest.mark.parametrize("strategy", ["describe", "list"])
async def test_each_strategy_sees_every_outcome(emulator: Emulator, strategy: str) -> None:
    outcomes = {"ok": None, "bad": "Failed"}
    async with local_runner(emulator, settings=settings(), watch=strategy) as runner:
        jobs = {key: await runner.submit(key, "training",
                                         training_request(duration=1.0, outcome=outcome,
                                                          reason="bad data" if outcome else None))
                for key, outcome in outcomes.items()}
        results = {key: await job.wait() for key, job in jobs.items()}
    assert results["ok"].outcome is Outcome.SUCCEEDED
    assert results["ok"].outputs["model_artifact_url"].startswith("s3://bucket/out/")
    assert results["bad"].outcome is Outcome.FAILED
    assert results["bad"].failure_reason == "bad data"
    listed = emulator.count("ListTrainingJobs")
    assert (listed > 0) == (strategy == "list")


async def test_listed_jobs_cost_a_create_and_one_final_describe(emulator: Emulator) -> None:
    async with local_runner(emulator, settings=settings(), watch="list") as runner:
        jobs = [await runner.submit(f"j{i}", "training", training_request(duration=1.5))
                for i in range(6)]
        results = [await job.wait() for job in jobs]
    assert all(r.outcome is Outcome.SUCCEEDED for r in results)
    assert emulator.count("CreateTrainingJob") == 6
    assert emulator.count("DescribeTrainingJob") == 6


def test_a_describe_is_applied_even_when_it_repeats_what_a_summary_said() -> None:
    watch = KindWatch(TRAINING, Strategy.LIST, call=ScriptedList(), settings=fast(),
                      warn=lambda job, message: None)
    sub = watch.subscribe("job-1", never_described, 0.0)
    assert sub.offer(update("Completed", "Completed", at=9))
    assert not sub.offer(update("Completed", "Completed", at=9))
    assert sub.offer(update("Completed", "Completed", at=9, source="describe"))
