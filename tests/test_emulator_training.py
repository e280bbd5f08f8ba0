"""Training jobs on the emulator's clock, their logs, tags, faults and admin endpoints."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest
from botocore.exceptions import ClientError

from smrun.emulator import Emulator, FakeClock, FaultConfig
from tests.helpers import error_of

GROUP = "/aws/sagemaker/TrainingJobs"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


def request(name: str = "job-1", *, count: int = 1, **tags: str) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {
            "TrainingImage": "img:latest",
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "validation:auc", "Regex": "auc=(\\S+)"}],
        },
        "HyperParameters": {"epochs": "3"},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bucket/train"}
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/out/"},
        "ResourceConfig": {
            "InstanceType": "ml.m5.large",
            "InstanceCount": count,
            "VolumeSizeInGB": 10,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "Tags": [
            {"Key": f"smrun:emulator:{k.replace('_', '-')}", "Value": v} for k, v in tags.items()
        ]
        + [{"Key": "team", "Value": "ml"}],
    }


async def status_at(sagemaker: Any, clock: FakeClock, at: float, name: str = "job-1") -> Any:
    clock.set(START + at)
    return await sagemaker.describe_training_job(TrainingJobName=name)


START = FakeClock().now


async def test_lifecycle_follows_the_clock(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    created = await sagemaker.create_training_job(**request(duration="10"))
    assert created["TrainingJobArn"] == (
        "arn:aws:sagemaker:us-east-1:123456789012:training-job/job-1"
    )
    expected = [
        (0.0, "InProgress", "Starting"),
        (0.99, "InProgress", "Starting"),
        (1.0, "InProgress", "Downloading"),
        (2.5, "InProgress", "Training"),
        (8.49, "InProgress", "Training"),
        (8.5, "InProgress", "Uploading"),
        (9.99, "InProgress", "Uploading"),
        (10.0, "Completed", "Completed"),
        (100.0, "Completed", "Completed"),
    ]
    for at, status, secondary in expected:
        described = await status_at(sagemaker, fake_clock, at)
        assert (described["TrainingJobStatus"], described["SecondaryStatus"]) == (
            status,
            secondary,
        ), at
        if at == 2.5:
            assert "EndTime" not in described["SecondaryStatusTransitions"][-1]
            assert "BillableTimeInSeconds" not in described
            assert "TrainingEndTime" not in described

    done = await status_at(sagemaker, fake_clock, 10.0)
    transitions = done["SecondaryStatusTransitions"]
    assert [t["Status"] for t in transitions] == [
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    assert all(t["EndTime"] >= t["StartTime"] for t in transitions)
    assert transitions[0]["EndTime"] == transitions[1]["StartTime"]
    assert done["CreationTime"].timestamp() == START
    assert done["TrainingStartTime"].timestamp() == START + 1
    assert done["TrainingEndTime"].timestamp() == START + 10
    assert done["LastModifiedTime"].timestamp() == START + 10
    assert done["TrainingTimeInSeconds"] == 9
    assert done["BillableTimeInSeconds"] == 9
    assert done["ModelArtifacts"]["S3ModelArtifacts"] == "s3://bucket/out/job-1/output/model.tar.gz"
    assert [m["MetricName"] for m in done["FinalMetricDataList"]] == ["validation:auc"]
    assert done["HyperParameters"] == {"epochs": "3"}
    assert done["RoleArn"] == ROLE
    assert done["InputDataConfig"][0]["ChannelName"] == "train"
    assert done["EnableNetworkIsolation"] is False
    assert "FailureReason" not in done


async def test_metrics_are_deterministic(fake_clock: FakeClock, aws_client: Any) -> None:
    values = []
    for _ in range(2):
        async with Emulator(clock=FakeClock()) as emu:
            sagemaker = await aws_client("sagemaker", emu)
            await sagemaker.create_training_job(**request())
            clock = emu.clock
            assert isinstance(clock, FakeClock)
            clock.advance(60)
            described = await sagemaker.describe_training_job(TrainingJobName="job-1")
            values.append(described["FinalMetricDataList"][0]["Value"])
    assert values[0] == values[1]


async def test_spot_training_bills_less(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    spot = request(duration="100")
    spot["EnableManagedSpotTraining"] = True
    code, message = await error_of(sagemaker.create_training_job, **spot)
    assert code == "ValidationException"
    assert "MaxWaitTimeInSeconds" in message
    spot["StoppingCondition"]["MaxWaitTimeInSeconds"] = 7200
    await sagemaker.create_training_job(**spot)
    done = await status_at(sagemaker, fake_clock, 100)
    assert done["TrainingTimeInSeconds"] == 90
    assert done["BillableTimeInSeconds"] == 63
    assert done["EnableManagedSpotTraining"] is True


async def test_failed_outcome(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_training_job(
        **request(outcome="Failed", failure_reason="AlgorithmError: boom", log_lines="5")
    )
    running = await status_at(sagemaker, fake_clock, 5.9)
    assert running["SecondaryStatus"] == "Training"
    failed = await status_at(sagemaker, fake_clock, 6.0)
    assert (failed["TrainingJobStatus"], failed["SecondaryStatus"]) == ("Failed", "Failed")
    assert failed["FailureReason"] == "AlgorithmError: boom"
    assert "Uploading" not in [t["Status"] for t in failed["SecondaryStatusTransitions"]]
    assert "FinalMetricDataList" not in failed
    fake_clock.advance(1)
    fake_emulator.advance()
    (stream,) = fake_emulator.logs.stream_names(GROUP, "job-1/")
    assert fake_emulator.logs.events(GROUP, stream)[-1].message == (
        "[algo-1] line 5/5: ERROR AlgorithmError: boom"
    )


async def test_max_runtime_exceeded_by_tag_and_by_stopping_condition(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_training_job(**request("by-tag", outcome="MaxRuntimeExceeded"))
    limited = request("by-limit", duration="100")
    limited["StoppingCondition"] = {"MaxRuntimeInSeconds": 30}
    await sagemaker.create_training_job(**limited)

    by_tag = await status_at(sagemaker, fake_clock, 6, "by-tag")
    assert (by_tag["TrainingJobStatus"], by_tag["SecondaryStatus"]) == (
        "Stopped",
        "MaxRuntimeExceeded",
    )
    assert "MaxRuntimeInSeconds" in by_tag["FailureReason"]

    assert (await status_at(sagemaker, fake_clock, 29.9, "by-limit"))["TrainingJobStatus"] == (
        "InProgress"
    )
    by_limit = await status_at(sagemaker, fake_clock, 30, "by-limit")
    assert by_limit["SecondaryStatus"] == "MaxRuntimeExceeded"
    assert by_limit["TrainingEndTime"].timestamp() == START + 30


async def test_stop_moves_through_stopping_to_stopped(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_training_job(**request(duration="100", stop_delay="2", log_lines="10"))
    fake_clock.set(START + 50)
    await sagemaker.stop_training_job(TrainingJobName="job-1")
    stopping = await status_at(sagemaker, fake_clock, 51.9)
    assert (stopping["TrainingJobStatus"], stopping["SecondaryStatus"]) == (
        "Stopping",
        "Stopping",
    )
    await sagemaker.stop_training_job(TrainingJobName="job-1")  # again: accepted, no change
    stopped = await status_at(sagemaker, fake_clock, 52)
    assert (stopped["TrainingJobStatus"], stopped["SecondaryStatus"]) == ("Stopped", "Stopped")
    assert [t["Status"] for t in stopped["SecondaryStatusTransitions"]][-2:] == [
        "Stopping",
        "Stopped",
    ]
    assert stopped["TrainingEndTime"].timestamp() == START + 52

    code, message = await error_of(sagemaker.stop_training_job, TrainingJobName="job-1")
    assert (code, message) == (
        "ValidationException",
        "The request was rejected because the training job is in status Stopped.",
    )
    # Nothing written after the stop: the lines planned past it never come.
    fake_clock.advance(1000)
    fake_emulator.advance()
    (stream,) = fake_emulator.logs.stream_names(GROUP, "job-1/")
    events = fake_emulator.logs.events(GROUP, stream)
    assert events
    assert all(e.timestamp <= (START + 50) * 1000 for e in events)
    assert len(events) < 10


async def test_stop_of_completed_or_missing_job(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_training_job(**request())
    fake_clock.advance(10)
    assert await error_of(sagemaker.stop_training_job, TrainingJobName="job-1") == (
        "ValidationException",
        "The request was rejected because the training job is in status Completed.",
    )
    assert await error_of(sagemaker.stop_training_job, TrainingJobName="nope") == (
        "ValidationException",
        "Requested resource not found.",
    )
    assert await error_of(sagemaker.describe_training_job, TrainingJobName="nope") == (
        "ValidationException",
        "Requested resource not found.",
    )


async def test_duplicate_name_is_resource_in_use(fake_emulator: Emulator, aws_client: Any) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_training_job(**request("Job-A"))
    code, message = await error_of(sagemaker.create_training_job, **request("job-a"))
    assert code == "ResourceInUse"
    assert message == (
        "Training job names must be unique within an AWS account and region, and a training "
        "job with this name already exists "
        "(arn:aws:sagemaker:us-east-1:123456789012:training-job/job-a)"
    )


async def test_bad_behaviour_tag_is_a_validation_error(
    fake_emulator: Emulator, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    code, message = await error_of(sagemaker.create_training_job, **request(duration="soon"))
    assert code == "ValidationException"
    assert "smrun:emulator:duration" in message
    code, _ = await error_of(sagemaker.create_training_job, **request(outcome="Exploded"))
    assert code == "ValidationException"


async def test_every_log_line_is_written_once_per_instance(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_training_job(**request(count=3, log_lines="20", duration="10"))
    assert fake_emulator.logs.stream_names(GROUP) == []  # no stream before its first line
    fake_clock.set(START + 10)
    described = await sagemaker.describe_training_job(TrainingJobName="job-1")
    assert described["TrainingJobStatus"] == "Completed"
    streams = fake_emulator.logs.stream_names(GROUP, "job-1/")
    assert streams == [f"job-1/algo-{n}-{int(START)}" for n in (1, 2, 3)]
    # The last line is stamped at the end but reaches CloudWatch 0.5 s later.
    assert all(len(fake_emulator.logs.events(GROUP, s)) == 19 for s in streams)
    fake_clock.advance(0.5)
    fake_emulator.advance()
    for n, stream in enumerate(streams, start=1):
        events = fake_emulator.logs.events(GROUP, stream)
        assert [e.message.split(":")[0] for e in events] == [
            f"[algo-{n}] line {i}/20" for i in range(1, 21)
        ]
        assert events[-1].timestamp == round((START + 10) * 1000) + n - 1
        assert events[-1].ingestion_time == round((START + 10.5) * 1000)
        assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)
    messages = [e.message for s in streams for e in fake_emulator.logs.events(GROUP, s)]
    assert len(set(messages)) == 60
    assert all(re.fullmatch(r"\[algo-\d\] line \d+/20: .+", m) for m in messages)


async def test_last_instance_stream_appears_late(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    logs = await aws_client("logs", fake_emulator)
    await sagemaker.create_training_job(**request(count=2, duration="6", stream_delay="20"))
    fake_clock.set(START + 7)
    assert (await sagemaker.describe_training_job(TrainingJobName="job-1"))[
        "TrainingJobStatus"
    ] == "Completed"
    found = await logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix="job-1/")
    assert [s["logStreamName"] for s in found["logStreams"]] == [f"job-1/algo-1-{int(START)}"]
    fake_clock.set(START + 20)
    found = await logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix="job-1/")
    assert len(found["logStreams"]) == 2
    late = found["logStreams"][1]
    assert late["creationTime"] == round((START + 20) * 1000)
    page = await logs.get_log_events(
        logGroupName=GROUP, logStreamName=late["logStreamName"], startFromHead=True
    )
    assert len(page["events"]) == 20


async def test_no_log_lines(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_training_job(**request(log_lines="0"))
    fake_clock.advance(60)
    await sagemaker.describe_training_job(TrainingJobName="job-1")
    assert fake_emulator.logs.stream_names(GROUP) == []


async def test_list_training_jobs_filters_sorts_and_pages(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    for i in range(25):
        fake_clock.advance(1)
        await sagemaker.create_training_job(**request(f"job-{i:02d}", duration=str(10 + i)))
    # Now is START + 25; job-i was created at i+1 s and runs 10+i s: it ends at 11+2i s.

    names: list[str] = []
    params: dict[str, Any] = {"MaxResults": 10}
    while True:
        page = await sagemaker.list_training_jobs(**params)
        names += [s["TrainingJobName"] for s in page["TrainingJobSummaries"]]
        if "NextToken" not in page:
            break
        params["NextToken"] = page["NextToken"]
    assert names == [f"job-{i:02d}" for i in range(25)]

    newest = await sagemaker.list_training_jobs(
        SortBy="CreationTime", SortOrder="Descending", MaxResults=2
    )
    assert [s["TrainingJobName"] for s in newest["TrainingJobSummaries"]] == ["job-24", "job-23"]

    by_name = await sagemaker.list_training_jobs(
        NameContains="JOB-1", SortBy="Name", MaxResults=100
    )
    assert [s["TrainingJobName"] for s in by_name["TrainingJobSummaries"]] == [
        f"job-{i}" for i in range(10, 20)
    ]

    # job-03 and job-04 completed at 17 s and 19 s; job-00..02 at 11, 13 and 15 s.
    assert fake_clock.now == START + 25
    changed = await sagemaker.list_training_jobs(LastModifiedTimeAfter=START + 16, MaxResults=100)
    changed_names = {s["TrainingJobName"] for s in changed["TrainingJobSummaries"]}
    assert {"job-03", "job-04"} <= changed_names
    assert not {"job-00", "job-01", "job-02"} & changed_names
    assert all(
        s["LastModifiedTime"].timestamp() > START + 16 for s in changed["TrainingJobSummaries"]
    )

    # SageMaker picks MaxResults jobs first and filters by status afterwards.
    completed = await sagemaker.list_training_jobs(
        StatusEquals="Completed", MaxResults=10, SortOrder="Descending"
    )
    assert completed["TrainingJobSummaries"] == []
    assert "NextToken" in completed
    completed = await sagemaker.list_training_jobs(StatusEquals="Completed", MaxResults=100)
    assert [s["TrainingJobName"] for s in completed["TrainingJobSummaries"]] == [
        f"job-{i:02d}" for i in range(8)
    ]
    assert all("TrainingEndTime" in s for s in completed["TrainingJobSummaries"])

    code, _ = await error_of(sagemaker.list_training_jobs, NextToken="zz")
    assert code == "ValidationException"


async def test_tags_on_arns(fake_emulator: Emulator, aws_client: Any) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    arn = (await sagemaker.create_training_job(**request()))["TrainingJobArn"]
    await sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "owner", "Value": "me"}])
    tags = {t["Key"]: t["Value"] for t in (await sagemaker.list_tags(ResourceArn=arn))["Tags"]}
    assert tags["owner"] == "me"
    assert tags["team"] == "ml"
    await sagemaker.delete_tags(ResourceArn=arn, TagKeys=["owner"])
    tags = {t["Key"]: t["Value"] for t in (await sagemaker.list_tags(ResourceArn=arn))["Tags"]}
    assert "owner" not in tags
    missing = arn.replace("job-1", "nope")
    assert (await error_of(sagemaker.list_tags, ResourceArn=missing))[0] == "ValidationException"


async def test_real_clock_emulator_serves_requests(emulator: Emulator, aws_client: Any) -> None:
    sagemaker = await aws_client("sagemaker", emulator)
    await sagemaker.create_training_job(**request(duration="3600"))
    described = await sagemaker.describe_training_job(TrainingJobName="job-1")
    assert described["TrainingJobStatus"] == "InProgress"


# -- faults and admin endpoints ---------------------------------------------


async def test_throttled_create_creates_nothing(fake_emulator: Emulator, aws_client: Any) -> None:
    fake_emulator.faults = FaultConfig(throttle=1.0, operations=frozenset({"CreateTrainingJob"}))
    sagemaker = await aws_client("sagemaker", fake_emulator, retries=2)
    with pytest.raises(ClientError) as caught:
        await sagemaker.create_training_job(**request())
    assert caught.value.response["Error"] == {
        "Code": "ThrottlingException",
        "Message": "Rate exceeded",
    }
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert fake_emulator.count("CreateTrainingJob") == 3  # botocore retried throttling twice
    assert fake_emulator.faulted == [("CreateTrainingJob", "throttle")] * 3
    assert (await sagemaker.list_training_jobs())["TrainingJobSummaries"] == []


async def test_seeded_faults_repeat(fake_clock: FakeClock, aws_client: Any) -> None:
    outcomes = []
    for _ in range(2):
        async with Emulator(clock=fake_clock, faults=FaultConfig(throttle=0.5, seed=7)) as emu:
            sagemaker = await aws_client("sagemaker", emu)
            run = []
            for _ in range(20):
                try:
                    await sagemaker.list_training_jobs()
                    run.append("ok")
                except ClientError as error:
                    run.append(error.response["Error"]["Code"])
            outcomes.append(run)
    assert outcomes[0] == outcomes[1]
    assert 0 < outcomes[0].count("ThrottlingException") < 20


async def test_logs_throttling_and_server_errors(fake_emulator: Emulator, aws_client: Any) -> None:
    logs = await aws_client("logs", fake_emulator)
    fake_emulator.faults = FaultConfig(throttle=1.0)
    code, _ = await error_of(logs.describe_log_groups)
    assert code == "ThrottlingException"
    fake_emulator.faults = FaultConfig(server_error=1.0, seed=1)
    statuses = set()
    for _ in range(10):
        with pytest.raises(ClientError) as caught:
            await logs.describe_log_groups()
        statuses.add(
            (
                caught.value.response["ResponseMetadata"]["HTTPStatusCode"],
                caught.value.response["Error"]["Code"],
            )
        )
    assert statuses == {(500, "InternalFailure"), (503, "ServiceUnavailable")}


async def test_dropped_connection(fake_emulator: Emulator, aws_client: Any) -> None:
    fake_emulator.faults = FaultConfig(drop=1.0, operations=frozenset({"ListTrainingJobs"}))
    sagemaker = await aws_client("sagemaker", fake_emulator)
    with pytest.raises(Exception) as caught:
        await sagemaker.list_training_jobs()
    assert not isinstance(caught.value, ClientError)
    assert fake_emulator.faulted == [("ListTrainingJobs", "drop")]
    fake_emulator.faults = FaultConfig()
    assert (await sagemaker.list_training_jobs())["TrainingJobSummaries"] == []


async def test_admin_endpoints(fake_emulator: Emulator, aws_client: Any) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.list_training_jobs(MaxResults=5)
    async with aiohttp.ClientSession() as http:
        async with http.get(fake_emulator.url + "/_emulator/health") as response:
            assert (await response.json())["status"] == "ok"
        async with http.get(fake_emulator.url + "/_emulator/requests") as response:
            assert await response.json() == [
                {
                    "service": "sagemaker",
                    "operation": "ListTrainingJobs",
                    "params": {"MaxResults": 5},
                }
            ]
        settings = {"throttle": 1.0, "operations": ["ListTrainingJobs"], "seed": 3}
        async with http.post(fake_emulator.url + "/_emulator/faults", json=settings) as response:
            assert response.status == 200
        async with http.get(fake_emulator.url + "/_emulator/faults") as response:
            assert (await response.json())["operations"] == ["ListTrainingJobs"]
        async with http.post(fake_emulator.url + "/_emulator/faults", json={"nope": 1}) as response:
            assert response.status == 400
    assert fake_emulator.faults.throttle == 1.0
    assert (await error_of(sagemaker.list_training_jobs))[0] == "ThrottlingException"
    assert fake_emulator.count("ListTrainingJobs") == 2
