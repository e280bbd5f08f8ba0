"""Hyperparameter tuning jobs: the emulator's lifecycle on a fake clock, and the
engine driving them on the emulator (outputs, failure, stop, cancel, child logs)."""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from typing import Any

import anyio
import pytest

from smrun import LogLine, Outcome, Runner, Settings, StatusChanged
from smrun.budget import Budgets
from smrun.emulator import Emulator, FakeClock
from smrun.emulator.logs import LogsService, LogStore
from smrun.emulator.tuning import TuningJobs
from smrun.handlers.tuning import choose_tails
from smrun.logs import LogFollower
from smrun.types import LogSource
from tests.helpers import emulator_config, error_of

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/algo:1"
METRIC = "validation:loss"
START = FakeClock().now
# the emulator's last line of a stream reaches CloudWatch 0.5 s after the job ended
DRAIN = 0.7
CHILD_NAME = re.compile(r"^(?P<tuning>.+)-(?P<n>\d{3})-[0-9a-f]{8}$")


def tuning_request(
    name: str | None = "tune-1",
    *,
    max_jobs: int = 5,
    parallel: int = 2,
    objective: str = "Minimize",
    seed: int | None = None,
    **tags: str,
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "Strategy": "Bayesian",
        "HyperParameterTuningJobObjective": {"Type": objective, "MetricName": METRIC},
        "ResourceLimits": {
            "MaxNumberOfTrainingJobs": max_jobs,
            "MaxParallelTrainingJobs": parallel,
        },
        "ParameterRanges": {
            "IntegerParameterRanges": [{"Name": "epochs", "MinValue": "1", "MaxValue": "10"}],
            "ContinuousParameterRanges": [
                {
                    "Name": "lr",
                    "MinValue": "0.0001",
                    "MaxValue": "0.1",
                    "ScalingType": "Logarithmic",
                }
            ],
            "CategoricalParameterRanges": [{"Name": "optimizer", "Values": ["sgd", "adam"]}],
        },
    }
    if seed is not None:
        config["RandomSeed"] = seed
    request: dict[str, Any] = {
        "HyperParameterTuningJobConfig": config,
        "TrainingJobDefinition": {
            "StaticHyperParameters": {"batch_size": "32"},
            "AlgorithmSpecification": {
                "TrainingImage": IMAGE,
                "TrainingInputMode": "File",
                "MetricDefinitions": [{"Name": METRIC, "Regex": "loss=(\\S+)"}],
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
        "Tags": [
            {"Key": f"smrun:emulator:{key.replace('_', '-')}", "Value": value}
            for key, value in tags.items()
        ],
    }
    if name is not None:
        request["HyperParameterTuningJobName"] = name
    return request


async def children_of(sagemaker: Any, name: str = "tune-1") -> list[dict[str, Any]]:
    page = await sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name, MaxResults=100, SortBy="Name"
    )
    return list(page["TrainingJobSummaries"])


async def describe_at(sagemaker: Any, clock: FakeClock, at: float, name: str = "tune-1") -> Any:
    clock.set(START + at)
    return await sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)


# -- the emulator -------------------------------------------------------------


