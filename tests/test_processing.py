"""Processing jobs: the emulated lifecycle on a fake clock, and the engine driving them."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from typing import Any

import anyio

from smrun import LogLine, Outcome, StatusChanged
from smrun.emulator import Emulator, FakeClock
from smrun.handlers.processing import KIND, details, failure_with_exit_message, outputs
from tests.helpers import assert_fits_the_model, error_of, local_runner

GROUP = "/aws/sagemaker/ProcessingJobs"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
START = FakeClock().now


def request(name: str | None = "job-1", *, count: int = 1, **tags: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "RoleArn": ROLE,
        "AppSpecification": {
            "ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/prep:1",
            "ContainerArguments": ["--split", "0.2"],
        },
        "ProcessingInputs": [
            {
                "InputName": "raw",
                "S3Input": {
                    "S3Uri": "s3://bucket/raw/",
                    "LocalPath": "/opt/ml/processing/input",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            }
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "train",
                    "S3Output": {
                        "S3Uri": "s3://bucket/prep/train",
                        "LocalPath": "/opt/ml/processing/train",
                        "S3UploadMode": "EndOfJob",
                    },
                },
                {
                    "OutputName": "test",
                    "S3Output": {
                        "S3Uri": "s3://bucket/prep/test",
                        "LocalPath": "/opt/ml/processing/test",
                        "S3UploadMode": "EndOfJob",
                    },
                },
            ]
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceType": "ml.m5.large",
                "InstanceCount": count,
                "VolumeSizeInGB": 10,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "Environment": {"MODE": "split"},
        "Tags": [
            {"Key": f"smrun:emulator:{k.replace('_', '-')}", "Value": v} for k, v in tags.items()
        ],
    }
    if name is not None:
        body["ProcessingJobName"] = name
    return body


async def described_at(sagemaker: Any, clock: FakeClock, at: float, name: str = "job-1") -> Any:
    clock.set(START + at)
    return await sagemaker.describe_processing_job(ProcessingJobName=name)


# -- the emulator ------------------------------------------------------------


async def test_lifecycle_follows_the_clock(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    created = await sagemaker.create_processing_job(**request(duration="10"))
    assert created["ProcessingJobArn"] == (
        "arn:aws:sagemaker:us-east-1:123456789012:processing-job/job-1"
    )
    provisioning = await described_at(sagemaker, fake_clock, 0.99)
    assert provisioning["ProcessingJobStatus"] == "InProgress"
    assert "ProcessingStartTime" not in provisioning
    running = await described_at(sagemaker, fake_clock, 1.0)
    assert running["ProcessingStartTime"].timestamp() == START + 1
    assert "ProcessingEndTime" not in running
    assert (await described_at(sagemaker, fake_clock, 9.99))["ProcessingJobStatus"] == "InProgress"

    done = await described_at(sagemaker, fake_clock, 10.0)
    assert done["ProcessingJobStatus"] == "Completed"
    assert done["CreationTime"].timestamp() == START
    assert done["ProcessingEndTime"].timestamp() == START + 10
    assert done["LastModifiedTime"].timestamp() == START + 10
    assert "FailureReason" not in done and "ExitMessage" not in done
    assert done["ProcessingOutputConfig"]["Outputs"][1]["S3Output"]["S3Uri"] == (
        "s3://bucket/prep/test"
    )
    assert done["AppSpecification"]["ContainerArguments"] == ["--split", "0.2"]
    assert done["Environment"] == {"MODE": "split"}
    assert done["RoleArn"] == ROLE
    for response in (provisioning, running, done):
        assert_fits_the_model(response, "DescribeProcessingJob")


async def test_failed_job_has_reason_exit_message_and_last_line(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_processing_job(
        **request(outcome="Failed", exit_message="KeyError: 'label'", log_lines="4")
    )
    running = await described_at(sagemaker, fake_clock, 5.9)
    assert "FailureReason" not in running and "ExitMessage" not in running
    failed = await described_at(sagemaker, fake_clock, 6.0)
    assert failed["ProcessingJobStatus"] == "Failed"
    assert failed["FailureReason"] == "AlgorithmError: See job logs for more information"
    assert failed["ExitMessage"] == "KeyError: 'label'"
    assert_fits_the_model(failed, "DescribeProcessingJob")
    fake_clock.advance(1)
    fake_emulator.advance()
    (stream,) = fake_emulator.logs.stream_names(GROUP, "job-1/")
    assert fake_emulator.logs.events(GROUP, stream)[-1].message == (
        "[algo-1] line 4/4: ERROR KeyError: 'label'"
    )


async def test_completed_job_may_carry_an_exit_message(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_processing_job(**request(exit_message="rows=1200"))
    done = await described_at(sagemaker, fake_clock, 6.0)
    assert (done["ProcessingJobStatus"], done["ExitMessage"]) == ("Completed", "rows=1200")


async def test_stop_moves_through_stopping_to_stopped(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_processing_job(**request(duration="100", stop_delay="2", log_lines="10"))
    fake_clock.set(START + 50)
    await sagemaker.stop_processing_job(ProcessingJobName="job-1")
    stopping = await described_at(sagemaker, fake_clock, 51.9)
    assert stopping["ProcessingJobStatus"] == "Stopping"
    assert stopping["LastModifiedTime"].timestamp() == START + 50
    await sagemaker.stop_processing_job(ProcessingJobName="job-1")  # again: accepted, no change
    stopped = await described_at(sagemaker, fake_clock, 52)
    assert stopped["ProcessingJobStatus"] == "Stopped"
    assert stopped["ProcessingEndTime"].timestamp() == START + 52
    assert "FailureReason" not in stopped
    assert await error_of(sagemaker.stop_processing_job, ProcessingJobName="job-1") == (
        "ValidationException",
        "The request was rejected because the processing job is in status Stopped.",
    )
    # the lines planned after the stop are never written
    fake_clock.advance(1000)
    fake_emulator.advance()
    (stream,) = fake_emulator.logs.stream_names(GROUP, "job-1/")
    events = fake_emulator.logs.events(GROUP, stream)
    assert 0 < len(events) < 10
    assert all(e.timestamp <= (START + 50) * 1000 for e in events)


async def test_unknown_and_duplicate_names(fake_emulator: Emulator, aws_client: Any) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_processing_job(**request("Prep-A"))
    code, message = await error_of(sagemaker.create_processing_job, **request("prep-a"))
    assert code == "ResourceInUse"
    assert message.endswith("(arn:aws:sagemaker:us-east-1:123456789012:processing-job/prep-a)")
    for call in (sagemaker.describe_processing_job, sagemaker.stop_processing_job):
        assert await error_of(call, ProcessingJobName="nope") == (
            "ValidationException",
            "Requested resource not found.",
        )
    code, message = await error_of(sagemaker.create_processing_job, **request(outcome="Maybe"))
    assert code == "ValidationException" and "smrun:emulator:outcome" in message


async def test_every_log_line_is_written_once_per_instance(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_processing_job(**request(count=3, log_lines="8", duration="10"))
    assert fake_emulator.logs.stream_names(GROUP) == []  # no stream before its first line
    await described_at(sagemaker, fake_clock, 10)
    streams = fake_emulator.logs.stream_names(GROUP, "job-1/")
    assert streams == [f"job-1/algo-{n}-{int(START)}" for n in (1, 2, 3)]
    # the last line is stamped at the end but reaches CloudWatch 0.5 s later
    assert all(len(fake_emulator.logs.events(GROUP, s)) == 7 for s in streams)
    fake_clock.advance(0.5)
    fake_emulator.advance()
    for n, stream in enumerate(streams, start=1):
        events = fake_emulator.logs.events(GROUP, stream)
        assert [e.message.split(":")[0] for e in events] == [
            f"[algo-{n}] line {i}/8" for i in range(1, 9)
        ]
        assert events[0].timestamp > (START + 1) * 1000  # after the instances are ready
        assert events[-1].timestamp == round((START + 10) * 1000) + n - 1


async def test_list_filters_sorts_and_pages(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    for i in range(12):
        fake_clock.advance(1)
        outcome = "Failed" if i % 3 == 0 else "Completed"
        await sagemaker.create_processing_job(
            **request(f"prep-{i:02d}", duration=str(5 + i), outcome=outcome)
        )
    # now START + 12; prep-i was created at i+1 s and ends at 6+2i s
    page = await sagemaker.list_processing_jobs(MaxResults=5)
    assert [s["ProcessingJobName"] for s in page["ProcessingJobSummaries"]] == [
        f"prep-{i:02d}" for i in range(5)
    ]
    rest = await sagemaker.list_processing_jobs(MaxResults=100, NextToken=page["NextToken"])
    assert len(rest["ProcessingJobSummaries"]) == 7 and "NextToken" not in rest
    assert_fits_the_model(page, "ListProcessingJobs")

    ended = await sagemaker.list_processing_jobs(MaxResults=100, StatusEquals="Failed")
    failed = ended["ProcessingJobSummaries"]
    assert [s["ProcessingJobName"] for s in failed] == ["prep-00", "prep-03"]
    assert all(s["FailureReason"] and s["ExitMessage"] for s in failed)
    assert all("ProcessingEndTime" in s for s in failed)

    named = await sagemaker.list_processing_jobs(
        NameContains="PREP-1", SortBy="Name", SortOrder="Descending"
    )
    assert [s["ProcessingJobName"] for s in named["ProcessingJobSummaries"]] == [
        "prep-11",
        "prep-10",
    ]
    changed = await sagemaker.list_processing_jobs(
        LastModifiedTimeAfter=datetime.fromtimestamp(START + 9, timezone.utc), MaxResults=100
    )
    # prep-00..03 ended at 6, 8, 10 and 12 s; the others are running and were last
    # modified when they were created, at 5..12 s
    names = {s["ProcessingJobName"] for s in changed["ProcessingJobSummaries"]}
    assert names == {"prep-02", "prep-03", "prep-09", "prep-10", "prep-11"}


# -- the handler -------------------------------------------------------------


def test_outputs_map_each_output_name_to_its_s3_uri() -> None:
    described = {**request(), "ProcessingJobStatus": "Completed"}
    assert outputs(described) == {
        "job_name": "job-1",
        "output_artifacts": {"train": "s3://bucket/prep/train", "test": "s3://bucket/prep/test"},
    }
    assert outputs({"ProcessingJobName": "x"}) == {"job_name": "x", "output_artifacts": {}}
    assert set(outputs(described)) == set(KIND.output_types)


def test_details_and_failure_reason_use_the_exit_message() -> None:
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    end = datetime(2024, 1, 1, 0, 2, 5, tzinfo=timezone.utc)
    described = {
        **request(count=2),
        "ProcessingJobStatus": "Failed",
        "ProcessingStartTime": start,
        "ProcessingEndTime": end,
        "FailureReason": "AlgorithmError: See job logs for more information",
        "ExitMessage": "KeyError: 'label'",
    }
    assert details(described) == {
        "exit_message": "KeyError: 'label'",
        "start_time": "2024-01-01T00:00:00+00:00",
        "end_time": "2024-01-01T00:02:05+00:00",
        "processing_seconds": 125,
        "instance_seconds": 250,
    }
    assert failure_with_exit_message(described)["FailureReason"] == (
        "AlgorithmError: See job logs for more information; exit message: KeyError: 'label'"
    )
    completed = {**described, "ProcessingJobStatus": "Completed"}
    assert failure_with_exit_message(completed) is completed


# -- the engine on the emulator ----------------------------------------------


async def test_successful_job_reports_its_outputs_and_every_log_line_once(
    emulator: Emulator,
) -> None:
    lines: list[LogLine] = []

    def sink(event: object) -> None:
        if isinstance(event, LogLine):
            lines.append(event)

    async with local_runner(emulator, sinks=[sink]) as runner:
        job = await runner.submit(
            "prep",
            "processing",
            request(None, count=2, duration="1", log_lines="6", exit_message="rows=1200"),
        )
        result = await job.wait()
    assert result.outcome is Outcome.SUCCEEDED
    assert result.status == "Completed"
    assert result.outputs == {
        "job_name": job.name,
        "output_artifacts": {"train": "s3://bucket/prep/train", "test": "s3://bucket/prep/test"},
    }
    assert result.details["exit_message"] == "rows=1200"
    assert result.details["processing_seconds"] >= 1
    seen = Counter((line.instance, line.message) for line in lines)
    assert max(seen.values()) == 1
    assert {line.instance for line in lines} == {"algo-1", "algo-2"}
    for n in (1, 2):
        assert sorted(
            int(line.message.split(" ")[2].split("/")[0])
            for line in lines
            if line.instance == f"algo-{n}"
        ) == list(range(1, 7))


async def test_failed_job_shows_reason_and_exit_message(emulator: Emulator) -> None:
    async with local_runner(emulator) as runner:
        job = await runner.submit(
            "bad",
            "processing",
            request(None, duration="0.5", outcome="Failed", exit_message="KeyError: 'label'"),
        )
        result = await job.wait()
    assert result.outcome is Outcome.FAILED
    assert result.failure_reason == (
        "AlgorithmError: See job logs for more information; exit message: KeyError: 'label'"
    )


def long_request() -> dict[str, Any]:
    return request(None, duration="60", stop_delay="0.2")


async def test_job_stop_ends_as_stopped_by_us(emulator: Emulator) -> None:
    async with local_runner(emulator) as runner:
        job = await runner.submit("long", "processing", long_request())
        async for event in job.events():
            if isinstance(event, StatusChanged):
                break
        await job.stop()
        result = await job.wait()
    assert result.outcome is Outcome.STOPPED_BY_US
    assert result.status == "Stopped"
    assert emulator.count("StopProcessingJob") == 1


async def test_stopped_by_someone_else_fails_the_step(emulator: Emulator) -> None:
    async with local_runner(emulator) as runner:
        job = await runner.submit("victim", "processing", long_request())
        async for event in job.events():
            if isinstance(event, StatusChanged):
                break
        assert runner.engine.aws is not None
        await runner.engine.aws.call("sagemaker", "StopProcessingJob", ProcessingJobName=job.name)
        result = await job.wait()
    assert result.outcome is Outcome.FAILED
    assert result.status == "Stopped"


async def test_cancelling_the_runner_stops_the_job(emulator: Emulator) -> None:
    with anyio.move_on_after(30):
        async with local_runner(emulator) as runner:
            job = await runner.submit("cancelled", "processing", long_request())
            async for event in job.events():
                if isinstance(event, StatusChanged):
                    break
            runner.cancel()
    assert job.result is not None
    assert job.result.outcome is Outcome.STOPPED_BY_US
    assert job.result.status == "Stopped"
    assert emulator.count("StopProcessingJob") == 1
