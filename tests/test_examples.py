"""Every manifest in examples/ runs to success on the emulator, as a newcomer would run it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from smrun import (
    Event,
    Finished,
    JobResult,
    Outcome,
    Runner,
    Settings,
    StatusChanged,
    Submitted,
    load_manifest,
)
from smrun.emulator import Emulator
from tests.helpers import emulator_config

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MANIFESTS = sorted(EXAMPLES.glob("*.yaml")) + sorted(EXAMPLES.glob("*.yml"))
TUNING_OBJECTIVE_KEY = "_tuning_objective_metric"


def example_runner(emulator: Emulator, events: list[Event]) -> Runner:
    return Runner(emulator_config(emulator), settings=Settings.fast(), sinks=[events.append])


def empty_outputs(result: JobResult) -> list[str]:
    return [name for name, value in result.outputs.items() if value in ("", None, {}, [])]


def test_the_examples_directory_has_manifests() -> None:
    # guards the parametrization below against a glob that silently matches nothing
    assert len(MANIFESTS) >= 4
    assert EXAMPLES / "mnist-pipeline.yaml" in MANIFESTS


def interval(events: list[Event], job: str, done: str) -> tuple[float, float]:
    """When ``job`` was created and when it first reported the status ``done``."""
    start = next(e.time for e in events if isinstance(e, Submitted) and e.job == job)
    end = next(
        e.time for e in events if isinstance(e, StatusChanged) and e.job == job and e.status == done
    )
    return start, end


async def check_mnist_pipeline(
    runner: Runner, results: dict[str, JobResult], events: list[Event]
) -> None:
    """The training got exactly the tuning job's best hyperparameters, and the
    endpoint was deployed while the batch transform ran."""
    assert runner.engine.aws is not None
    call = runner.engine.aws.call
    tuning: dict[str, Any] = await call(
        "sagemaker",
        "DescribeHyperParameterTuningJob",
        HyperParameterTuningJobName=results["tune"].name,
    )
    best = tuning["BestTrainingJob"]
    best_child = await call(
        "sagemaker", "DescribeTrainingJob", TrainingJobName=best["TrainingJobName"]
    )
    training = await call("sagemaker", "DescribeTrainingJob", TrainingJobName=results["train"].name)

    # the best child as SageMaker describes it, without the key SageMaker adds for tuning
    winning = {k: v for k, v in best_child["HyperParameters"].items() if k != TUNING_OBJECTIVE_KEY}
    assert training["HyperParameters"] == winning
    assert training["HyperParameters"] == results["tune"].outputs["best_hyperparameters"]
    assert best["TunedHyperParameters"].items() <= training["HyperParameters"].items()
    assert {"k": "10", "feature_dim": "784"}.items() <= training["HyperParameters"].items()
    assert results["tune"].outputs["best_job_name"] == best["TrainingJobName"]
    assert results["tune"].details["best_objective"]["metric"] == "test:msd"

    # the model serves what the training produced; both consumers use that model
    assert results["model"].details["images"] == [results["train"].outputs["training_image"]]
    assert results["transform"].details["model_name"] == results["model"].outputs["model_name"]

    # the endpoint was being created while the transform ran, and the other way round
    transform_start, transform_end = interval(events, "transform", "Completed")
    endpoint_start, endpoint_end = interval(events, "endpoint", "InService")
    assert transform_start < endpoint_end
    assert endpoint_start < transform_end
    # and neither started before the training had finished
    train_end = next(e.time for e in events if isinstance(e, Finished) and e.job == "train")
    assert train_end <= min(transform_start, endpoint_start)


# what an example promises beyond "every job succeeds", by file name
Check = Callable[[Runner, dict[str, JobResult], list[Event]], Awaitable[None]]
CHECKS: dict[str, Check] = {"mnist-pipeline.yaml": check_mnist_pipeline}


def test_every_check_names_an_example() -> None:
    assert set(CHECKS) <= {p.name for p in MANIFESTS}


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
async def test_example_runs_every_job_to_success(path: Path, emulator: Emulator) -> None:
    manifest = load_manifest(path)
    events: list[Event] = []
    async with example_runner(emulator, events) as runner:
        results = await runner.run_manifest(manifest)

        assert set(results) == set(manifest.jobs)
        for key, result in results.items():
            assert result.outcome is Outcome.SUCCEEDED, (key, result.failure_reason)
            assert result.outputs, key
            assert empty_outputs(result) == [], key
        assert {e.job for e in events if isinstance(e, Finished)} == set(manifest.jobs)
        check = CHECKS.get(path.name)
        if check is not None:
            await check(runner, results, events)