async def test_children_respect_the_parallel_limit_and_start_as_others_end(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_hyper_parameter_tuning_job(**tuning_request(child_duration="2,5"))
    # children run 2, 5, 2, 5, 2 seconds, two at a time:
    # 1: 0-2, 2: 0-5, 3: 2-4, 4: 4-9, 5: 5-7
    expected = {
        0.0: (0, 2),
        1.9: (0, 2),
        2.0: (1, 2),
        4.5: (2, 2),
        5.0: (3, 2),
        7.0: (4, 1),
        8.9: (4, 1),
        9.0: (5, 0),
        30.0: (5, 0),
    }
    for at, (completed, running) in expected.items():
        described = await describe_at(sagemaker, fake_clock, at)
        counters = described["TrainingJobStatusCounters"]
        assert (counters["Completed"], counters["InProgress"]) == (completed, running), at
        assert described["ObjectiveStatusCounters"]["Pending"] == running
        status = "Completed" if at >= 9 else "InProgress"
        assert described["HyperParameterTuningJobStatus"] == status, at
        children = await children_of(sagemaker)
        assert sum(c["TrainingJobStatus"] == "InProgress" for c in children) <= 2
    children = await children_of(sagemaker)
    starts = [c["CreationTime"].timestamp() - START for c in children]
    assert starts == [0.0, 0.0, 2.0, 4.0, 5.0]
    numbers = []
    for child in children:
        match = CHILD_NAME.match(child["TrainingJobName"])
        assert match is not None and match["tuning"] == "tune-1"
        numbers.append(int(match["n"]))
        assert child["TuningJobName"] == "tune-1"
        assert child["ObjectiveStatus"] == "Succeeded"
    assert numbers == [1, 2, 3, 4, 5]
    done = await describe_at(sagemaker, fake_clock, 30.0)
    assert done["HyperParameterTuningEndTime"].timestamp() == START + 9
    assert done["TrainingJobStatusCounters"] == {
        "Completed": 5,
        "InProgress": 0,
        "RetryableError": 0,
        "NonRetryableError": 0,
        "Stopped": 0,
    }
    assert done["ObjectiveStatusCounters"] == {"Succeeded": 5, "Pending": 0, "Failed": 0}
    # the request is echoed
    assert done["TrainingJobDefinition"]["StaticHyperParameters"] == {"batch_size": "32"}
    limits = done["HyperParameterTuningJobConfig"]["ResourceLimits"]
    assert limits["MaxParallelTrainingJobs"] == 2


async def test_children_are_training_jobs_with_drawn_hyperparameters(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_hyper_parameter_tuning_job(**tuning_request(max_jobs=4, seed=7))
    fake_clock.advance(60)
    children = await children_of(sagemaker)
    assert len(children) == 4
    for child in children:
        tuned = child["TunedHyperParameters"]
        assert set(tuned) == {"epochs", "lr", "optimizer"}
        assert 1 <= int(tuned["epochs"]) <= 10
        assert 0.0001 <= float(tuned["lr"]) <= 0.1
        assert tuned["optimizer"] in ("sgd", "adam")
        training = await sagemaker.describe_training_job(TrainingJobName=child["TrainingJobName"])
        assert training["HyperParameters"] == {
            "batch_size": "32",
            **tuned,
            "_tuning_objective_metric": METRIC,
        }
        assert training["TuningJobArn"].endswith(":hyper-parameter-tuning-job/tune-1")
        assert training["AlgorithmSpecification"]["TrainingImage"] == IMAGE
        objective = child["FinalHyperParameterTuningJobObjectiveMetric"]
        reported = {m["MetricName"]: m["Value"] for m in training["FinalMetricDataList"]}
        assert math.isclose(reported[METRIC], objective["Value"], rel_tol=1e-6)
    assert len({c["TunedHyperParameters"]["lr"] for c in children}) == 4
    # the same seed draws the same hyperparameters, and so the same objective values
    await sagemaker.create_hyper_parameter_tuning_job(
        **tuning_request("tune-2", max_jobs=4, seed=7)
    )
    fake_clock.advance(60)
    again = await children_of(sagemaker, "tune-2")
    assert [c["TunedHyperParameters"] for c in again] == [
        c["TunedHyperParameters"] for c in children
    ]
    assert [c["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for c in again] == [
        c["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for c in children
    ]


@pytest.mark.parametrize(("objective", "pick"), [("Minimize", min), ("Maximize", max)])
async def test_best_training_job_follows_the_objective_type(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any, objective: str, pick: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_hyper_parameter_tuning_job(
        **tuning_request(max_jobs=6, parallel=3, objective=objective)
    )
    fake_clock.advance(60)
    described = await sagemaker.describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="tune-1"
    )
    children = await children_of(sagemaker)
    values = {
        c["TrainingJobName"]: c["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
        for c in children
    }
    assert len(set(values.values())) > 1  # otherwise the test proves nothing
    best = described["BestTrainingJob"]
    assert best["TrainingJobName"] == pick(values, key=lambda n: values[n])
    metric = best["FinalHyperParameterTuningJobObjectiveMetric"]
    assert metric == {
        "Type": objective,
        "MetricName": METRIC,
        "Value": values[best["TrainingJobName"]],
    }
    by_name = {c["TrainingJobName"]: c for c in children}
    assert best["TunedHyperParameters"] == by_name[best["TrainingJobName"]]["TunedHyperParameters"]
    # sorted by the objective, the best one comes first in the right order
    ranked = await sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="tune-1",
        SortBy="FinalObjectiveMetricValue",
        SortOrder="Ascending" if objective == "Minimize" else "Descending",
        MaxResults=1,
    )
    assert ranked["TrainingJobSummaries"][0]["TrainingJobName"] == best["TrainingJobName"]
    assert "NextToken" in ranked


async def test_stop_stops_the_running_children_and_starts_no_more(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_hyper_parameter_tuning_job(
        **tuning_request(child_duration="3,30", stop_delay="2")
    )
    fake_clock.set(START + 10)  # child 1 done at 3, child 3 ran 3-6, child 4 runs from 6
    await sagemaker.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="tune-1")
    stopping = await describe_at(sagemaker, fake_clock, 10.5)
    assert stopping["HyperParameterTuningJobStatus"] == "Stopping"
    assert stopping["TrainingJobStatusCounters"]["InProgress"] == 2
    statuses = [c["TrainingJobStatus"] for c in await children_of(sagemaker)]
    assert statuses == ["Completed", "Stopping", "Completed", "Stopping"]
    stopped = await describe_at(sagemaker, fake_clock, 12.0)
    assert stopped["HyperParameterTuningJobStatus"] == "Stopped"
    assert stopped["HyperParameterTuningEndTime"].timestamp() == START + 12
    assert stopped["TrainingJobStatusCounters"]["Stopped"] == 2
    assert stopped["ObjectiveStatusCounters"] == {"Succeeded": 2, "Pending": 0, "Failed": 2}
    assert stopped["BestTrainingJob"]["TrainingJobStatus"] == "Completed"
    fake_clock.advance(100)
    children = await children_of(sagemaker)
    assert [c["TrainingJobStatus"] for c in children] == [
        "Completed",
        "Stopped",
        "Completed",
        "Stopped",
    ]
    code, _ = await error_of(
        sagemaker.stop_hyper_parameter_tuning_job, HyperParameterTuningJobName="tune-1"
    )
    assert code == "ValidationException"


async def test_a_tuning_job_whose_children_all_fail_fails(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_hyper_parameter_tuning_job(
        **tuning_request(max_jobs=3, outcome="Failed", failure_reason="AlgorithmError: boom")
    )
    failed = await describe_at(sagemaker, fake_clock, 60)
    assert failed["HyperParameterTuningJobStatus"] == "Failed"
    assert "No training job succeeded after 3 attempts" in failed["FailureReason"]
    assert failed["TrainingJobStatusCounters"]["NonRetryableError"] == 3
    assert failed["ObjectiveStatusCounters"]["Failed"] == 3
    assert "BestTrainingJob" not in failed
    children = await children_of(sagemaker)
    assert {c["FailureReason"] for c in children} == {"AlgorithmError: boom"}


async def test_some_failed_children_leave_the_best_among_the_others(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_hyper_parameter_tuning_job(
        **tuning_request(max_jobs=4, child_outcome="Failed,Completed")
    )
    done = await describe_at(sagemaker, fake_clock, 60)
    assert done["HyperParameterTuningJobStatus"] == "Completed"
    assert done["TrainingJobStatusCounters"]["NonRetryableError"] == 2
    assert done["TrainingJobStatusCounters"]["Completed"] == 2
    names = [c["TrainingJobName"] for c in await children_of(sagemaker)]
    assert done["BestTrainingJob"]["TrainingJobName"] in (names[1], names[3])


async def test_warm_start_is_accepted_and_echoed(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    warm = {
        "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "parent"}],
        "WarmStartType": "IdenticalDataAndAlgorithm",
    }
    code, message = await error_of(
        sagemaker.create_hyper_parameter_tuning_job,
        **tuning_request("child", max_jobs=2),
        WarmStartConfig=warm,
    )
    assert code == "ValidationException" and "parent" in message
    await sagemaker.create_hyper_parameter_tuning_job(**tuning_request("parent", max_jobs=2))
    fake_clock.advance(60)
    await sagemaker.create_hyper_parameter_tuning_job(
        **tuning_request("child", max_jobs=2), WarmStartConfig=warm
    )
    fake_clock.advance(60)
    described = await sagemaker.describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="child"
    )
    assert described["WarmStartConfig"] == warm
    assert described["HyperParameterTuningJobStatus"] == "Completed"
    overall = described["OverallBestTrainingJob"]
    candidates = [
        c["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
        for name in ("parent", "child")
        for c in await children_of(sagemaker, name)
    ]
    assert overall["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == min(candidates)


async def test_errors_are_the_ones_aws_sends(fake_emulator: Emulator, aws_client: Any) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_hyper_parameter_tuning_job(**tuning_request())
    code, _ = await error_of(sagemaker.create_hyper_parameter_tuning_job, **tuning_request())
    assert code == "ResourceInUse"
    for call in (
        sagemaker.describe_hyper_parameter_tuning_job,
        sagemaker.stop_hyper_parameter_tuning_job,
        sagemaker.list_training_jobs_for_hyper_parameter_tuning_job,
    ):
        code, _ = await error_of(call, HyperParameterTuningJobName="missing")
        assert code == "ResourceNotFound"
    unchecked = await aws_client("sagemaker", fake_emulator, validate=False)
    code, message = await error_of(
        unchecked.create_hyper_parameter_tuning_job, **tuning_request("t" * 33)
    )
    assert code == "ValidationException" and "32" in message
    too_parallel = tuning_request("x1", max_jobs=2, parallel=3)
    code, _ = await error_of(sagemaker.create_hyper_parameter_tuning_job, **too_parallel)
    assert code == "ValidationException"
    both = tuning_request("x2")
    both["TrainingJobDefinition"]["StaticHyperParameters"]["epochs"] = "3"
    code, message = await error_of(sagemaker.create_hyper_parameter_tuning_job, **both)
    assert code == "ValidationException" and "epochs" in message
    reversed_range = tuning_request("x3")
    reversed_range["HyperParameterTuningJobConfig"]["ParameterRanges"]["IntegerParameterRanges"][0][
        "MinValue"
    ] = "20"
    code, _ = await error_of(sagemaker.create_hyper_parameter_tuning_job, **reversed_range)
    assert code == "ValidationException"
    code, _ = await error_of(
        sagemaker.create_hyper_parameter_tuning_job,
        **tuning_request("x4", child_duration="2,soon"),
    )
    assert code == "ValidationException"
    # nothing was created by the refused requests
    listed = await sagemaker.list_hyper_parameter_tuning_jobs(MaxResults=100)
    assert [
        s["HyperParameterTuningJobName"] for s in listed["HyperParameterTuningJobSummaries"]
    ] == ["tune-1"]


async def test_list_tuning_jobs_filters_sorts_and_pages(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    for name, duration in (("b-tune", "1"), ("a-tune", "1"), ("c-other", "30")):
        await sagemaker.create_hyper_parameter_tuning_job(
            **tuning_request(name, max_jobs=1, parallel=1, child_duration=duration)
        )
        fake_clock.advance(1)
    fake_clock.set(START + 3.5)  # b-tune ran 0-1, a-tune 1-2; c-other runs from 2 to 32

    def names(page: Any) -> list[str]:
        return [s["HyperParameterTuningJobName"] for s in page["HyperParameterTuningJobSummaries"]]

    first = await sagemaker.list_hyper_parameter_tuning_jobs(MaxResults=2, SortBy="Name")
    assert names(first) == ["a-tune", "b-tune"]
    rest = await sagemaker.list_hyper_parameter_tuning_jobs(
        MaxResults=2, SortBy="Name", NextToken=first["NextToken"]
    )
    assert names(rest) == ["c-other"] and "NextToken" not in rest
    tunes = await sagemaker.list_hyper_parameter_tuning_jobs(
        NameContains="TUNE", SortBy="CreationTime", SortOrder="Descending"
    )
    assert names(tunes) == ["a-tune", "b-tune"]
    summary = tunes["HyperParameterTuningJobSummaries"][0]
    assert summary["Strategy"] == "Bayesian"
    assert summary["ResourceLimits"]["MaxParallelTrainingJobs"] == 1
    assert summary["HyperParameterTuningEndTime"].timestamp() == START + 2
    running = await sagemaker.list_hyper_parameter_tuning_jobs(StatusEquals="InProgress")
    assert names(running) == ["c-other"]
    assert names(
        await sagemaker.list_hyper_parameter_tuning_jobs(CreationTimeAfter=START + 0.5)
    ) == ["a-tune", "c-other"]


def test_choose_tails_prefers_running_then_owed_then_recent() -> None:
    def child(name: str, at: int, status: str) -> dict[str, Any]:
        return {"TrainingJobName": name, "CreationTime": at, "TrainingJobStatus": status}

    children = [
        child("c1", 1, "Completed"),
        child("c2", 2, "Completed"),
        child("c3", 3, "InProgress"),
        child("c4", 4, "Completed"),
        child("c5", 5, "InProgress"),
    ]
    # c1 was followed after it ended; c2 and c4 never were: their lines are owed
    assert choose_tails(children, {"c1"}, 3, final=False) == ["c5", "c3", "c2"]
    assert choose_tails(children, {"c1", "c2", "c4"}, 3, final=False) == ["c5", "c3", "c4"]
    # once the tuning job has ended every owed child is drained, past the limit
    assert choose_tails(children, set(), 1, final=True) == ["c5", "c3", "c1", "c2", "c4"]
    assert choose_tails(children, {"c1", "c2", "c4"}, 10, final=True) == [
        "c5",
        "c3",
        "c4",
        "c2",
        "c1",
    ]


async def test_a_log_source_that_leaves_is_drained_then_rests_and_resumes_without_repeats() -> None:
    store = LogStore(region="us-east-1", account="123456789012", clock=time.time)
    service = LogsService(store)
    reads: Counter[str] = Counter()

    async def call(_service: str, operation: str, /, **params: Any) -> Any:
        if operation == "GetLogEvents":
            reads[params["logStreamName"]] += 1
        return service.operations[operation](params)

    group = "/aws/sagemaker/TrainingJobs"
    a, b = "tune-001-aaaaaaaa/algo-1-1700000000", "tune-002-bbbbbbbb/algo-1-1700000000"
    source_a = LogSource(group, "tune-001-aaaaaaaa/", "001")
    source_b = LogSource(group, "tune-002-bbbbbbbb/", "002")
    store.put(group, a, [(1, "a1"), (2, "a2")])
    store.put(group, b, [(1, "b1")])
    lines: list[LogLine] = []
    follower = LogFollower(
        call=call,
        job="tune",
        sources=[source_a],
        publish=lines.append,
        poll_interval=0.01,
        idle_max=0.05,
        discover_interval=0.02,
        drain_grace=0.1,
    )

    async def until(condition: Any) -> None:
        with anyio.fail_after(5):
            while not condition():
                await anyio.sleep(0.005)

    def messages() -> list[str]:
        return [line.message for line in lines]

    terminal = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(follower.run, terminal)
        await until(lambda: messages() == ["a1", "a2"])
        follower.set_sources([source_b])
        store.put(group, a, [(3, "a3")])  # written after its source left: still read
        await until(lambda: {"a3", "b1"} <= set(messages()))
        await anyio.sleep(0.3)  # past the grace: a's stream rests
        rested_reads = reads[a]
        store.put(group, a, [(4, "a4")])
        await anyio.sleep(0.2)
        assert reads[a] == rested_reads and "a4" not in messages()
        follower.set_sources([source_a, source_b])  # back: resumes where it stopped
        await until(lambda: "a4" in messages())
        terminal.set()
    assert sorted(messages()) == ["a1", "a2", "a3", "a4", "b1"]
    assert {line.instance for line in lines} == {"001:algo-1", "002:algo-1"}


# -- the engine ---------------------------------------------------------------


def local_runner(emulator: Emulator, settings: Settings | None = None, **kwargs: Any) -> Runner:
    config = emulator_config(emulator)
    # every child is a log source with its own DescribeLogStreams calls: at the
    # production budget (4/s) these tests would mostly wait for tokens
    budgets = Budgets({"logs.describe": 50.0})
    return Runner(
        config, settings=settings or Settings.fast(drain_grace=DRAIN), budgets=budgets, **kwargs
    )


def assert_every_child_line_once(lines: list[LogLine], children: list[str], per_child: int) -> None:
    assert len({(line.stream, line.message) for line in lines}) == len(lines)  # no repeats
    by_stream = Counter(line.stream for line in lines)
    assert sorted(s.partition("/")[0] for s in by_stream) == sorted(children)
    assert all(count == per_child for count in by_stream.values()), by_stream
    for line in lines:
        child = line.stream.partition("/")[0]
        assert line.instance == f"{child}:algo-1"


@pytest.mark.parametrize("tails", [10, 1])
async def test_engine_runs_a_tuning_job_to_v1_outputs_with_every_child_line_once(
    emulator: Emulator, tails: int
) -> None:
    events: list[Any] = []
    settings = Settings.fast(drain_grace=DRAIN, tuning_log_tails=tails)
    request = tuning_request(None, max_jobs=4, parallel=2, child_duration="0.5,0.8", log_lines="4")
    async with local_runner(emulator, sinks=[events.append], settings=settings) as runner:
        job = await runner.submit("hpo", "tuning", request)
        result = await job.wait()

    assert result.outcome is Outcome.SUCCEEDED, result.failure_reason
    tunings = emulator.sagemaker.kinds["tuning"]
    assert isinstance(tunings, TuningJobs)
    tuning = tunings.job(job.name)
    best = tuning.best(emulator.sagemaker.now)
    assert best is not None
    best_name = best["TrainingJobName"]
    assert result.outputs == {
        "hpo_job_name": job.name,
        "best_job_name": best_name,
        "best_hyperparameters": {"batch_size": "32", **best["TunedHyperParameters"]},
        "model_artifact_url": f"s3://bucket/hpo/{best_name}/output/model.tar.gz",
        "training_image": IMAGE,
    }
    assert "_tuning_objective_metric" not in result.outputs["best_hyperparameters"]
    assert result.details["training_jobs"]["Completed"] == 4
    assert (
        result.details["best_objective"]["value"]
        == (best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])
    )
    lines = [e for e in events if isinstance(e, LogLine)]
    assert_every_child_line_once(lines, [c.name for c in tuning.children], per_child=4)


async def test_engine_reports_why_a_tuning_job_failed(emulator: Emulator) -> None:
    request = tuning_request(None, max_jobs=2, child_duration="0.3", outcome="Failed")
    async with local_runner(emulator) as runner:
        result = await (await runner.submit("bad", "tuning", request)).wait()
    assert result.outcome is Outcome.FAILED
    assert result.failure_reason is not None
    assert "No training job succeeded after 2 attempts" in result.failure_reason
    assert result.outputs["best_job_name"] == ""


def child_statuses(emulator: Emulator, name: str) -> list[str]:
    tunings = emulator.sagemaker.kinds["tuning"]
    assert isinstance(tunings, TuningJobs)
    now = emulator.advance()
    return [c.job.current(now).status for c in tunings.job(name).children]


async def test_job_stop_stops_the_tuning_job_and_its_children(emulator: Emulator) -> None:
    request = tuning_request(None, child_duration="60", stop_delay="0.2")
    async with local_runner(emulator) as runner:
        job = await runner.submit("long", "tuning", request)
        async for event in job.events():
            if isinstance(event, StatusChanged) and event.status == "InProgress":
                break
        await job.stop()
        result = await job.wait()
    assert result.outcome is Outcome.STOPPED_BY_US
    assert result.status == "Stopped"
    assert emulator.count("StopHyperParameterTuningJob") == 1
    assert child_statuses(emulator, job.name) == ["Stopped", "Stopped"]


async def test_cancelling_the_runner_stops_the_tuning_job_and_its_children(
    emulator: Emulator,
) -> None:
    request = tuning_request(None, child_duration="60", stop_delay="0.2")
    results = []
    with anyio.move_on_after(30):
        async with local_runner(emulator) as runner:
            job = await runner.submit("cancelled", "tuning", request)
            async for event in job.events():
                if isinstance(event, StatusChanged):
                    break
            runner.cancel()
        results.append(job.result)
    assert results and results[0] is not None
    assert results[0].outcome is Outcome.STOPPED_BY_US
    assert emulator.count("StopHyperParameterTuningJob") == 1
    assert child_statuses(emulator, job.name) == ["Stopped", "Stopped"]
