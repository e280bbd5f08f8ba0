"""Models: the emulated API, and the engine creating, reusing or refusing a model."""

from __future__ import annotations

from typing import Any

import pytest

from smrun import Outcome, StatusChanged, Submitted, load_manifest
from smrun.emulator import Emulator, FakeClock
from smrun.emulator.model import Models
from smrun.handlers.model import KIND, adopt
from smrun.types import JobError
from tests.helpers import error_of
from tests.test_runner import local_runner

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/xgboost:1"
ARN = "arn:aws:sagemaker:us-east-1:123456789012:model/"
START = FakeClock().now


def model_request(name: str | None = "m-1", *, image: str = IMAGE, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ExecutionRoleArn": ROLE,
        "PrimaryContainer": {"Image": image, "ModelDataUrl": "s3://bucket/model.tar.gz"},
        **extra,
    }
    if name is not None:
        body["ModelName"] = name
    return body


# ------------------------------------------------------------------ the emulator


async def test_a_model_exists_from_create_to_delete(
    fake_emulator: Emulator, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    created = await sagemaker.create_model(
        **model_request("My-Model", Tags=[{"Key": "team", "Value": "ml"}])
    )
    assert created["ModelArn"] == ARN + "my-model"
    described = await sagemaker.describe_model(ModelName="my-model")
    assert described["ModelName"] == "My-Model"
    assert described["ExecutionRoleArn"] == ROLE
    assert described["PrimaryContainer"] == {
        "Image": IMAGE,
        "ModelDataUrl": "s3://bucket/model.tar.gz",
        "Mode": "SingleModel",
        "Environment": {},
    }
    assert described["EnableNetworkIsolation"] is False
    assert described["CreationTime"].timestamp() == START
    tags = await sagemaker.list_tags(ResourceArn=created["ModelArn"])
    assert tags["Tags"] == [{"Key": "team", "Value": "ml"}]
    models = fake_emulator.sagemaker.kinds["model"]
    assert isinstance(models, Models) and models.exists("MY-MODEL")

    await sagemaker.delete_model(ModelName="My-Model")
    assert not models.exists("my-model")
    assert await error_of(sagemaker.describe_model, ModelName="My-Model") == (
        "ValidationException",
        f'Could not find model "{ARN}my-model".',
    )
    assert await error_of(sagemaker.delete_model, ModelName="My-Model") == (
        "ValidationException",
        f'Could not find model "{ARN}my-model".',
    )


async def test_model_errors_are_sagemakers(fake_emulator: Emulator, aws_client: Any) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_model(**model_request())
    assert await error_of(sagemaker.create_model, **model_request(image="other:2")) == (
        "ValidationException",
        f'Cannot create already existing model "{ARN}m-1".',
    )
    code, message = await error_of(
        sagemaker.create_model, ModelName="m-2", ExecutionRoleArn=ROLE
    )
    assert code == "ValidationException" and "PrimaryContainer or Containers" in message


async def test_list_models_sorts_filters_and_pages(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    for i in range(5):
        fake_clock.advance(1)
        await sagemaker.create_model(**model_request(f"model-{i}"))
    await sagemaker.create_model(**model_request("other"))

    newest_first = await sagemaker.list_models(MaxResults=3)
    assert [m["ModelName"] for m in newest_first["Models"]] == ["other", "model-4", "model-3"]
    rest = await sagemaker.list_models(MaxResults=3, NextToken=newest_first["NextToken"])
    assert [m["ModelName"] for m in rest["Models"]] == ["model-2", "model-1", "model-0"]
    assert "NextToken" not in rest
    named = await sagemaker.list_models(
        NameContains="MODEL", SortBy="Name", SortOrder="Ascending", CreationTimeAfter=START + 2
    )
    assert [m["ModelName"] for m in named["Models"]] == ["model-2", "model-3", "model-4"]


# ------------------------------------------------------------------ the handler


def test_an_identical_model_is_adopted_and_a_different_one_named() -> None:
    stored = {
        "ModelName": "m-1",
        "ExecutionRoleArn": ROLE,
        "PrimaryContainer": {
            "Image": IMAGE,
            "ModelDataUrl": "s3://bucket/model.tar.gz",
            "Mode": "SingleModel",
            "Environment": {},
        },
        "EnableNetworkIsolation": False,
    }
    assert adopt(stored, model_request(Tags=[{"Key": "any", "Value": "thing"}]))
    with pytest.raises(JobError, match="differs from this request in PrimaryContainer"):
        adopt(stored, model_request(image="other:2"))
    with pytest.raises(JobError, match="EnableNetworkIsolation"):
        adopt(stored, model_request(EnableNetworkIsolation=True))


def test_the_manifest_role_is_the_models_execution_role() -> None:
    manifest = load_manifest(
        f"defaults: {{role: {ROLE}}}\n"
        "jobs: [{name: m, kind: model, request: {PrimaryContainer: {Image: img}}}]\n"
    )
    assert manifest.jobs["m"].request["ExecutionRoleArn"] == ROLE


def test_a_model_is_done_as_soon_as_it_describes() -> None:
    assert KIND.phase({"ModelName": "m"}).value == "succeeded"
    assert KIND.outputs({"ModelName": "m"}) == {"model_name": "m"}


# ------------------------------------------------------------------ the engine


async def test_creating_a_model_succeeds_at_once(emulator: Emulator) -> None:
    events: list[object] = []
    async with local_runner(emulator, sinks=[events.append]) as runner:
        result = await (await runner.submit("model", "model", model_request(None))).wait()
    assert result.outcome is Outcome.SUCCEEDED
    assert result.name is not None and result.name.startswith("model-")
    assert result.outputs["model_name"] == result.name
    assert result.details == {"images": [IMAGE]}
    assert not result.attached
    assert not [e for e in events if isinstance(e, StatusChanged)]  # a model has no status
    assert emulator.count("CreateModel") == 1


async def test_an_identical_model_is_reused_by_another_run(emulator: Emulator) -> None:
    async with local_runner(emulator, run_id="run-a") as runner:
        first = await (await runner.submit("model", "model", model_request())).wait()
    events: list[object] = []
    async with local_runner(emulator, run_id="run-b", sinks=[events.append]) as runner:
        second = await (await runner.submit("serve", "model", model_request())).wait()
    assert first.outcome is second.outcome is Outcome.SUCCEEDED
    assert second.attached and second.outputs == {"model_name": "m-1"}
    assert [e.attached for e in events if isinstance(e, Submitted)] == [True]
    assert emulator.count("CreateModel") == 1


async def test_a_different_model_of_the_same_name_is_refused(emulator: Emulator) -> None:
    async with local_runner(emulator, run_id="run-a") as runner:
        await (await runner.submit("model", "model", model_request())).wait()
    async with local_runner(emulator, run_id="run-b") as runner:
        result = await (
            await runner.submit("model", "model", model_request(image="other:2"))
        ).wait()
    assert result.outcome is Outcome.FAILED
    assert result.failure_reason is not None
    assert "m-1 already exists and differs from this request in PrimaryContainer" in (
        result.failure_reason
    )
    assert emulator.count("CreateModel") == 1
