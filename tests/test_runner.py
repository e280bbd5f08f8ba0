"""The engine end to end on the emulator: lifecycle, logs, outcomes, attach."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import anyio
import pytest

from smrun import Finished, LogLine, Outcome, Runner, Settings, StatusChanged
from smrun.emulator import Emulator
from smrun.identity import request_hash
from tests.helpers import emulator_config

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
LINE = re.compile(r"line (\d+)/(\d+)")


def training_request(
    *,
    duration: float = 1.0,
    instances: int = 1,
    lines: int = 5,
    outcome: str | None = None,
    reason: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    tags = [
        {"Key": "smrun:emulator:duration", "Value": str(duration)},
        {"Key": "smrun:emulator:log-lines", "Value": str(lines)},
    ]
    if outcome:
        tags.append({"Key": "smrun:emulator:outcome", "Value": outcome})
    if reason:
        tags.append({"Key": "smrun:emulator:failure-reason", "Value": reason})
    return {
        "AlgorithmSpecification": {
            "TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/algo:1",
            "TrainingInputMode": "File",
        },
        "RoleArn": ROLE,
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/out/"},
        "ResourceConfig": {
            "InstanceType": "ml.m5.large",
            "InstanceCount": instances,
            "VolumeSizeInGB": 10,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "Tags": tags,
        **extra,
    }


def local_runner(emulator: Emulator, **kwargs: Any) -> Runner:
    kwargs.setdefault("settings", Settings.fast())
    return Runner(emulator_config(emulator), **kwargs)


async def test_concurrent_jobs_stream_every_line_once_and_succeed(emulator: Emulator) -> None:
    lines: list[LogLine] = []
    statuses: list[StatusChanged] = []
    finished: list[Finished] = []

    def sink(event: object) -> None:
        if isinstance(event, LogLine):
            lines.append(event)
        elif isinstance(event, StatusChanged):
            statuses.append(event)
        elif isinstance(event, Finished):
            finished.append(event)

    async with local_runner(emulator, sinks=[sink]) as runner:
        jobs = [
            await runner.submit("a", "training", training_request(duration=1.0, lines=4)),
            await runner.submit(
                "b", "training", training_request(duration=1.5, instances=3, lines=6)
            ),
            await runner.submit(
                "c", "training", training_request(duration=2.0, instances=2, lines=5)
            ),
        ]
        results = [await job.wait() for job in jobs]

    assert [r.outcome for r in results] == [Outcome.SUCCEEDED] * 3
    assert all(r.outputs["model_artifact_url"].endswith("/output/model.tar.gz") for r in results)
    assert all(r.details["billable_seconds"] >= 1 for r in results)
    # every line of every instance exactly once
    per_stream = Counter((line.job, line.stream) for line in lines)
    assert len({s for j, s in per_stream if j == "b"}) == 3
    seen = Counter((line.stream, line.message) for line in lines)
    assert max(seen.values()) == 1
    for job_key, expected in (("a", 4), ("b", 6), ("c", 5)):
        for (j, stream), count in per_stream.items():
            if j == job_key:
                assert count == expected, (stream, count)
    # the jobs ran at the same time: each one logged before the first one finished
    first_end = min(f.time for f in finished)
    for key in "abc":
        assert min(line.time for line in lines if line.job == key) < first_end
    secondaries = [s.secondary for s in statuses if s.job == "b"]
    assert "Training" in secondaries and secondaries[-1] == "Completed"


@pytest.mark.parametrize("poll", [0.1, 4.0], ids=["poll-fast", "poll-slower-than-the-job"])
async def test_every_secondary_transition_is_told_once_in_order(
    emulator: Emulator, poll: float
) -> None:
    """A poll that comes after several transitions sees only the last one; the
    description's SecondaryStatusTransitions give the ones in between, so the
    statuses told are the job's whole history however coarse the polling."""
    statuses: list[StatusChanged] = []
    settings = Settings.fast(poll_min=poll, poll_max=poll)
    sink = lambda e: statuses.append(e) if isinstance(e, StatusChanged) else None  # noqa: E731
    async with local_runner(emulator, sinks=[sink], settings=settings) as runner:
        job = await runner.submit("t", "training", training_request(duration=1.0, lines=2))
        result = await job.wait()
        aws = runner.engine.require_aws()
        final = await aws.call("sagemaker", "DescribeTrainingJob", TrainingJobName=job.name)
    assert result.outcome is Outcome.SUCCEEDED
    history = [t["Status"] for t in final["SecondaryStatusTransitions"]]
    assert "Training" in history and len(history) >= 4
    assert [s.secondary for s in statuses] == history
    assert statuses[-1].status == "Completed"
    assert all(s.status == "InProgress" for s in statuses[:-1])
    # the ones told late carry when they happened, not when they were seen
    starts = {t["Status"]: t["StartTime"].timestamp() for t in final["SecondaryStatusTransitions"]}
    for told in statuses[1:-1]:
        assert told.changed == pytest.approx(starts[told.secondary], abs=0.01)


async def test_failing_job_reports_its_reason(emulator: Emulator) -> None:
    async with local_runner(emulator) as runner:
        job = await runner.submit(
            "bad",
            "training",
            training_request(outcome="Failed", reason="AlgorithmError: out of memory"),
        )
        result = await job.wait()
    assert result.outcome is Outcome.FAILED
    assert result.failure_reason is not None and "out of memory" in result.failure_reason


