"""Batch transform jobs: the emulated lifecycle on a fake clock, and the engine driving them."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import anyio

from smrun import LogLine, Outcome, StatusChanged
from smrun.emulator import Emulator, FakeClock
from smrun.emulator.transform import instance_id
from smrun.handlers.transform import KIND, details, outputs
from tests.helpers import assert_fits_the_model, error_of, local_runner

GROUP = "/aws/sagemaker/TransformJobs"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
START = FakeClock().now
INSTANCE = re.compile(r"^i-[0-9a-f]{17}$")


def request(
    name: str | None = "job-1", *, model: str = "model-1", count: int = 1, **tags: str
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ModelName": model,
        "MaxConcurrentTransforms": 2,
        "BatchStrategy": "MultiRecord",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bucket/in/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": "s3://bucket/out/", "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": count},
        "Tags": [
            {"Key": f"smrun:emulator:{k.replace('_', '-')}", "Value": v} for k, v in tags.items()
        ],
    }
    if name is not None:
        body["TransformJobName"] = name
    return body


async def create_model(sagemaker: Any, name: str = "model-1") -> None:
    await sagemaker.create_model(
        ModelName=name,
        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/serve:1"},
        ExecutionRoleArn=ROLE,
    )


async def described_at(sagemaker: Any, clock: FakeClock, at: float, name: str = "job-1") -> Any:
    clock.set(START + at)
    return await sagemaker.describe_transform_job(TransformJobName=name)


# -- the emulator ------------------------------------------------------------


async def test_lifecycle_follows_the_clock(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await create_model(sagemaker)
    created = await sagemaker.create_transform_job(**request(duration="10"))
    assert created["TransformJobArn"] == (
        "arn:aws:sagemaker:us-east-1:123456789012:transform-job/job-1"
    )
    provisioning = await described_at(sagemaker, fake_clock, 0.99)
    assert provisioning["TransformJobStatus"] == "InProgress"
    assert "TransformStartTime" not in provisioning
    running = await described_at(sagemaker, fake_clock, 1.0)
    assert running["TransformStartTime"].timestamp() == START + 1
    assert "TransformEndTime" not in running
    assert (await described_at(sagemaker, fake_clock, 9.99))["TransformJobStatus"] == "InProgress"

    done = await described_at(sagemaker, fake_clock, 10.0)
    assert done["TransformJobStatus"] == "Completed"
    assert done["CreationTime"].timestamp() == START
    assert done["TransformEndTime"].timestamp() == START + 10
    assert "FailureReason" not in done
    assert done["ModelName"] == "model-1"
    assert done["TransformOutput"] == {"S3OutputPath": "s3://bucket/out/", "AssembleWith": "Line"}
    assert done["BatchStrategy"] == "MultiRecord"
    for response in (provisioning, running, done):
        assert_fits_the_model(response, "DescribeTransformJob")


async def test_create_fails_when_the_model_does_not_exist(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    assert await error_of(sagemaker.create_transform_job, **request(model="Missing")) == (
        "ValidationException",
        'Could not find model "arn:aws:sagemaker:us-east-1:123456789012:model/missing".',
    )
    assert (await sagemaker.list_transform_jobs())["TransformJobSummaries"] == []
    assert (await error_of(sagemaker.describe_transform_job, TransformJobName="job-1"))[0] == (
        "ValidationException"
    )
    # the model is needed when the job is created, not afterwards
    await create_model(sagemaker, "Missing")
    await sagemaker.create_transform_job(**request(model="Missing"))
    await sagemaker.delete_model(ModelName="Missing")
    assert (await described_at(sagemaker, fake_clock, 6))["TransformJobStatus"] == "Completed"


async def test_failed_job_has_a_reason_and_failed_records(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await create_model(sagemaker)
    await sagemaker.create_transform_job(
        **request(outcome="Failed", failure_reason="ClientError: 415 text/csv", records="3")
    )
    assert "FailureReason" not in await described_at(sagemaker, fake_clock, 5.9)
    failed = await described_at(sagemaker, fake_clock, 6.0)
    assert failed["TransformJobStatus"] == "Failed"
    assert failed["FailureReason"] == "ClientError: 415 text/csv"
    assert_fits_the_model(failed, "DescribeTransformJob")
    fake_clock.advance(1)
    fake_emulator.advance()
    (data_log,) = fake_emulator.logs.stream_names(GROUP, "job-1/i-")[1:]
    assert data_log.endswith("/data-log")
    assert fake_emulator.logs.events(GROUP, data_log)[-1].message.endswith(
        "record 3/3: s3://bucket/in/part-1-00003 ClientError: 415 text/csv"
    )


async def test_stop_moves_through_stopping_to_stopped(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await create_model(sagemaker)
    await sagemaker.create_transform_job(**request(duration="100", stop_delay="2"))
    fake_clock.set(START + 50)
    await sagemaker.stop_transform_job(TransformJobName="job-1")
    assert (await described_at(sagemaker, fake_clock, 51.9))["TransformJobStatus"] == "Stopping"
    await sagemaker.stop_transform_job(TransformJobName="job-1")  # again: accepted, no change
    stopped = await described_at(sagemaker, fake_clock, 52)
    assert stopped["TransformJobStatus"] == "Stopped"
    assert stopped["TransformEndTime"].timestamp() == START + 52
    assert await error_of(sagemaker.stop_transform_job, TransformJobName="job-1") == (
        "ValidationException",
        "The request was rejected because the transform job is in status Stopped.",
    )
    fake_clock.advance(1000)
    fake_emulator.advance()
    for stream in fake_emulator.logs.stream_names(GROUP, "job-1/"):
        events = fake_emulator.logs.events(GROUP, stream)
        assert 0 < len(events) < 10
        assert all(e.timestamp <= (START + 50) * 1000 for e in events)


async def test_unknown_and_duplicate_names(fake_emulator: Emulator, aws_client: Any) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await create_model(sagemaker)
    await sagemaker.create_transform_job(**request("Batch-A"))
    code, message = await error_of(sagemaker.create_transform_job, **request("batch-a"))
    assert code == "ResourceInUse"
    assert message.endswith("(arn:aws:sagemaker:us-east-1:123456789012:transform-job/batch-a)")
    for call in (sagemaker.describe_transform_job, sagemaker.stop_transform_job):
        assert await error_of(call, TransformJobName="nope") == (
            "ValidationException",
            "Requested resource not found.",
        )
    code, message = await error_of(sagemaker.create_transform_job, **request(records="-1"))
    assert code == "ValidationException" and "smrun:emulator:records" in message


async def test_each_instance_writes_a_container_stream_and_a_data_log(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await create_model(sagemaker)
    await sagemaker.create_transform_job(
        **request(count=2, log_lines="5", records="7", duration="10")
    )
    assert fake_emulator.logs.stream_names(GROUP) == []  # no stream before its first line
    await described_at(sagemaker, fake_clock, 10)
    ids = [instance_id("job-1", n) for n in (1, 2)]
    assert all(INSTANCE.match(i) for i in ids) and ids[0] != ids[1]
    epoch = int(START)
    expected = {f"job-1/{i}-{epoch}": 5 for i in ids} | {
        f"job-1/{i}-{epoch}/data-log": 7 for i in ids
    }
    assert set(fake_emulator.logs.stream_names(GROUP, "job-1/")) == set(expected)
    # the last line of each stream is stamped at the end but reaches CloudWatch 0.5 s later
    for stream, total in expected.items():
        assert len(fake_emulator.logs.events(GROUP, stream)) == total - 1
    fake_clock.advance(0.5)
    fake_emulator.advance()
    for stream, total in expected.items():
        events = fake_emulator.logs.events(GROUP, stream)
        numbers = [re.search(r"(?:line|record) (\d+)/(\d+)", e.message) for e in events]
        assert [(int(m[1]), int(m[2])) for m in numbers if m] == [
            (k, total) for k in range(1, total + 1)
        ]
        assert events[0].timestamp > (START + 1) * 1000  # after the instances are ready
    messages = [e.message for s in expected for e in fake_emulator.logs.events(GROUP, s)]
    assert len(set(messages)) == len(messages) == 24


async def test_list_filters_sorts_and_pages(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await create_model(sagemaker)
    for i in range(6):
        fake_clock.advance(1)
        outcome = "Failed" if i == 1 else "Completed"
        await sagemaker.create_transform_job(
            **request(f"batch-{i}", duration=str(2 + i), outcome=outcome)
        )
    # now START + 6; batch-i was created at i+1 s and ends at 3+2i s
    page = await sagemaker.list_transform_jobs(MaxResults=4, SortOrder="Descending")
    assert [s["TransformJobName"] for s in page["TransformJobSummaries"]] == [
        "batch-5",
        "batch-4",
        "batch-3",
        "batch-2",
    ]
    assert_fits_the_model(page, "ListTransformJobs")
    rest = await sagemaker.list_transform_jobs(
        MaxResults=4, SortOrder="Descending", NextToken=page["NextToken"]
    )
    assert [s["TransformJobName"] for s in rest["TransformJobSummaries"]] == ["batch-1", "batch-0"]

    failed = await sagemaker.list_transform_jobs(StatusEquals="Failed")
    (summary,) = failed["TransformJobSummaries"]
    assert summary["TransformJobName"] == "batch-1"
    assert summary["FailureReason"] and summary["TransformEndTime"].timestamp() == START + 5
    assert summary["LastModifiedTime"].timestamp() == START + 5
    recent = await sagemaker.list_transform_jobs(
        CreationTimeAfter=datetime.fromtimestamp(START + 4, timezone.utc), SortBy="Name"
    )
    # ListTransformJobs sorts Descending unless told otherwise
    assert [s["TransformJobName"] for s in recent["TransformJobSummaries"]] == [
        "batch-5",
        "batch-4",
    ]


# -- the handler -------------------------------------------------------------


def test_outputs_and_details() -> None:
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    described = {
        **request(count=3),
        "TransformJobStatus": "Completed",
        "TransformStartTime": start,
        "TransformEndTime": datetime(2024, 1, 1, 0, 1, tzinfo=timezone.utc),
    }
    assert outputs(described) == {"output_location": "s3://bucket/out/"}
    assert set(outputs(described)) == set(KIND.output_types)
    assert details(described) == {
        "model_name": "model-1",
        "instance_type": "ml.m5.large",
        "instance_count": 3,
        "start_time": "2024-01-01T00:00:00+00:00",
        "end_time": "2024-01-01T00:01:00+00:00",
        "transform_seconds": 60,
        "instance_seconds": 180,
    }


# -- the engine on the emulator ----------------------------------------------


def long_request() -> dict[str, Any]:
    return request(None, duration="60", stop_delay="0.2")


async def test_successful_job_streams_container_and_data_log_lines_once(
    emulator: Emulator, aws_client: Any
) -> None:
    await create_model(await aws_client("sagemaker", emulator))
    lines: list[LogLine] = []

    def sink(event: object) -> None:
        if isinstance(event, LogLine):
            lines.append(event)

    async with local_runner(emulator, sinks=[sink]) as runner:
        job = await runner.submit(
            "score", "transform", request(None, count=2, duration="1", log_lines="4", records="6")
        )
        result = await job.wait()
    assert result.outcome is Outcome.SUCCEEDED
    assert result.outputs == {"output_location": "s3://bucket/out/"}
    assert result.details["model_name"] == "model-1"
    assert result.details["instance_count"] == 2

    seen = Counter((line.stream, line.message) for line in lines)
    assert max(seen.values()) == 1
    ids = [instance_id(job.name, n) for n in (1, 2)]
    per_label = Counter(line.instance for line in lines)
    assert per_label == {ids[0]: 4, ids[1]: 4, f"{ids[0]}/data-log": 6, f"{ids[1]}/data-log": 6}
    for line in lines:
        is_data_log = line.instance.endswith("/data-log")
        assert line.stream.endswith("/data-log") == is_data_log
        assert (" record " in line.message) == is_data_log


async def test_failed_job_reports_its_reason(emulator: Emulator, aws_client: Any) -> None:
    await create_model(await aws_client("sagemaker", emulator))
    async with local_runner(emulator) as runner:
        job = await runner.submit(
            "bad",
            "transform",
            request(None, duration="0.5", outcome="Failed", failure_reason="ClientError: 415"),
        )
        result = await job.wait()
    assert result.outcome is Outcome.FAILED
    assert result.status == "Failed"
    assert result.failure_reason == "ClientError: 415"


async def test_missing_model_fails_the_step_with_a_clear_reason(emulator: Emulator) -> None:
    async with local_runner(emulator) as runner:
        job = await runner.submit("orphan", "transform", request(None, model="no-such-model"))
        result = await job.wait()
    assert result.outcome is Outcome.FAILED
    assert result.failure_reason is not None
    assert result.failure_reason.startswith(
        f"model 'no-such-model' does not exist, so transform job {job.name} was not created"
    )
    assert 'Could not find model "arn:aws:sagemaker:' in result.failure_reason
    assert emulator.count("CreateTransformJob") == 1  # not retried


async def test_job_stop_ends_as_stopped_by_us(emulator: Emulator, aws_client: Any) -> None:
    await create_model(await aws_client("sagemaker", emulator))
    async with local_runner(emulator) as runner:
        job = await runner.submit("long", "transform", long_request())
        async for event in job.events():
            if isinstance(event, StatusChanged):
                break
        await job.stop()
        result = await job.wait()
    assert result.outcome is Outcome.STOPPED_BY_US
    assert result.status == "Stopped"
    assert emulator.count("StopTransformJob") == 1


async def test_cancelling_the_runner_stops_the_job(emulator: Emulator, aws_client: Any) -> None:
    await create_model(await aws_client("sagemaker", emulator))
    with anyio.move_on_after(30):
        async with local_runner(emulator) as runner:
            job = await runner.submit("cancelled", "transform", long_request())
            async for event in job.events():
                if isinstance(event, StatusChanged):
                    break
            runner.cancel()
    assert job.result is not None
    assert job.result.outcome is Outcome.STOPPED_BY_US
    assert job.result.status == "Stopped"
    assert emulator.count("StopTransformJob") == 1
