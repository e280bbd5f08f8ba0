"""List* of every kind: each filter of its botocore input shape, AWS's sorting and
pagination, and an index that answers LastModifiedTimeAfter at 10,000 jobs
without looking at them all."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from botocore import xform_name

from smrun.emulator import Emulator, FakeClock
from tests.helpers import assert_fits_the_model, error_of

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/img:1"
PUBLIC_TEAM = "arn:aws:sagemaker:us-east-1:394669845002:workteam/public-crowd/default"
PLAN = "arn:aws:sagemaker:us-east-1:123456789012:training-plan/plan-1"
START = FakeClock().now


def behaviour(**tags: str) -> list[dict[str, str]]:
    return [{"Key": f"smrun:emulator:{k.replace('_', '-')}", "Value": v} for k, v in tags.items()]


# -- a request of each kind ------------------------------------------------------


def training_request(name: str, **tags: str) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/out/"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "Tags": behaviour(log_lines="2", **tags),
    }


def processing_request(name: str, **tags: str) -> dict[str, Any]:
    return {
        "ProcessingJobName": name,
        "RoleArn": ROLE,
        "AppSpecification": {"ImageUri": IMAGE},
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceType": "ml.m5.large",
                "InstanceCount": 1,
                "VolumeSizeInGB": 10,
            }
        },
        "Tags": behaviour(log_lines="2", **tags),
    }


def transform_request(name: str, **tags: str) -> dict[str, Any]:
    return {
        "TransformJobName": name,
        "ModelName": "model-1",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bucket/in/"}}
        },
        "TransformOutput": {"S3OutputPath": "s3://bucket/out/"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        "Tags": behaviour(log_lines="2", records="2", **tags),
    }


def labeling_request(name: str, **tags: str) -> dict[str, Any]:
    return {
        "LabelingJobName": name,
        "LabelAttributeName": "species",
        "InputConfig": {
            "DataSource": {"S3DataSource": {"ManifestS3Uri": "s3://bucket/in/input.manifest"}}
        },
        "OutputConfig": {"S3OutputPath": "s3://bucket/labels/"},
        "RoleArn": ROLE,
        "HumanTaskConfig": {
            "WorkteamArn": PUBLIC_TEAM,
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
        "Tags": behaviour(log_lines="2", **tags),
    }


def tuning_request(name: str, **tags: str) -> dict[str, Any]:
    duration = tags.pop("duration", "6")
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Random",
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "loss"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 1, "MaxParallelTrainingJobs": 1},
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
            "ResourceConfig": {
                "InstanceType": "ml.m5.large",
                "InstanceCount": 1,
                "VolumeSizeInGB": 10,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        },
        "Tags": behaviour(child_duration=duration, log_lines="2", **tags),
    }


@dataclass(frozen=True)
class Kind:
    noun: str  # "TrainingJob"
    request: Callable[..., dict[str, Any]]
    summaries: str = ""
    default_sort: str = "CreationTime"
    default_order: str = "Ascending"
    status_after_page: bool = False  # as ListTrainingJobs documents StatusEquals

    def op(self, verb: str) -> str:
        suffix = "s" if verb == "List" else ""
        return xform_name(f"{verb}{self.noun}{suffix}")

    @property
    def list_operation(self) -> str:
        return f"List{self.noun}s"

    @property
    def name_member(self) -> str:
        return f"{self.noun}Name"

    @property
    def status_member(self) -> str:
        return f"{self.noun}Status"

    @property
    def page_member(self) -> str:
        return self.summaries or f"{self.noun}Summaries"


KINDS = {
    "training": Kind("TrainingJob", training_request, status_after_page=True),
    "processing": Kind("ProcessingJob", processing_request, status_after_page=True),
    "transform": Kind(
        "TransformJob", transform_request, default_order="Descending", status_after_page=True
    ),
    "labeling": Kind("LabelingJob", labeling_request, summaries="LabelingJobSummaryList"),
    "tuning": Kind("HyperParameterTuningJob", tuning_request, default_sort="Name"),
}

# Created at START + 1, 2, ... 6 in this order: names don't sort as creation does.
NAMES = ["d-job", "a-job", "f-job", "b-job", "e-job", "c-job"]


async def six_jobs(sagemaker: Any, clock: FakeClock, kind: Kind) -> None:
    """NAMES[i] created at START + i + 1, each running 10 s; e-job (created at
    5 s) stopped at 7 s, Stopped at 8 s. The clock is left at START + 7."""
    if kind.noun == "TransformJob":
        await sagemaker.create_model(
            ModelName="model-1", PrimaryContainer={"Image": IMAGE}, ExecutionRoleArn=ROLE
        )
    for i, name in enumerate(NAMES, start=1):
        clock.set(START + i)
        await getattr(sagemaker, kind.op("Create"))(**kind.request(name, duration="10"))
    clock.set(START + 7)
    await getattr(sagemaker, kind.op("Stop"))(**{kind.name_member: "e-job"})


def names_of(kind: Kind, page: dict[str, Any]) -> list[str]:
    return [s[kind.name_member] for s in page[kind.page_member]]


async def every_page(list_call: Any, kind: Kind, **params: Any) -> list[str]:
    names: list[str] = []
    while True:
        page = await list_call(**params)
        names += names_of(kind, page)
        if "NextToken" not in page:
            return names
        params["NextToken"] = page["NextToken"]


@pytest.mark.parametrize("kind", KINDS.values(), ids=list(KINDS))
async def test_every_filter_sort_and_page_of_each_kind(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any, kind: Kind
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    list_jobs = getattr(sagemaker, kind.op("List"))
    await six_jobs(sagemaker, fake_clock, kind)
    by_creation = list(NAMES)

    # LastModifiedTime moves as a job changes status, on the clock: a-job
    # (created at 2 s) ends at 12 s and is modified after 11.5 s only from then on
    fake_clock.set(START + 11.9)
    early = names_of(kind, await list_jobs(LastModifiedTimeAfter=START + 11.5, MaxResults=100))
    assert "a-job" not in early
    fake_clock.set(START + 12)
    everything = await list_jobs(MaxResults=100)
    assert_fits_the_model(everything, kind.list_operation)
    summaries = {s[kind.name_member]: s for s in everything[kind.page_member]}
    assert set(summaries) == set(NAMES)
    assert {n for n, s in summaries.items() if s[kind.status_member] == "Completed"} == {
        "d-job",
        "a-job",
    }
    assert summaries["e-job"][kind.status_member] == "Stopped"
    late = names_of(kind, await list_jobs(LastModifiedTimeAfter=START + 11.5, MaxResults=100))
    assert "a-job" in late

    # every bound is strict, and agrees with the summaries' LastModifiedTime
    modified = {n: s["LastModifiedTime"].timestamp() for n, s in summaries.items()}
    assert modified["e-job"] == START + 8  # Stopped
    assert modified["a-job"] == START + 12  # Completed
    for bound in (START + 8, START + 10.5, START + 11.5):
        after = await list_jobs(LastModifiedTimeAfter=bound, MaxResults=100)
        assert set(names_of(kind, after)) == {n for n, at in modified.items() if at > bound}
        before = await list_jobs(LastModifiedTimeBefore=bound, MaxResults=100)
        assert set(names_of(kind, before)) == {n for n, at in modified.items() if at < bound}
    window = await list_jobs(
        LastModifiedTimeAfter=START + 7.5, LastModifiedTimeBefore=START + 11.5, MaxResults=100
    )
    assert set(names_of(kind, window)) == {
        n for n, at in modified.items() if START + 7.5 < at < START + 11.5
    }
    assert {"d-job", "e-job"} <= set(names_of(kind, window))  # ended at 11, stopped at 8

    created = await list_jobs(CreationTimeAfter=START + 2, CreationTimeBefore=START + 5)
    assert set(names_of(kind, created)) == {"f-job", "b-job"}  # created at 3 and 4 s
    assert set(names_of(kind, await list_jobs(NameContains="B-J"))) == {"b-job"}

    # sorting: each key, each order, and the operation's defaults
    orders = {
        "CreationTime": by_creation,
        "Name": sorted(NAMES),
        # Completed, InProgress, Stopped; then by creation
        "Status": ["d-job", "a-job", "f-job", "b-job", "c-job", "e-job"],
    }
    for sort_by, ascending in orders.items():
        assert names_of(kind, await list_jobs(SortBy=sort_by, SortOrder="Ascending")) == ascending
        descending = await list_jobs(SortBy=sort_by, SortOrder="Descending")
        assert names_of(kind, descending) == ascending[::-1]
    default = orders[kind.default_sort]
    if kind.default_order == "Descending":
        default = default[::-1]
    assert names_of(kind, await list_jobs()) == default

    # StatusEquals: ListTrainingJobs (and the kinds that copy it) picks MaxResults
    # jobs first and filters them by status after, so a page can be empty while
    # more match; the others filter first
    completed = await list_jobs(StatusEquals="Completed", MaxResults=100)
    assert set(names_of(kind, completed)) == {"d-job", "a-job"}
    newest = await list_jobs(
        StatusEquals="Completed", MaxResults=2, SortBy="CreationTime", SortOrder="Descending"
    )
    if kind.status_after_page:  # c-job and e-job are the newest two
        assert names_of(kind, newest) == [] and "NextToken" in newest
    else:
        assert names_of(kind, newest) == ["a-job", "d-job"] and "NextToken" not in newest

    # pages of 2 cover every job once; a job created between pages shifts nothing
    # (f-job completes at 13 s meanwhile: no matter)
    first = await list_jobs(MaxResults=2, SortBy="CreationTime", SortOrder="Ascending")
    assert names_of(kind, first) == by_creation[:2]
    fake_clock.set(START + 13)
    await getattr(sagemaker, kind.op("Create"))(**kind.request("g-job", duration="10"))
    rest = await every_page(
        list_jobs, kind, MaxResults=2, SortBy="CreationTime", SortOrder="Ascending",
        NextToken=first["NextToken"],
    )
    assert rest == [*by_creation[2:], "g-job"]
    by_name = await every_page(list_jobs, kind, MaxResults=4, SortBy="Name", SortOrder="Descending")
    assert by_name == sorted([*NAMES, "g-job"], reverse=True)

    code, message = await error_of(list_jobs, NextToken="not-a-token")
    assert (code, message) == ("ValidationException", "Invalid pagination token.")


async def test_training_summaries_carry_the_secondary_status_and_plan_filters(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    planned = training_request("planned", duration="10")
    planned["ResourceConfig"]["TrainingPlanArn"] = PLAN
    await sagemaker.create_training_job(**planned)
    await sagemaker.create_training_job(**training_request("unplanned", duration="10"))
    fake_clock.set(START + 3)  # Downloading from 1 s, Training from 2.5 s
    page = await sagemaker.list_training_jobs(LastModifiedTimeAfter=START + 2)
    summaries = {s["TrainingJobName"]: s for s in page["TrainingJobSummaries"]}
    assert {n: s["SecondaryStatus"] for n, s in summaries.items()} == {
        "planned": "Training",
        "unplanned": "Training",
    }
    assert summaries["planned"]["LastModifiedTime"].timestamp() == START + 2.5
    assert summaries["planned"]["TrainingPlanArn"] == PLAN
    assert "TrainingPlanArn" not in summaries["unplanned"]
    assert "TrainingEndTime" not in summaries["planned"]
    only = await sagemaker.list_training_jobs(TrainingPlanArnEquals=PLAN)
    assert [s["TrainingJobName"] for s in only["TrainingJobSummaries"]] == ["planned"]
    pooled = await sagemaker.list_training_jobs(WarmPoolStatusEquals="Available")
    assert pooled["TrainingJobSummaries"] == []
    fake_clock.set(START + 10)
    ended = await sagemaker.list_training_jobs(StatusEquals="Completed")
    ends = [s["TrainingEndTime"].timestamp() for s in ended["TrainingJobSummaries"]]
    assert ends == [START + 10, START + 10]


async def test_list_endpoints_follows_deployments_and_deletes(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_model(
        ModelName="m", PrimaryContainer={"Image": IMAGE}, ExecutionRoleArn=ROLE
    )
    await sagemaker.create_endpoint_config(
        EndpointConfigName="c",
        ProductionVariants=[
            {"VariantName": "v", "ModelName": "m", "InstanceType": "ml.m5.large",
             "InitialInstanceCount": 1}
        ],
    )
    for i, name in enumerate(["ep-b", "ep-a", "ep-c"], start=1):
        fake_clock.set(START + i)
        await sagemaker.create_endpoint(
            EndpointName=name, EndpointConfigName="c", Tags=behaviour(duration=str(2 * i))
        )
    # ep-b InService at 3 s, ep-a at 6 s, ep-c at 9 s
    fake_clock.set(START + 7)

    def names(page: dict[str, Any]) -> list[str]:
        return [e["EndpointName"] for e in page["Endpoints"]]

    listed = await sagemaker.list_endpoints()
    assert_fits_the_model(listed, "ListEndpoints")
    assert names(listed) == ["ep-c", "ep-a", "ep-b"]  # newest first unless told otherwise
    assert names(await sagemaker.list_endpoints(StatusEquals="Creating")) == ["ep-c"]
    changed = await sagemaker.list_endpoints(LastModifiedTimeAfter=START + 4)
    assert names(changed) == ["ep-a"]
    assert names(await sagemaker.list_endpoints(LastModifiedTimeBefore=START + 4)) == [
        "ep-c", "ep-b"
    ]
    assert names(await sagemaker.list_endpoints(SortBy="Name", SortOrder="Ascending")) == [
        "ep-a", "ep-b", "ep-c"
    ]
    by_status = await sagemaker.list_endpoints(SortBy="Status", SortOrder="Ascending")
    assert names(by_status) == ["ep-c", "ep-b", "ep-a"]  # Creating, then InService by creation
    paged = await every_page_of_endpoints(sagemaker, MaxResults=1, SortOrder="Ascending")
    assert paged == ["ep-b", "ep-a", "ep-c"]
    assert names(await sagemaker.list_endpoints(NameContains="P-A")) == ["ep-a"]
    assert names(await sagemaker.list_endpoints(CreationTimeAfter=START + 1)) == ["ep-c", "ep-a"]

    await sagemaker.delete_endpoint(EndpointName="ep-b")
    deleting = await sagemaker.list_endpoints(StatusEquals="Deleting")
    assert names(deleting) == ["ep-b"]
    assert deleting["Endpoints"][0]["LastModifiedTime"].timestamp() == START + 7
    fake_clock.set(START + 9)
    assert names(await sagemaker.list_endpoints()) == ["ep-c", "ep-a"]


async def every_page_of_endpoints(sagemaker: Any, **params: Any) -> list[str]:
    names: list[str] = []
    while True:
        page = await sagemaker.list_endpoints(**params)
        names += [e["EndpointName"] for e in page["Endpoints"]]
        if "NextToken" not in page:
            return names
        params["NextToken"] = page["NextToken"]


# -- at scale -------------------------------------------------------------------

JOBS = 10_000


def bulk_request(i: int) -> dict[str, Any]:
    """A CreateTrainingJob request as the emulator holds it once validated."""
    request = training_request(f"bulk-{i:05d}", duration="1000")
    request["Tags"] = behaviour(duration="1000", log_lines="0")
    return request


async def test_ten_thousand_jobs_answer_last_modified_after_from_the_index(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    # 10,000 creates over HTTP would be the test's whole cost: they go through
    # the training table directly, one every 10 ms of the clock.
    trainings = fake_emulator.sagemaker.kinds["training"]
    created: list[float] = []
    for i in range(JOBS):
        fake_clock.set(START + i * 0.01)
        created.append(fake_emulator.advance())
        trainings.start(bulk_request(i), created[-1])
    # Downloading begins 100 s after creation: at START + 200 every job is
    # Downloading, the last 19 of them since after START + 199.805.
    fake_clock.set(START + 200)
    fake_emulator.advance()
    bound = START + 199.805
    expected = {f"bulk-{i:05d}" for i, at in enumerate(created) if at + 0.1 * 1000 > bound}
    assert len(expected) == 19

    sagemaker = await aws_client("sagemaker", fake_emulator)
    timings = []
    for _ in range(3):
        began = time.perf_counter()
        page = await sagemaker.list_training_jobs(LastModifiedTimeAfter=bound, MaxResults=100)
        timings.append(time.perf_counter() - began)
    summaries = page["TrainingJobSummaries"]
    assert {s["TrainingJobName"] for s in summaries} == expected
    assert {(s["TrainingJobStatus"], s["SecondaryStatus"]) for s in summaries} == {
        ("InProgress", "Downloading")
    }
    assert all(s["LastModifiedTime"].timestamp() > bound for s in summaries)
    assert trainings.index.examined == len(expected)  # the index handed over just those
    # a sanity bound on the whole round trip (client included), not a benchmark
    assert min(timings) < 0.05, timings

    # without a narrowing filter, a page of the sort order costs a page
    oldest = await sagemaker.list_training_jobs(MaxResults=100)
    assert [s["TrainingJobName"] for s in oldest["TrainingJobSummaries"]] == [
        f"bulk-{i:05d}" for i in range(100)
    ]
    assert trainings.index.examined == 101
    newest = await sagemaker.list_training_jobs(MaxResults=100, SortOrder="Descending")
    assert [s["TrainingJobName"] for s in newest["TrainingJobSummaries"]] == [
        f"bulk-{i:05d}" for i in range(JOBS - 1, JOBS - 101, -1)
    ]
