"""The account's service quotas on the emulator: creates over a quota refused as
SageMaker refuses them (ResourceLimitExceeded, nothing created), instances freed
when a job ends, each job family counted on its own, the concurrency record, and
the admin endpoints."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio
import pytest

from smrun.emulator import Emulator, FakeClock, Quotas, serve
from smrun.emulator.resources import StateChange
from tests.helpers import error_of

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/algo:1"
ARN = "arn:aws:sagemaker:us-east-1:123456789012:"
M5 = "ml.m5.large"
C5 = "ml.c5.xlarge"
TRAINING_M5 = f"{M5} for training job usage"
START = FakeClock().now
TAIL = (
    "Please use AWS Service Quotas to request an increase for this quota. If AWS Service "
    "Quotas is not available, contact AWS support to request an increase for this quota."
)


def refusal(name: str, limit: int, usage: int, delta: int, unit: str = "Instances") -> str:
    return (
        f"The account-level service limit '{name}' is {limit} {unit}, with current "
        f"utilization of {usage} {unit} and a request delta of {delta} {unit}. {TAIL}"
    )


def behaviour(**tags: str) -> list[dict[str, str]]:
    return [{"Key": f"smrun:emulator:{k.replace('_', '-')}", "Value": v} for k, v in tags.items()]


def training(
    name: str,
    *,
    count: int = 1,
    instance_type: str = M5,
    groups: list[tuple[str, int]] | None = None,
    spot: bool = False,
    duration: str = "10",
    **tags: str,
) -> dict[str, Any]:
    resources: dict[str, Any] = {"VolumeSizeInGB": 10}
    if groups is None:
        resources.update(InstanceType=instance_type, InstanceCount=count)
    else:
        resources["InstanceGroups"] = [
            {"InstanceGroupName": f"group-{n}", "InstanceType": t, "InstanceCount": c}
            for n, (t, c) in enumerate(groups, start=1)
        ]
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": 3600}
    if spot:
        stopping["MaxWaitTimeInSeconds"] = 3600
    return {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/out/"},
        "ResourceConfig": resources,
        "StoppingCondition": stopping,
        "EnableManagedSpotTraining": spot,
        "Tags": behaviour(duration=duration, **tags),
    }


def processing(name: str, *, count: int = 1, duration: str = "10") -> dict[str, Any]:
    return {
        "ProcessingJobName": name,
        "RoleArn": ROLE,
        "AppSpecification": {"ImageUri": IMAGE},
        "ProcessingResources": {
            "ClusterConfig": {"InstanceType": M5, "InstanceCount": count, "VolumeSizeInGB": 10}
        },
        "Tags": behaviour(duration=duration),
    }


def transform(name: str, *, count: int = 1, duration: str = "10") -> dict[str, Any]:
    return {
        "TransformJobName": name,
        "ModelName": "model-1",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bucket/in/"}}
        },
        "TransformOutput": {"S3OutputPath": "s3://bucket/out/"},
        "TransformResources": {"InstanceType": M5, "InstanceCount": count},
        "Tags": behaviour(duration=duration),
    }


def endpoint_config(name: str, *variants: tuple[str, int], **tags: str) -> dict[str, Any]:
    return {
        "EndpointConfigName": name,
        "ProductionVariants": [
            {
                "VariantName": f"v{n}",
                "ModelName": "model-1",
                "InstanceType": instance_type,
                "InitialInstanceCount": count,
            }
            for n, (instance_type, count) in enumerate(variants, start=1)
        ],
        "Tags": behaviour(**tags),
    }


def tuning(name: str, *, parallel: int = 2, max_jobs: int = 4) -> dict[str, Any]:
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Random",
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "loss"},
            "ResourceLimits": {
                "MaxNumberOfTrainingJobs": max_jobs,
                "MaxParallelTrainingJobs": parallel,
            },
            "ParameterRanges": {
                "IntegerParameterRanges": [{"Name": "epochs", "MinValue": "1", "MaxValue": "9"}]
            },
        },
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {
                "TrainingImage": IMAGE,
                "TrainingInputMode": "File",
                "MetricDefinitions": [{"Name": "loss", "Regex": "loss=(\\S+)"}],
            },
            "RoleArn": ROLE,
            "OutputDataConfig": {"S3OutputPath": "s3://bucket/hpo/"},
            "ResourceConfig": {"InstanceType": M5, "InstanceCount": 1, "VolumeSizeInGB": 10},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        },
        "Tags": behaviour(child_duration="10"),
    }


async def create_model(sagemaker: Any) -> None:
    await sagemaker.create_model(
        ModelName="model-1", PrimaryContainer={"Image": IMAGE}, ExecutionRoleArn=ROLE
    )


def family(emulator: Emulator, name: str) -> dict[str, Any]:
    report: dict[str, Any] = emulator.concurrency_report()["families"][name]
    return report


@pytest.fixture
async def limited(fake_clock: FakeClock) -> AsyncIterator[Emulator]:
    """An emulator on the fake clock with 2 ml.m5.large for training."""
    async with Emulator(clock=fake_clock, quotas={TRAINING_M5: 2}) as emu:
        yield emu


# -- per instance type -----------------------------------------------------------


async def test_third_job_is_refused_and_nothing_is_created(
    limited: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", limited)
    logs = await aws_client("logs", limited)
    changes: list[StateChange] = []
    limited.sagemaker.listeners.append(changes.append)
    await sagemaker.create_training_job(**training("job-1"))
    fake_clock.advance(1)
    await sagemaker.create_training_job(**training("job-2"))

    code, message = await error_of(sagemaker.create_training_job, **training("job-3"))
    assert code == "ResourceLimitExceeded"
    assert message == refusal(TRAINING_M5, 2, 2, 1)
    assert message == (
        "The account-level service limit 'ml.m5.large for training job usage' is 2 Instances, "
        "with current utilization of 2 Instances and a request delta of 1 Instances. Please "
        "use AWS Service Quotas to request an increase for this quota. If AWS Service Quotas "
        "is not available, contact AWS support to request an increase for this quota."
    )

    # nothing of job-3 exists: no job, no tags, no log stream, no event
    assert await error_of(sagemaker.describe_training_job, TrainingJobName="job-3") == (
        "ValidationException",
        "Requested resource not found.",
    )
    fake_clock.advance(5)
    listed = await sagemaker.list_training_jobs(MaxResults=100)
    assert [j["TrainingJobName"] for j in listed["TrainingJobSummaries"]] == ["job-1", "job-2"]
    code, _ = await error_of(sagemaker.list_tags, ResourceArn=f"{ARN}training-job/job-3")
    assert code == "ValidationException"
    streams = await logs.describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix="job-3"
    )
    assert streams["logStreams"] == []
    assert all(not c.arn.endswith("/job-3") for c in changes)
    assert limited.concurrency_report()["refused"] == {TRAINING_M5: 1}


async def test_a_job_that_ends_frees_its_instances_at_that_moment(
    limited: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", limited)
    await sagemaker.create_training_job(**training("job-1", duration="10"))
    await sagemaker.create_training_job(**training("job-2", duration="20"))
    fake_clock.set(START + 9.999)
    code, message = await error_of(sagemaker.create_training_job, **training("job-3"))
    assert (code, message) == ("ResourceLimitExceeded", refusal(TRAINING_M5, 2, 2, 1))

    fake_clock.set(START + 10)  # job-1 is Completed now: its instance is free
    await sagemaker.create_training_job(**training("job-3"))
    described = await sagemaker.describe_training_job(TrainingJobName="job-1")
    assert described["TrainingJobStatus"] == "Completed"
    code, message = await error_of(sagemaker.create_training_job, **training("job-4"))
    assert message == refusal(TRAINING_M5, 2, 2, 1)


async def test_failed_and_stopped_jobs_free_their_instances(
    limited: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", limited)
    await sagemaker.create_training_job(**training("fails", duration="5", outcome="Failed"))
    await sagemaker.create_training_job(**training("stopped", duration="100", stop_delay="2"))
    fake_clock.set(START + 5)
    await sagemaker.create_training_job(**training("job-3", duration="100"))
    await sagemaker.stop_training_job(TrainingJobName="stopped")
    fake_clock.set(START + 6.5)  # Stopping still holds its instance
    code, _ = await error_of(sagemaker.create_training_job, **training("job-4"))
    assert code == "ResourceLimitExceeded"
    fake_clock.set(START + 7)
    await sagemaker.create_training_job(**training("job-4"))
    described = await sagemaker.describe_training_job(TrainingJobName="stopped")
    assert described["TrainingJobStatus"] == "Stopped"


async def test_a_request_bigger_than_the_quota_is_refused(
    fake_clock: FakeClock, aws_client: Any
) -> None:
    async with Emulator(clock=fake_clock, quotas={TRAINING_M5: 1}) as emu:
        sagemaker = await aws_client("sagemaker", emu)
        code, message = await error_of(sagemaker.create_training_job, **training("big", count=2))
        assert (code, message) == ("ResourceLimitExceeded", refusal(TRAINING_M5, 1, 0, 2))
        await sagemaker.create_training_job(**training("small"))


async def test_a_zero_quota_refuses_every_instance(fake_clock: FakeClock, aws_client: Any) -> None:
    quotas = {"ml.p3.2xlarge for training job usage": 0}
    async with Emulator(clock=fake_clock, quotas=quotas) as emu:
        sagemaker = await aws_client("sagemaker", emu)
        _, message = await error_of(
            sagemaker.create_training_job, **training("gpu", instance_type="ml.p3.2xlarge")
        )
        assert message == refusal("ml.p3.2xlarge for training job usage", 0, 0, 1)
        await sagemaker.create_training_job(**training("cpu"))  # other types: no quota


async def test_instance_groups_and_the_quota_on_all_instances(
    fake_clock: FakeClock, aws_client: Any
) -> None:
    total = "Number of instances across all training jobs"
    quotas = {f"{C5} for training job usage": 3, total: 4}
    async with Emulator(clock=fake_clock, quotas=quotas) as emu:
        sagemaker = await aws_client("sagemaker", emu)
        await sagemaker.create_training_job(**training("hetero", groups=[(M5, 1), (C5, 2)]))
        _, message = await error_of(
            sagemaker.create_training_job, **training("c5", instance_type=C5, count=2)
        )
        assert message == refusal(f"{C5} for training job usage", 3, 2, 2)
        _, message = await error_of(sagemaker.create_training_job, **training("m5", count=2))
        assert message == refusal(total, 4, 3, 2)
        await sagemaker.create_training_job(**training("m5", count=1))
        record = family(emu, "training")
        assert record["instances"] == {"current": 4, "peak": 4}
        assert record["instance_types"] == {
            C5: {"current": 2, "peak": 2},
            M5: {"current": 2, "peak": 2},
        }
        assert emu.concurrency_report()["usage"][total] == 4


async def test_spot_training_has_its_own_quota(fake_clock: FakeClock, aws_client: Any) -> None:
    spot = f"{M5} for spot training job usage"
    async with Emulator(clock=fake_clock, quotas={TRAINING_M5: 1, spot: 1}) as emu:
        sagemaker = await aws_client("sagemaker", emu)
        await sagemaker.create_training_job(**training("on-demand"))
        await sagemaker.create_training_job(**training("spot-1", spot=True))
        _, message = await error_of(sagemaker.create_training_job, **training("spot-2", spot=True))
        assert message == refusal(spot, 1, 1, 1)
        assert family(emu, "spot training")["jobs"] == {"current": 1, "peak": 1}
        assert family(emu, "training")["jobs"] == {"current": 1, "peak": 1}


# -- families ------------------------------------------------------------------


async def test_each_family_is_counted_on_its_own(
    fake_clock: FakeClock, aws_client: Any
) -> None:
    quotas = {
        TRAINING_M5: 1,
        f"{M5} for processing job usage": 2,
        f"{M5} for transform job usage": 1,
    }
    async with Emulator(clock=fake_clock, quotas=quotas) as emu:
        sagemaker = await aws_client("sagemaker", emu)
        await create_model(sagemaker)
        await sagemaker.create_training_job(**training("train"))
        await sagemaker.create_processing_job(**processing("prep", count=2))
        await sagemaker.create_transform_job(**transform("batch"))

        _, message = await error_of(sagemaker.create_processing_job, **processing("prep-2"))
        assert message == refusal(f"{M5} for processing job usage", 2, 2, 1)
        _, message = await error_of(sagemaker.create_transform_job, **transform("batch-2"))
        assert message == refusal(f"{M5} for transform job usage", 1, 1, 1)
        assert await error_of(sagemaker.describe_transform_job, TransformJobName="batch-2") == (
            "ValidationException",
            "Requested resource not found.",
        )
        listed = await sagemaker.list_processing_jobs()
        assert [j["ProcessingJobName"] for j in listed["ProcessingJobSummaries"]] == ["prep"]

        fake_clock.advance(10)  # all three end: each family frees its own
        await sagemaker.create_processing_job(**processing("prep-2"))
        await sagemaker.create_transform_job(**transform("batch-2"))
        await sagemaker.create_training_job(**training("train-2"))
        report = emu.concurrency_report()
        assert {name: f["instances"] for name, f in report["families"].items()} == {
            "training": {"current": 1, "peak": 1},
            "spot training": {"current": 0, "peak": 0},
            "processing": {"current": 1, "peak": 2},
            "transform": {"current": 1, "peak": 1},
            "endpoint": {"current": 0, "peak": 0},
            "hyperparameter tuning": {"current": 0, "peak": 0},
        }
        assert report["refused"] == {
            f"{M5} for processing job usage": 1,
            f"{M5} for transform job usage": 1,
        }


async def test_concurrent_job_quota(fake_clock: FakeClock, aws_client: Any) -> None:
    jobs = "Number of concurrent training jobs"
    async with Emulator(clock=fake_clock, quotas={jobs: 3}) as emu:
        sagemaker = await aws_client("sagemaker", emu)
        await sagemaker.create_training_job(**training("a", count=5))
        await sagemaker.create_training_job(**training("b", instance_type=C5))
        await sagemaker.create_training_job(**training("c", spot=True))  # spot ones count too
        code, message = await error_of(sagemaker.create_training_job, **training("d"))
        assert (code, message) == ("ResourceLimitExceeded", refusal(jobs, 3, 3, 1, "Jobs"))
        assert message.startswith(
            "The account-level service limit 'Number of concurrent training jobs' is 3 Jobs, "
            "with current utilization of 3 Jobs and a request delta of 1 Jobs. "
        )
        await sagemaker.stop_training_job(TrainingJobName="b")
        fake_clock.advance(1)  # Stopped after the default stop delay
        await sagemaker.create_training_job(**training("d"))


async def test_endpoint_usage(fake_clock: FakeClock, aws_client: Any) -> None:
    quota = f"{M5} for endpoint usage"
    async with Emulator(clock=fake_clock, quotas={quota: 3}) as emu:
        sagemaker = await aws_client("sagemaker", emu)
        await create_model(sagemaker)
        await sagemaker.create_endpoint_config(**endpoint_config("two", (M5, 1), (M5, 1)))
        await sagemaker.create_endpoint_config(**endpoint_config("one", (M5, 1), (C5, 4)))
        await sagemaker.create_endpoint_config(**endpoint_config("single", (M5, 1)))
        await sagemaker.create_endpoint_config(
            **endpoint_config("rollback", (M5, 1), update_outcome="RollingBack")
        )
        await sagemaker.create_endpoint(EndpointName="a", EndpointConfigName="two")
        code, message = await error_of(
            sagemaker.create_endpoint, EndpointName="b", EndpointConfigName="two"
        )
        assert (code, message) == ("ResourceLimitExceeded", refusal(quota, 3, 2, 2))
        code, _ = await error_of(sagemaker.describe_endpoint, EndpointName="b")
        assert code == "ValidationException"
        listed = await sagemaker.list_endpoints()
        assert [e["EndpointName"] for e in listed["Endpoints"]] == ["a"]

        fake_clock.advance(4)  # "a" is InService on 2 instances
        # an update brings the new fleet up next to the old one: 2 + 1 fit in 3
        await sagemaker.update_endpoint(EndpointName="a", EndpointConfigName="one")
        assert family(emu, "endpoint")["instance_types"][M5] == {"current": 3, "peak": 3}
        fake_clock.advance(4)  # the update is done: only the new fleet is left
        assert family(emu, "endpoint")["instance_types"][M5] == {"current": 1, "peak": 3}
        await sagemaker.create_endpoint(EndpointName="b", EndpointConfigName="two")
        _, message = await error_of(
            sagemaker.create_endpoint, EndpointName="c", EndpointConfigName="single"
        )
        assert message == refusal(quota, 3, 3, 1)

        fake_clock.advance(4)
        await sagemaker.delete_endpoint(EndpointName="b")
        fake_clock.advance(0.5)  # Deleting still holds its instances
        code, _ = await error_of(
            sagemaker.create_endpoint, EndpointName="c", EndpointConfigName="single"
        )
        assert code == "ResourceLimitExceeded"
        fake_clock.advance(0.5)  # gone
        await sagemaker.create_endpoint(EndpointName="c", EndpointConfigName="single")
        fake_clock.advance(4)
        # a rolled back update lets the new fleet go again
        await sagemaker.update_endpoint(EndpointName="c", EndpointConfigName="rollback")
        assert family(emu, "endpoint")["instance_types"][M5]["current"] == 3
        fake_clock.advance(5)
        described = await sagemaker.describe_endpoint(EndpointName="c")
        assert described["EndpointStatus"] == "InService"
        assert "FailureReason" in described
        record = family(emu, "endpoint")
        assert record["instance_types"][M5]["current"] == 2
        assert record["jobs"] == {"current": 2, "peak": 2}


async def test_a_failed_endpoint_frees_its_instances(
    fake_clock: FakeClock, aws_client: Any
) -> None:
    async with Emulator(clock=fake_clock, quotas={f"{M5} for endpoint usage": 1}) as emu:
        sagemaker = await aws_client("sagemaker", emu)
        await create_model(sagemaker)
        await sagemaker.create_endpoint_config(**endpoint_config("bad", (M5, 1), outcome="Failed"))
        await sagemaker.create_endpoint_config(**endpoint_config("good", (M5, 1)))
        await sagemaker.create_endpoint(EndpointName="bad", EndpointConfigName="bad")
        code, _ = await error_of(
            sagemaker.create_endpoint, EndpointName="good", EndpointConfigName="good"
        )
        assert code == "ResourceLimitExceeded"
        fake_clock.advance(4)
        assert (await sagemaker.describe_endpoint(EndpointName="bad"))["EndpointStatus"] == (
            "Failed"
        )
        await sagemaker.create_endpoint(EndpointName="good", EndpointConfigName="good")


async def test_tuning_jobs_and_their_children(fake_clock: FakeClock, aws_client: Any) -> None:
    tunings = "Number of concurrent hyperparameter tuning jobs"
    async with Emulator(clock=fake_clock, quotas={tunings: 1, TRAINING_M5: 3}) as emu:
        sagemaker = await aws_client("sagemaker", emu)
        await sagemaker.create_training_job(**training("other", duration="100"))
        await sagemaker.create_hyper_parameter_tuning_job(**tuning("tune-1", parallel=2))
        _, message = await error_of(
            sagemaker.create_hyper_parameter_tuning_job, **tuning("tune-2")
        )
        assert message == refusal(tunings, 1, 1, 1, "Jobs")
        assert family(emu, "training")["jobs"]["current"] == 3  # two children and "other"
        _, message = await error_of(sagemaker.create_training_job, **training("more"))
        assert message == refusal(TRAINING_M5, 3, 3, 1)

        fake_clock.advance(40)  # four children, two at a time, 10 s each
        described = await sagemaker.describe_hyper_parameter_tuning_job(
            HyperParameterTuningJobName="tune-1"
        )
        assert described["HyperParameterTuningJobStatus"] == "Completed"
        # a child that a quota refuses fails its tuning job
        emu.quotas = {tunings: 1, TRAINING_M5: 2}
        await sagemaker.create_hyper_parameter_tuning_job(**tuning("tune-2", parallel=2))
        described = await sagemaker.describe_hyper_parameter_tuning_job(
            HyperParameterTuningJobName="tune-2"
        )
        assert described["HyperParameterTuningJobStatus"] == "Failed"
        assert described["FailureReason"] == "ClientError: " + refusal(TRAINING_M5, 2, 2, 1)
        assert family(emu, "hyperparameter tuning")["jobs"] == {"current": 0, "peak": 1}


# -- the record of concurrency -----------------------------------------------------


async def test_concurrency_record_peaks_and_reset(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    for n, duration in enumerate(("4", "6", "8"), start=1):
        await sagemaker.create_training_job(**training(f"job-{n}", count=n, duration=duration))
    fake_clock.advance(5)  # job-1 ended
    await sagemaker.create_training_job(**training("job-4", instance_type=C5))
    record = family(fake_emulator, "training")
    assert record == {
        "jobs": {"current": 3, "peak": 3},
        "instances": {"current": 6, "peak": 6},
        "instance_types": {C5: {"current": 1, "peak": 1}, M5: {"current": 5, "peak": 6}},
    }
    fake_clock.advance(10)  # all ended
    record = family(fake_emulator, "training")
    assert record["jobs"] == {"current": 0, "peak": 3}
    assert record["instances"] == {"current": 0, "peak": 6}

    fake_emulator.reset_concurrency()
    report = fake_emulator.concurrency_report()
    assert report["since"] == START + 15
    assert report["families"]["training"] == {
        "jobs": {"current": 0, "peak": 0},
        "instances": {"current": 0, "peak": 0},
        "instance_types": {},
    }
    assert report["usage"] == {}
    assert report["refused"] == {}
    # the in-process record is the same object the emulator's SageMaker keeps
    assert fake_emulator.sagemaker.concurrency.report() == report


async def test_quotas_set_later_count_jobs_already_running(
    fake_emulator: Emulator, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_training_job(**training("job-1"))
    await sagemaker.create_training_job(**training("job-2"))
    fake_emulator.quotas = {TRAINING_M5: 2}
    assert fake_emulator.quotas == Quotas({TRAINING_M5: 2})
    _, message = await error_of(sagemaker.create_training_job, **training("job-3"))
    assert message == refusal(TRAINING_M5, 2, 2, 1)
    fake_emulator.quotas = {}  # lowering or lifting a quota stops nothing
    await sagemaker.create_training_job(**training("job-3"))
    with pytest.raises(ValueError, match="unknown quota"):
        fake_emulator.quotas = {"ml.m5.large for training usage": 2}


async def test_quotas_are_off_by_default(fake_emulator: Emulator, aws_client: Any) -> None:
    assert len(fake_emulator.quotas) == 0
    assert Quotas.defaults() == {}
    sagemaker = await aws_client("sagemaker", fake_emulator)
    for n in range(30):
        await sagemaker.create_training_job(**training(f"job-{n}", count=20))
    report = fake_emulator.concurrency_report()
    assert report["families"]["training"]["instances"] == {"current": 600, "peak": 600}
    assert report["refused"] == {}


async def test_real_clock_frees_instances_when_a_short_job_ends(
    aws_client: Any,
) -> None:
    async with Emulator(quotas={TRAINING_M5: 1}) as emu:
        sagemaker = await aws_client("sagemaker", emu)
        await sagemaker.create_training_job(**training("short", duration="0.3"))
        code, _ = await error_of(sagemaker.create_training_job, **training("next"))
        assert code == "ResourceLimitExceeded"
        deadline = time.monotonic() + 10
        while True:  # polls until accepted: the instance is free once "short" ended
            try:
                await sagemaker.create_training_job(**training("next"))
                break
            except sagemaker.exceptions.ResourceLimitExceeded:
                assert time.monotonic() < deadline, "the instance was never freed"
                await anyio.sleep(0.05)
        described = await sagemaker.describe_training_job(TrainingJobName="short")
        assert described["TrainingJobStatus"] == "Completed"


# -- configuration ---------------------------------------------------------------


def test_quotas_validate_names_and_limits() -> None:
    assert dict(Quotas({TRAINING_M5: 2, "Number of concurrent transform jobs": 1.5})) == {
        TRAINING_M5: 2,
        "Number of concurrent transform jobs": 1.5,
    }
    for name in (
        "ml.m5.large for training usage",
        "m5.large for training job usage",
        "Number of concurrent endpoints",
        "",
    ):
        with pytest.raises(ValueError, match="unknown quota"):
            Quotas({name: 1})
    for limit in (-1, "2", None, True, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="must be a number >= 0"):
            Quotas({TRAINING_M5: limit})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="unknown quota"):
        serve(quotas={"bogus": 1})  # refused before anything starts


async def test_admin_endpoints(limited: Emulator, aws_client: Any) -> None:
    sagemaker = await aws_client("sagemaker", limited)
    url = limited.url + "/_emulator"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/quotas") as response:
            assert response.status == 200
            assert await response.json() == {TRAINING_M5: 2}
        replaced = {TRAINING_M5: 1, "Number of concurrent training jobs": 5}
        async with http.post(f"{url}/quotas", json=replaced) as response:
            assert response.status == 200
            assert await response.json() == replaced
        assert limited.quotas == replaced

        bad_bodies: list[tuple[Any, str]] = [
            ({TRAINING_M5: -1}, "must be a number >= 0"),
            ({TRAINING_M5: "2"}, "must be a number >= 0"),
            ({"ml.m5.large for training": 2}, "unknown quota"),
            ([TRAINING_M5, 2], "JSON object"),
        ]
        for body, wanted in bad_bodies:
            async with http.post(f"{url}/quotas", json=body) as response:
                assert response.status == 400
                assert wanted in (await response.json())["error"]
        async with http.post(f"{url}/quotas", data=b"{not json") as response:
            assert response.status == 400
        assert limited.quotas == replaced  # a refused body changes nothing

        await sagemaker.create_training_job(**training("job-1"))
        code, _ = await error_of(sagemaker.create_training_job, **training("job-2"))
        assert code == "ResourceLimitExceeded"
        async with http.get(f"{url}/concurrency") as response:
            report = await response.json()
        assert report["families"]["training"]["jobs"] == {"current": 1, "peak": 1}
        assert report["usage"] == {
            TRAINING_M5: 1,
            "Number of concurrent training jobs": 1,
            "Number of instances across all training jobs": 1,
        }
        assert report["refused"] == {TRAINING_M5: 1}
        async with http.post(f"{url}/concurrency") as response:
            report = await response.json()
        assert report["refused"] == {}
        assert report["since"] == START
        assert report["families"]["training"]["jobs"] == {"current": 1, "peak": 1}

        async with http.post(f"{url}/quotas", json={}) as response:
            assert await response.json() == {}
        await sagemaker.create_training_job(**training("job-2"))
