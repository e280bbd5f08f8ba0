"""Ground Truth labeling jobs: the emulated lifecycle on a fake clock, the engine
driving them, and the workteam → labeling example manifest."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import anyio

from smrun import (
    LogLine,
    Outcome,
    StatusChanged,
    load_manifest,
)
from smrun.emulator import Emulator, FakeClock
from smrun.handlers.labeling import KIND
from smrun.types import Phase
from tests.helpers import error_of, local_runner

GROUP = "/aws/sagemaker/LabelingJobs"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
PUBLIC_TEAM = "arn:aws:sagemaker:us-east-1:394669845002:workteam/public-crowd/default"
PRIVATE_TEAM = "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/"
ALGORITHM = (
    "arn:aws:sagemaker:us-east-1:027400017018:"
    "labeling-job-algorithm-specification/image-classification"
)
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "ground-truth.yaml"
START = FakeClock().now
LINE = re.compile(r"\] line (\d+)/(\d+): ")


def labeling_request(
    name: str | None = "job-1",
    *,
    team: str = PUBLIC_TEAM,
    auto: bool = False,
    **tags: str,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "LabelAttributeName": "species",
        "InputConfig": {
            "DataSource": {"S3DataSource": {"ManifestS3Uri": "s3://bucket/in/input.manifest"}}
        },
        "OutputConfig": {"S3OutputPath": "s3://bucket/labels/"},
        "RoleArn": ROLE,
        "HumanTaskConfig": {
            "WorkteamArn": team,
            "UiConfig": {"UiTemplateS3Uri": "s3://bucket/template.liquid.html"},
            "PreHumanTaskLambdaArn": (
                "arn:aws:lambda:us-east-1:432418664414:function:PRE-ImageMultiClass"
            ),
            "AnnotationConsolidationConfig": {
                "AnnotationConsolidationLambdaArn": (
                    "arn:aws:lambda:us-east-1:432418664414:function:ACS-ImageMultiClass"
                )
            },
            "TaskTitle": "Which bird?",
            "TaskDescription": "Choose the species",
            "NumberOfHumanWorkersPerDataObject": 1,
            "TaskTimeLimitInSeconds": 300,
        },
        "Tags": [
            {"Key": f"smrun:emulator:{k.replace('_', '-')}", "Value": v} for k, v in tags.items()
        ],
    }
    if name is not None:
        body["LabelingJobName"] = name
    if auto:
        body["LabelingJobAlgorithmsConfig"] = {"LabelingJobAlgorithmSpecificationArn": ALGORITHM}
    return body


def workteam_request(name: str) -> dict[str, Any]:
    return {
        "WorkteamName": name,
        "Description": "labelers",
        "MemberDefinitions": [
            {
                "CognitoMemberDefinition": {
                    "UserPool": "us-east-1_AbCdEf123",
                    "UserGroup": "labelers",
                    "ClientId": "client1",
                }
            }
        ],
    }


async def described_at(sagemaker: Any, clock: FakeClock, at: float, name: str = "job-1") -> Any:
    clock.set(START + at)
    return await sagemaker.describe_labeling_job(LabelingJobName=name)


# --- the emulator -----------------------------------------------------------


async def test_lifecycle_and_counters_follow_the_clock(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    created = await sagemaker.create_labeling_job(
        **labeling_request(duration="10", objects="200", failed_objects="10")
    )
    assert created["LabelingJobArn"] == (
        "arn:aws:sagemaker:us-east-1:123456789012:labeling-job/job-1"
    )

    seen: list[tuple[str, dict[str, int]]] = []
    for at in (0.0, 0.99, 1.0, 3.0, 5.5, 8.0, 9.99, 10.0, 50.0):
        described = await described_at(sagemaker, fake_clock, at)
        seen.append((described["LabelingJobStatus"], described["LabelCounters"]))
        counters = described["LabelCounters"]
        assert (
            sum(counters[k] for k in ("TotalLabeled", "FailedNonRetryableError", "Unlabeled"))
            == 200
        ), at
        assert counters["TotalLabeled"] == counters["HumanLabeled"] + counters["MachineLabeled"]
        if described["LabelingJobStatus"] != "Completed":
            assert "LabelingJobOutput" not in described, at
    assert [status for status, _ in seen] == [
        "Initializing",
        "Initializing",
        "InProgress",
        "InProgress",
        "InProgress",
        "InProgress",
        "InProgress",
        "Completed",
        "Completed",
    ]
    labeled = [c["TotalLabeled"] for _, c in seen]
    assert labeled == sorted(labeled) and labeled[0] == 0 and 0 < labeled[3] < labeled[5]
    assert all(c["MachineLabeled"] == 0 for _, c in seen)  # no auto-labeling asked for

    done = await described_at(sagemaker, fake_clock, 10.0)
    assert done["LabelCounters"] == {
        "TotalLabeled": 190,
        "HumanLabeled": 190,
        "MachineLabeled": 0,
        "FailedNonRetryableError": 10,
        "Unlabeled": 0,
    }
    assert done["LabelingJobOutput"] == {
        "OutputDatasetS3Uri": "s3://bucket/labels/job-1/manifests/output/output.manifest"
    }
    assert done["CreationTime"].timestamp() == START
    assert done["LastModifiedTime"].timestamp() == START + 10
    assert done["JobReferenceCode"].startswith("123456789012")
    assert done["HumanTaskConfig"]["TaskTitle"] == "Which bird?"
    assert done["LabelAttributeName"] == "species"
    assert "FailureReason" not in done


async def test_auto_labeling_machine_labels_from_halfway_and_leaves_a_final_model(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_labeling_job(**labeling_request(auto=True, duration="10"))
    # labeling runs from 1 s to 10 s: its halfway point is 5.5 s
    early = await described_at(sagemaker, fake_clock, 5.0)
    assert early["LabelCounters"]["MachineLabeled"] == 0
    assert early["LabelCounters"]["HumanLabeled"] > 0
    late = await described_at(sagemaker, fake_clock, 8.0)
    assert late["LabelCounters"]["MachineLabeled"] > 0
    assert "LabelingJobOutput" not in late
    done = await described_at(sagemaker, fake_clock, 10.0)
    counters = done["LabelCounters"]
    assert counters["MachineLabeled"] > counters["HumanLabeled"] > 0
    assert counters["TotalLabeled"] == 100 and counters["Unlabeled"] == 0
    assert done["LabelingJobOutput"]["FinalActiveLearningModelArn"] == (
        "arn:aws:sagemaker:us-east-1:123456789012:model/job-1-final-model"
    )


async def test_failed_outcome_by_tag(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_labeling_job(
        **labeling_request(outcome="Failed", failure_reason="ClientError: bad manifest")
    )
    running = await described_at(sagemaker, fake_clock, 5.9)
    assert running["LabelingJobStatus"] == "InProgress" and "FailureReason" not in running
    failed = await described_at(sagemaker, fake_clock, 6.0)
    assert failed["LabelingJobStatus"] == "Failed"
    assert failed["FailureReason"] == "ClientError: bad manifest"
    assert "LabelingJobOutput" not in failed
    assert failed["LabelCounters"]["Unlabeled"] > 0


async def test_stop_moves_through_stopping_to_stopped_and_freezes_the_counters(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_labeling_job(**labeling_request(duration="10", stop_delay="2"))
    fake_clock.set(START + 4)
    await sagemaker.stop_labeling_job(LabelingJobName="job-1")
    stopping = await described_at(sagemaker, fake_clock, 5.0)
    assert stopping["LabelingJobStatus"] == "Stopping"
    await sagemaker.stop_labeling_job(LabelingJobName="job-1")  # again: nothing changes
    stopped = await described_at(sagemaker, fake_clock, 6.0)
    assert stopped["LabelingJobStatus"] == "Stopped"
    assert stopped["LastModifiedTime"].timestamp() == START + 6
    assert stopped["LabelCounters"] == stopping["LabelCounters"]
    assert 0 < stopped["LabelCounters"]["TotalLabeled"] < 100
    assert stopped["LabelingJobOutput"]["OutputDatasetS3Uri"].endswith("/output.manifest")

    code, message = await error_of(sagemaker.stop_labeling_job, LabelingJobName="job-1")
    assert code == "ValidationException" and "Stopped" in message
    code, _ = await error_of(sagemaker.stop_labeling_job, LabelingJobName="nope")
    assert code == "ResourceNotFound"
    # nothing written after the stop reaches CloudWatch
    fake_clock.set(START + 30)
    await sagemaker.describe_labeling_job(LabelingJobName="job-1")
    events = fake_emulator.logs.events(GROUP, "job-1/human-annotation")
    assert events and all(e.timestamp <= (START + 4) * 1000 for e in events)


async def test_private_workteam_must_exist(fake_emulator: Emulator, aws_client: Any) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    missing = PRIVATE_TEAM + "nobody"
    code, message = await error_of(sagemaker.create_labeling_job, **labeling_request(team=missing))
    assert code == "ValidationException"
    assert f"Workteam '{missing}' does not exist" in message
    code, _ = await error_of(sagemaker.describe_labeling_job, LabelingJobName="job-1")
    assert code == "ResourceNotFound"  # nothing was created

    team = await sagemaker.create_workteam(**workteam_request("Birders"))
    await sagemaker.create_labeling_job(**labeling_request(team=team["WorkteamArn"]))
    summary = (await sagemaker.list_labeling_jobs())["LabelingJobSummaryList"][0]
    assert summary["WorkteamArn"] == PRIVATE_TEAM + "birders"


async def test_names_and_label_attributes_are_checked(
    fake_emulator: Emulator, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_labeling_job(**labeling_request())
    code, message = await error_of(sagemaker.create_labeling_job, **labeling_request("JOB-1"))
    assert code == "ResourceInUse" and "already exists" in message
    bad = {**labeling_request("job-2"), "LabelAttributeName": "species-metadata"}
    code, _ = await error_of(sagemaker.create_labeling_job, **bad)
    assert code == "ValidationException"
    code, message = await error_of(
        sagemaker.create_labeling_job,
        **labeling_request("job-3", objects="5", failed_objects="6"),
    )
    assert code == "ValidationException" and "failed-objects" in message


async def test_every_log_line_is_written_once_and_the_last_one_late(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_labeling_job(**labeling_request(auto=True, log_lines="8"))
    await described_at(sagemaker, fake_clock, 6.0)  # terminal; last lines not yet ingested
    assert fake_emulator.logs.stream_names(GROUP, "job-1/") == [
        "job-1/active-learning",
        "job-1/human-annotation",
    ]
    assert all(
        len(fake_emulator.logs.events(GROUP, s)) == 7
        for s in fake_emulator.logs.stream_names(GROUP)
    )
    await described_at(sagemaker, fake_clock, 6.5)
    for stream in ("job-1/human-annotation", "job-1/active-learning"):
        events = fake_emulator.logs.events(GROUP, stream)
        assert [LINE.search(e.message).groups() for e in events] == [  # type: ignore[union-attr]
            (str(i), "8") for i in range(1, 9)
        ]
        assert events[-1].ingestion_time == round((START + 6.5) * 1000)
        assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)
    human = fake_emulator.logs.events(GROUP, "job-1/human-annotation")
    assert "labeling complete: 100 of 100 objects labeled" in human[-1].message


async def test_list_labeling_jobs_filters_sorts_and_pages(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    for i in range(12):
        fake_clock.advance(1)
        await sagemaker.create_labeling_job(**labeling_request(f"job-{i:02d}", duration="5"))
    # now is START + 12: job-i was created at i+1 s and ends at i+6 s
    names: list[str] = []
    params: dict[str, Any] = {"MaxResults": 5, "SortOrder": "Descending"}
    while True:
        page = await sagemaker.list_labeling_jobs(**params)
        names += [s["LabelingJobName"] for s in page["LabelingJobSummaryList"]]
        if "NextToken" not in page:
            break
        params["NextToken"] = page["NextToken"]
    assert names == [f"job-{i:02d}" for i in reversed(range(12))]

    completed = await sagemaker.list_labeling_jobs(StatusEquals="Completed", MaxResults=100)
    assert [s["LabelingJobName"] for s in completed["LabelingJobSummaryList"]] == [
        f"job-{i:02d}" for i in range(7)
    ]
    assert all("LabelingJobOutput" in s for s in completed["LabelingJobSummaryList"])
    recent = await sagemaker.list_labeling_jobs(CreationTimeAfter=START + 10, SortBy="Name")
    assert [s["LabelingJobName"] for s in recent["LabelingJobSummaryList"]] == [
        "job-10",
        "job-11",
    ]
    one = await sagemaker.list_labeling_jobs(NameContains="job-03")
    assert [s["LabelingJobName"] for s in one["LabelingJobSummaryList"]] == ["job-03"]


# --- the handler ------------------------------------------------------------


def test_outputs_are_empty_strings_until_the_job_has_them() -> None:
    running = {"LabelingJobStatus": "InProgress", "LabelCounters": {"TotalLabeled": 3}}
    assert KIND.phase(running) is Phase.RUNNING
    assert KIND.outputs(running) == {
        "output_manifest_location": "",
        "active_learning_model_arn": "",
    }
    assert KIND.details(running) == {"label_counters": {"total_labeled": 3}}
    assert KIND.phase({"LabelingJobStatus": "Stopped"}) is Phase.STOPPED


# --- the engine -------------------------------------------------------------


async def test_labeling_job_succeeds_with_its_outputs_and_counters(emulator: Emulator) -> None:
    async with local_runner(emulator) as runner:
        job = await runner.submit(
            "birds", "labeling", labeling_request(None, duration="1", objects="40", log_lines="2")
        )
        result = await job.wait()

    assert result.outcome is Outcome.SUCCEEDED and result.status == "Completed"
    assert result.outputs == {
        "output_manifest_location": (
            f"s3://bucket/labels/{job.name}/manifests/output/output.manifest"
        ),
        "active_learning_model_arn": "",
    }
    assert result.details["label_counters"] == {
        "total_labeled": 40,
        "human_labeled": 40,
        "machine_labeled": 0,
        "failed_non_retryable": 0,
        "unlabeled": 0,
    }
    assert result.arn == f"arn:aws:sagemaker:us-east-1:123456789012:labeling-job/{job.name}"


async def test_auto_labeling_job_outputs_its_final_model(emulator: Emulator) -> None:
    async with local_runner(emulator) as runner:
        job = await runner.submit(
            "auto", "labeling", labeling_request(None, auto=True, duration="1", log_lines="2")
        )
        result = await job.wait()

    assert result.outcome is Outcome.SUCCEEDED
    assert result.outputs["active_learning_model_arn"] == (
        f"arn:aws:sagemaker:us-east-1:123456789012:model/{job.name}-final-model"
    )
    assert result.details["label_counters"]["machine_labeled"] > 0


async def test_failed_labeling_job_reports_its_reason(emulator: Emulator) -> None:
    async with local_runner(emulator) as runner:
        job = await runner.submit(
            "bad",
            "labeling",
            labeling_request(
                None,
                duration="0.5",
                log_lines="1",
                outcome="Failed",
                failure_reason="ClientError: the input manifest is empty",
            ),
        )
        result = await job.wait()
    assert result.outcome is Outcome.FAILED and result.status == "Failed"
    assert result.failure_reason == "ClientError: the input manifest is empty"
    assert result.outputs["output_manifest_location"] == ""


async def test_missing_private_workteam_fails_the_job_at_creation(emulator: Emulator) -> None:
    async with local_runner(emulator) as runner:
        job = await runner.submit(
            "orphan", "labeling", labeling_request(None, team=PRIVATE_TEAM + "ghosts")
        )
        result = await job.wait()
    assert result.outcome is Outcome.FAILED
    assert result.failure_reason is not None
    assert "ValidationException" in result.failure_reason
    assert "ghosts' does not exist" in result.failure_reason


async def test_job_stop_ends_as_stopped_by_us(emulator: Emulator) -> None:
    async with local_runner(emulator) as runner:
        job = await runner.submit(
            "long", "labeling", labeling_request(None, duration="60", stop_delay="0.2")
        )
        async for event in job.events():
            if isinstance(event, StatusChanged):
                break
        await job.stop()
        result = await job.wait()
    assert result.outcome is Outcome.STOPPED_BY_US and result.status == "Stopped"
    assert result.outputs["output_manifest_location"].endswith("/output.manifest")
    assert emulator.count("StopLabelingJob") == 1


async def test_cancelling_the_runner_stops_the_labeling_job(emulator: Emulator) -> None:
    results = []
    with anyio.move_on_after(30):
        async with local_runner(emulator) as runner:
            job = await runner.submit(
                "cancelled", "labeling", labeling_request(None, duration="60", stop_delay="0.2")
            )
            async for event in job.events():
                if isinstance(event, StatusChanged):
                    break
            runner.cancel()
        results.append(job.result)
    assert results and results[0] is not None
    assert results[0].outcome is Outcome.STOPPED_BY_US
    assert emulator.count("StopLabelingJob") == 1


async def test_stopped_by_someone_else_fails_the_step(emulator: Emulator) -> None:
    async with local_runner(emulator) as runner:
        job = await runner.submit(
            "victim", "labeling", labeling_request(None, duration="60", stop_delay="0.2")
        )
        async for event in job.events():
            if isinstance(event, StatusChanged):
                break
        assert runner.engine.aws is not None
        await runner.engine.aws.call("sagemaker", "StopLabelingJob", LabelingJobName=job.name)
        result = await job.wait()
    assert result.outcome is Outcome.FAILED and result.status == "Stopped"


async def test_every_log_line_reaches_the_step_once(emulator: Emulator) -> None:
    lines: list[LogLine] = []
    async with local_runner(
        emulator, sinks=[lambda e: lines.append(e) if isinstance(e, LogLine) else None]
    ) as runner:
        job = await runner.submit(
            "logged", "labeling", labeling_request(None, auto=True, duration="1", log_lines="5")
        )
        result = await job.wait()

    assert result.ok
    assert len({line.stream for line in lines}) == 2
    seen = Counter((line.stream, line.message) for line in lines)
    assert max(seen.values()) == 1
    per_stream = Counter(line.stream for line in lines)
    assert sorted(per_stream.values()) == [5, 5]
    assert any("labeling complete" in line.message for line in lines)


async def test_example_manifest_creates_the_team_then_labels_with_it(
    emulator: Emulator,
) -> None:
    manifest = load_manifest(EXAMPLE)
    assert manifest.dependencies("birds") == ("team",)
    async with local_runner(emulator) as runner:
        results = await runner.run_manifest(manifest)

    assert [r.outcome for r in results.values()] == [Outcome.SUCCEEDED] * 2
    team_arn = results["team"].outputs["workteam_arn"]
    assert team_arn.endswith(":workteam/private-crowd/bird-labelers")
    labeling = emulator.sagemaker.operations["DescribeLabelingJob"](
        {"LabelingJobName": results["birds"].name}
    )
    assert isinstance(labeling, dict)
    assert labeling["HumanTaskConfig"]["WorkteamArn"] == team_arn
    birds = results["birds"]
    assert birds.outputs["output_manifest_location"] == (
        f"s3://my-bucket/birds/labels/{birds.name}/manifests/output/output.manifest"
    )
    assert birds.outputs["active_learning_model_arn"].endswith("-final-model")
    assert birds.details["label_counters"]["failed_non_retryable"] == 4
    assert birds.details["label_counters"]["total_labeled"] == 496