async def test_job_stop_ends_as_stopped_by_us(emulator: Emulator) -> None:
    async with local_runner(emulator) as runner:
        job = await runner.submit("long", "training", training_request(duration=20))
        async for event in job.events():
            if isinstance(event, StatusChanged) and event.secondary == "Downloading":
                break
        await job.stop()
        result = await job.wait()
    assert result.outcome is Outcome.STOPPED_BY_US
    assert result.status == "Stopped"
    assert emulator.count("StopTrainingJob") == 1


async def test_stopped_job_fails_the_step_unless_we_stopped_it(emulator: Emulator) -> None:
    async with local_runner(emulator) as runner:
        job = await runner.submit("victim", "training", training_request(duration=60))
        async for event in job.events():
            if isinstance(event, StatusChanged):
                break
        assert runner.engine.aws is not None
        # someone else stops it (the console, another tool)
        await runner.engine.aws.call("sagemaker", "StopTrainingJob", TrainingJobName=job.name)
        result = await job.wait()
    assert result.outcome is Outcome.FAILED
    assert result.status == "Stopped"


async def test_max_runtime_exceeded_is_a_failure(emulator: Emulator) -> None:
    async with local_runner(emulator) as runner:
        job = await runner.submit(
            "slow", "training", training_request(outcome="MaxRuntimeExceeded")
        )
        result = await job.wait()
    assert result.outcome is Outcome.FAILED
    assert result.failure_reason


async def test_timeout_counts_from_creation_and_stops_the_job(emulator: Emulator) -> None:
    async with local_runner(emulator) as runner:
        job = await runner.submit("late", "training", training_request(duration=60), timeout=0.5)
        result = await job.wait()
    assert result.outcome is Outcome.FAILED
    assert result.failure_reason is not None and "timed out" in result.failure_reason
    assert emulator.count("StopTrainingJob") == 1


async def test_cancelling_the_runner_stops_what_it_created(emulator: Emulator) -> None:
    results = []
    with anyio.move_on_after(30):
        async with local_runner(emulator) as runner:
            job = await runner.submit("cancelled", "training", training_request(duration=60))
            async for event in job.events():
                if isinstance(event, StatusChanged):
                    break
            runner.cancel()
        results.append(job.result)
    assert results and results[0] is not None
    assert results[0].outcome is Outcome.STOPPED_BY_US
    assert emulator.count("StopTrainingJob") == 1


async def test_same_run_id_attaches_instead_of_creating_again(emulator: Emulator) -> None:
    request = training_request(duration=1.0)
    async with local_runner(emulator, run_id="run-1") as runner:
        first = await (await runner.submit("t", "training", request)).wait()
    async with local_runner(emulator, run_id="run-1") as runner:
        events: list[object] = []
        runner.bus.add_sink(events.append)
        second = await (await runner.submit("t", "training", request)).wait()
    # no describe before the create: the second create is answered "already
    # exists" (ResourceInUse), and that answer leads to the attach check
    assert emulator.count("CreateTrainingJob") == 2
    assert emulator.count("ListTags") == 1
    assert first.name == second.name and second.attached
    assert second.outcome is Outcome.SUCCEEDED


async def test_same_name_with_a_different_request_is_refused(emulator: Emulator) -> None:
    async with local_runner(emulator, run_id="run-2") as runner:
        await (await runner.submit("t", "training", training_request(lines=3))).wait()
    async with local_runner(emulator, run_id="run-2") as runner:
        result = await (await runner.submit("t", "training", training_request(lines=9))).wait()
    assert result.outcome is Outcome.FAILED
    assert result.failure_reason is not None and "different request" in result.failure_reason
    assert emulator.count("CreateTrainingJob") == 2  # the second one refused as existing


def test_request_hash_ignores_name_and_our_tags() -> None:
    from smrun.handlers.training import KIND

    base = training_request()
    named = {**base, "TrainingJobName": "x"}
    assert request_hash(base, KIND.name_field) == request_hash(named, KIND.name_field)
    changed = training_request(lines=99)
    assert request_hash(base, KIND.name_field) != request_hash(changed, KIND.name_field)


async def test_finished_event_carries_the_result(emulator: Emulator) -> None:
    async with local_runner(emulator) as runner:
        job = await runner.submit("f", "training", training_request(duration=0.5, lines=2))
        finished = [e async for e in job.events() if isinstance(e, Finished)]
    assert len(finished) == 1 and finished[0].result.ok


async def test_cancellation_during_create_still_finds_and_stops_the_job(
    emulator: Emulator,
) -> None:
    from smrun.emulator import FaultConfig

    # the create reaches SageMaker, which answers only after the runner gave up on it
    emulator.faults = FaultConfig(latency=1.0, operations=frozenset({"CreateTrainingJob"}))
    async with local_runner(emulator) as runner:
        job = await runner.submit("racy", "training", training_request(duration=60))
        while emulator.count("CreateTrainingJob") == 0:
            await anyio.sleep(0.01)
        runner.cancel()
    assert job.result is not None
    assert job.result.outcome is Outcome.STOPPED_BY_US
    assert emulator.count("StopTrainingJob") == 1
    assert len(emulator.sagemaker.kinds["training"].jobs) == 1  # type: ignore[attr-defined]


async def test_nothing_is_buffered_for_a_job_nobody_listens_to(emulator: Emulator) -> None:
    async with local_runner(emulator) as runner:
        job = await runner.submit("quiet", "training", training_request(duration=0.5, lines=50))
        await job.wait()
        assert runner.bus._subscribers == []
        # a late listener still gets the job's history, log lines aside
        kinds = [type(e).__name__ async for e in job.events()]
        assert kinds[0] == "Submitted" and kinds[-1] == "Finished"
        assert "StatusChanged" in kinds and "LogLine" not in kinds
