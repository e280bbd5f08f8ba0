"""Endpoint configs and endpoints: the emulated lifecycles on a fake clock (create,
update, rollback, delete), and the engine deploying, updating and cancelling."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from smrun import (
    LogLine,
    ManifestError,
    Notice,
    OnCancel,
    Outcome,
    Settings,
    StatusChanged,
    load_manifest,
    run_manifest,
)
from smrun.emulator import Emulator, FakeClock
from smrun.emulator.endpoint import Endpoints
from smrun.emulator.resources import call_handler
from smrun.handlers.endpoint import KIND, phase
from smrun.types import Phase
from tests.helpers import emulator_config, error_of
from tests.test_runner import local_runner

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/xgboost:1"
ARN = "arn:aws:sagemaker:us-east-1:123456789012:"
START = FakeClock().now
EXAMPLE = Path(__file__).parent.parent / "examples" / "update-endpoint.yaml"


def tags(**behaviour: str) -> list[dict[str, str]]:
    return [
        {"Key": f"smrun:emulator:{k.replace('_', '-')}", "Value": v} for k, v in behaviour.items()
    ]


def model_request(name: str, image: str = IMAGE) -> dict[str, Any]:
    return {
        "ModelName": name,
        "ExecutionRoleArn": ROLE,
        "PrimaryContainer": {"Image": image, "ModelDataUrl": f"s3://bucket/{name}.tar.gz"},
    }


def config_request(name: str, variants: dict[str, tuple[str, int]], **behaviour: str) -> Any:
    """``variants``: variant name -> (model name, instance count)."""
    return {
        "EndpointConfigName": name,
        "ProductionVariants": [
            {
                "VariantName": variant,
                "ModelName": model,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": count,
            }
            for variant, (model, count) in variants.items()
        ],
        "Tags": tags(**behaviour),
    }


async def at(sagemaker: Any, clock: FakeClock, seconds: float, name: str = "ep") -> Any:
    clock.set(START + seconds)
    return await sagemaker.describe_endpoint(EndpointName=name)


async def stack(sagemaker: Any) -> None:
    """Models m-1, m-2; configs c1 (blue: 2 instances) and c2 (green: 1 instance)."""
    await sagemaker.create_model(**model_request("m-1"))
    await sagemaker.create_model(**model_request("m-2", image="other:2"))
    await sagemaker.create_endpoint_config(**config_request("c1", {"blue": ("m-1", 2)}))
    await sagemaker.create_endpoint_config(**config_request("c2", {"green": ("m-2", 1)}))


# ------------------------------------------------------------------ emulated configs


async def test_an_endpoint_config_needs_its_models_and_a_new_name(
    fake_emulator: Emulator, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    request = config_request("c1", {"a": ("m-1", 2), "b": ("m-2", 1)})
    assert await error_of(sagemaker.create_endpoint_config, **request) == (
        "ValidationException",
        f'Could not find model "{ARN}model/m-1".',
    )
    await sagemaker.create_model(**model_request("m-1"))
    await sagemaker.create_model(**model_request("m-2"))
    created = await sagemaker.create_endpoint_config(**request)
    assert created["EndpointConfigArn"] == f"{ARN}endpoint-config/c1"
    assert await error_of(sagemaker.create_endpoint_config, **request) == (
        "ValidationException",
        f'Cannot create already existing endpoint configuration "{ARN}endpoint-config/c1".',
    )
    described = await sagemaker.describe_endpoint_config(EndpointConfigName="c1")
    assert [v["VariantName"] for v in described["ProductionVariants"]] == ["a", "b"]
    assert [v["InitialVariantWeight"] for v in described["ProductionVariants"]] == [1.0, 1.0]
    assert described["CreationTime"].timestamp() == START
    listed = await sagemaker.list_endpoint_configs()
    assert [c["EndpointConfigName"] for c in listed["EndpointConfigs"]] == ["c1"]

    await sagemaker.delete_endpoint_config(EndpointConfigName="c1")
    missing = (
        "ValidationException",
        f'Could not find endpoint configuration "{ARN}endpoint-config/c1".',
    )
    assert await error_of(sagemaker.describe_endpoint_config, EndpointConfigName="c1") == missing
    assert await error_of(sagemaker.delete_endpoint_config, EndpointConfigName="c1") == missing


# ------------------------------------------------------------------ emulated endpoints


async def test_an_endpoint_is_creating_then_in_service_with_its_variants(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await stack(sagemaker)
    created = await sagemaker.create_endpoint(
        EndpointName="ep", EndpointConfigName="c1", Tags=tags(duration="10", log_lines="5")
    )
    assert created["EndpointArn"] == f"{ARN}endpoint/ep"

    creating = await at(sagemaker, fake_clock, 9.99)
    assert creating["EndpointStatus"] == "Creating"
    assert creating["EndpointConfigName"] == "c1"
    assert "ProductionVariants" not in creating
    pending = creating["PendingDeploymentSummary"]
    assert pending["EndpointConfigName"] == "c1"
    assert pending["ProductionVariants"][0]["DesiredInstanceCount"] == 2
    assert pending["ProductionVariants"][0]["CurrentInstanceCount"] == 0

    ready = await at(sagemaker, fake_clock, 10)
    assert ready["EndpointStatus"] == "InService"
    assert ready["LastModifiedTime"].timestamp() == START + 10
    assert "PendingDeploymentSummary" not in ready and "FailureReason" not in ready
    [blue] = ready["ProductionVariants"]
    assert (blue["VariantName"], blue["CurrentInstanceCount"], blue["DesiredInstanceCount"]) == (
        "blue", 2, 2,
    )
    assert blue["CurrentWeight"] == blue["DesiredWeight"] == 1.0
    assert blue["DeployedImages"][0]["SpecifiedImage"] == IMAGE
    assert "@sha256:" in blue["DeployedImages"][0]["ResolvedImage"]

    group = "/aws/sagemaker/Endpoints/ep"
    streams = fake_emulator.logs.stream_names(group)
    assert len(streams) == 2 and all(s.startswith("blue/i-") for s in streams)
    for stream in streams:
        events = fake_emulator.logs.events(group, stream)
        assert [e.message.split(": ")[0] for e in events] == [
            f"[{stream}] line {i}/5" for i in range(1, 6)
        ]
        assert events[-1].timestamp == round((START + 10) * 1000)
        assert "serving" in events[-1].message
    listed = await sagemaker.list_endpoints(StatusEquals="InService")
    assert [e["EndpointName"] for e in listed["Endpoints"]] == ["ep"]


async def test_a_failed_creation_can_only_be_deleted(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await stack(sagemaker)
    await sagemaker.create_endpoint(
        EndpointName="ep", EndpointConfigName="c1",
        Tags=tags(duration="5", outcome="Failed", failure_reason="ping failed"),
    )
    failed = await at(sagemaker, fake_clock, 5)
    assert (failed["EndpointStatus"], failed["FailureReason"]) == ("Failed", "ping failed")
    assert failed["EndpointConfigName"] == "c1" and "ProductionVariants" not in failed
    code, _ = await error_of(sagemaker.update_endpoint, EndpointName="ep", EndpointConfigName="c2")
    assert code == "ValidationException"
    await sagemaker.delete_endpoint(EndpointName="ep")
    assert (await at(sagemaker, fake_clock, 5.5))["EndpointStatus"] == "Deleting"
    fake_clock.set(START + 6)
    assert await error_of(sagemaker.describe_endpoint, EndpointName="ep") == (
        "ValidationException",
        f'Could not find endpoint "{ARN}endpoint/ep".',
    )


async def test_creating_an_endpoint_needs_its_config_its_models_and_a_new_name(
    fake_emulator: Emulator, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    code, message = await error_of(
        sagemaker.create_endpoint, EndpointName="ep", EndpointConfigName="c1"
    )
    assert (code, message) == (
        "ValidationException",
        f'Could not find endpoint configuration "{ARN}endpoint-config/c1".',
    )
    await stack(sagemaker)
    await sagemaker.delete_model(ModelName="m-2")
    assert await error_of(
        sagemaker.create_endpoint, EndpointName="ep", EndpointConfigName="c2"
    ) == ("ValidationException", f'Could not find model "{ARN}model/m-2".')
    await sagemaker.create_endpoint(EndpointName="ep", EndpointConfigName="c1")
    assert await error_of(
        sagemaker.create_endpoint, EndpointName="EP", EndpointConfigName="c1"
    ) == ("ValidationException", f'Cannot create already existing endpoint "{ARN}endpoint/ep".')


async def test_an_endpoint_in_progress_refuses_update_and_delete(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await stack(sagemaker)
    await sagemaker.create_endpoint(
        EndpointName="ep", EndpointConfigName="c1", Tags=tags(duration="4")
    )
    in_progress = ("ValidationException", f'Cannot update in-progress endpoint "{ARN}endpoint/ep".')
    assert await error_of(
        sagemaker.update_endpoint, EndpointName="ep", EndpointConfigName="c2"
    ) == in_progress
    assert await error_of(sagemaker.delete_endpoint, EndpointName="ep") == in_progress
    fake_clock.set(START + 4)
    await sagemaker.update_endpoint(EndpointName="ep", EndpointConfigName="c2")
    assert await error_of(sagemaker.delete_endpoint, EndpointName="ep") == in_progress


async def test_an_update_moves_the_endpoint_to_new_instances_of_the_new_config(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await stack(sagemaker)
    await sagemaker.create_endpoint(
        EndpointName="ep", EndpointConfigName="c1", Tags=tags(duration="2")
    )
    fake_clock.set(START + 3)
    await sagemaker.update_endpoint(EndpointName="ep", EndpointConfigName="c2")

    updating = await at(sagemaker, fake_clock, 4.99)
    assert updating["EndpointStatus"] == "Updating"
    assert updating["EndpointConfigName"] == "c1"  # still served by the old config
    assert [v["VariantName"] for v in updating["ProductionVariants"]] == ["blue"]
    assert updating["PendingDeploymentSummary"]["EndpointConfigName"] == "c2"
    assert updating["LastModifiedTime"].timestamp() == START + 3

    updated = await at(sagemaker, fake_clock, 5)
    assert (updated["EndpointStatus"], updated["EndpointConfigName"]) == ("InService", "c2")
    assert [v["VariantName"] for v in updated["ProductionVariants"]] == ["green"]
    assert updated["ProductionVariants"][0]["DeployedImages"][0]["SpecifiedImage"] == "other:2"
    streams = fake_emulator.logs.stream_names("/aws/sagemaker/Endpoints/ep")
    assert sorted(s.split("/")[0] for s in streams) == ["blue", "blue", "green"]
    endpoints = fake_emulator.sagemaker.kinds["endpoint"]
    assert isinstance(endpoints, Endpoints)
    assert endpoints.endpoints["ep"].history == [
        (START, "Creating"), (START + 2, "InService"), (START + 3, "Updating"),
        (START + 5, "InService"),
    ]


async def test_a_failed_update_rolls_back_to_the_old_config(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await stack(sagemaker)
    await sagemaker.create_endpoint_config(
        **config_request(
            "c3", {"green": ("m-2", 1)},
            update_outcome="RollingBack", failure_reason="health check failed", duration="3",
        )
    )
    await sagemaker.create_endpoint(
        EndpointName="ep", EndpointConfigName="c1", Tags=tags(duration="2")
    )
    fake_clock.set(START + 2)
    await sagemaker.update_endpoint(EndpointName="ep", EndpointConfigName="c3")
    assert (await at(sagemaker, fake_clock, 4.99))["EndpointStatus"] == "Updating"
    rolling = await at(sagemaker, fake_clock, 5)
    assert (rolling["EndpointStatus"], rolling["FailureReason"]) == (
        "RollingBack", "health check failed",
    )
    back = await at(sagemaker, fake_clock, 6)
    assert (back["EndpointStatus"], back["EndpointConfigName"]) == ("InService", "c1")
    assert back["FailureReason"] == "health check failed"
    assert [v["VariantName"] for v in back["ProductionVariants"]] == ["blue"]
    assert "PendingDeploymentSummary" not in back
    green = [s for s in fake_emulator.logs.stream_names("/aws/sagemaker/Endpoints/ep")
             if s.startswith("green/")]
    last = fake_emulator.logs.events("/aws/sagemaker/Endpoints/ep", green[0])[-1]
    assert "ERROR health check failed" in last.message

    # a behaviour tag on the endpoint applies when the config has none
    await sagemaker.add_tags(
        ResourceArn=f"{ARN}endpoint/ep", Tags=tags(update_outcome="UpdateRollbackFailed")
    )
    await sagemaker.update_endpoint(EndpointName="ep", EndpointConfigName="c2")
    stuck = await at(sagemaker, fake_clock, 20)
    assert stuck["EndpointStatus"] == "UpdateRollbackFailed"


# ------------------------------------------------------------------ the handler's table


def test_in_service_on_another_config_after_our_update_is_a_failure() -> None:
    asked = {"config": "c2", "modified_before": 1}
    assert phase({"EndpointStatus": "InService", "EndpointConfigName": "c2"}, asked) is (
        Phase.SUCCEEDED
    )
    rolled_back = {"EndpointStatus": "InService", "EndpointConfigName": "c1", "LastModifiedTime": 9}
    assert phase(rolled_back, asked) is Phase.FAILED
    not_yet = {**rolled_back, "LastModifiedTime": 1}
    assert phase(not_yet, asked) is Phase.RUNNING
    for status, expected in (
        ("Creating", Phase.RUNNING), ("Updating", Phase.RUNNING), ("RollingBack", Phase.RUNNING),
        ("Failed", Phase.FAILED), ("UpdateRollbackFailed", Phase.FAILED),
    ):
        assert KIND.phase({"EndpointStatus": status}) is expected


# ------------------------------------------------------------------ the engine


async def emulated(emulator: Emulator, operation: str, **params: Any) -> Any:
    """Set up the world directly in the emulator (no network, no validation)."""
    emulator.advance()
    return await call_handler(emulator.sagemaker.operations[operation], params)


async def in_service(emulator: Emulator, name: str, config: str) -> None:
    """An endpoint that existed before the run, InService before it starts."""
    await emulated(emulator, "CreateEndpoint", EndpointName=name, EndpointConfigName=config,
                   Tags=tags(duration="0.01", log_lines="2"))
    endpoints = emulator.sagemaker.kinds["endpoint"]
    assert isinstance(endpoints, Endpoints)
    while endpoints.endpoints[name].status != "InService":
        await anyio.sleep(0.01)
        emulator.advance()


async def emulated_stack(emulator: Emulator, **c2_behaviour: str) -> None:
    await emulated(emulator, "CreateModel", **model_request("m-1"))
    await emulated(emulator, "CreateModel", **model_request("m-2", image="other:2"))
    await emulated(emulator, "CreateEndpointConfig", **config_request("c1", {"blue": ("m-1", 2)}))
    await emulated(emulator, "CreateEndpointConfig",
                   **config_request("c2", {"green": ("m-2", 1)}, **c2_behaviour))


def endpoint_request(config: str, name: str | None = None, **behaviour: str) -> dict[str, Any]:
    request: dict[str, Any] = {"EndpointConfigName": config, "Tags": tags(**behaviour)}
    if name is not None:
        request["EndpointName"] = name
    return request


async def test_an_endpoint_with_two_variants_streams_every_line_once(emulator: Emulator) -> None:
    await emulated(emulator, "CreateModel", **model_request("m-1"))
    await emulated(emulator, "CreateModel", **model_request("m-2", image="other:2"))
    await emulated(emulator, "CreateEndpointConfig",
                   **config_request("two", {"blue": ("m-1", 2), "green": ("m-2", 1)}))
    events: list[object] = []
    async with local_runner(emulator, sinks=[events.append]) as runner:
        job = await runner.submit(
            "serve", "endpoint", endpoint_request("two", duration="1", log_lines="4")
        )
        result = await job.wait()
    lines = [e for e in events if isinstance(e, LogLine)]
    assert result.outcome is Outcome.SUCCEEDED, result.failure_reason
    assert result.status == "InService"
    assert result.outputs == {"endpoint_name": result.name}
    assert result.details["endpoint_config"] == "two"
    assert {k: v["instances"] for k, v in result.details["variants"].items()} == {
        "blue": 2, "green": 1,
    }
    assert len(lines) == 3 * 4
    assert max(Counter((line.stream, line.message) for line in lines).values()) == 1
    assert Counter(line.instance.split(":")[0] for line in lines) == {"blue": 8, "green": 4}
    assert all(line.instance == line.stream.replace("/", ":") for line in lines)


async def test_an_update_in_place_retires_the_old_config_once_in_service(
    emulator: Emulator,
) -> None:
    await emulated_stack(emulator, duration="1", log_lines="3")
    await in_service(emulator, "ep", "c1")
    events: list[object] = []
    async with local_runner(emulator, sinks=[events.append]) as runner:
        job = await runner.submit(
            "update", "endpoint", endpoint_request("c2", "ep"), options={"update": True}
        )
        result = await job.wait()
    assert result.outcome is Outcome.SUCCEEDED, result.failure_reason
    assert result.details["endpoint_config"] == "c2"
    assert result.details["replaced_config"] == {"name": "c1", "deleted": True}
    assert emulator.count("UpdateEndpoint") == 1 and emulator.count("CreateEndpoint") == 0
    endpoints = emulator.sagemaker.kinds["endpoint"]
    assert isinstance(endpoints, Endpoints)
    assert set(endpoints.configs) == {"c2"}
    # the old config went only after the update was InService
    in_service_at = next(i for i, e in enumerate(events)
                         if isinstance(e, StatusChanged) and e.status == "InService")
    deleted_at = next(i for i, e in enumerate(events)
                      if isinstance(e, Notice) and "deleted endpoint config c1" in e.message)
    assert in_service_at < deleted_at
    statuses = [e.status for e in events if isinstance(e, StatusChanged)]
    assert statuses == ["Updating", "InService"]
    lines = [e for e in events if isinstance(e, LogLine)]
    assert len(lines) == 3 and all(line.stream.startswith("green/") for line in lines)


async def test_a_rolled_back_update_fails_with_the_reason_and_keeps_the_old_config(
    emulator: Emulator,
) -> None:
    await emulated_stack(emulator, duration="0.5", update_outcome="RollingBack",
                         rollback_duration="0.3", failure_reason="health check failed")
    await in_service(emulator, "ep", "c1")
    async with local_runner(emulator) as runner:
        job = await runner.submit(
            "update", "endpoint", endpoint_request("c2", "ep"), options={"update": True}
        )
        result = await job.wait()
    assert result.outcome is Outcome.FAILED
    assert result.status == "InService"
    assert result.failure_reason == (
        "the update to endpoint config c2 was rolled back; ep still serves c1: "
        "health check failed"
    )
    endpoints = emulator.sagemaker.kinds["endpoint"]
    assert isinstance(endpoints, Endpoints)
    assert set(endpoints.configs) == {"c1", "c2"}
    assert emulator.count("DeleteEndpointConfig") == 0


async def test_a_failed_endpoint_fails_the_job_with_its_reason(emulator: Emulator) -> None:
    await emulated_stack(emulator)
    async with local_runner(emulator) as runner:
        result = await (await runner.submit(
            "serve", "endpoint",
            endpoint_request("c1", duration="0.5", outcome="Failed", failure_reason="no ping"),
        )).wait()
    assert result.outcome is Outcome.FAILED
    assert (result.status, result.failure_reason) == ("Failed", "no ping")


async def test_an_existing_endpoint_is_updated_only_when_the_job_asks(emulator: Emulator) -> None:
    await emulated_stack(emulator)
    await in_service(emulator, "ep", "c1")
    async with local_runner(emulator) as runner:
        result = await (await runner.submit("serve", "endpoint", endpoint_request("c2", "ep")))\
            .wait()
    assert result.outcome is Outcome.FAILED
    assert result.failure_reason is not None and "ep already exists" in result.failure_reason
    assert emulator.count("UpdateEndpoint") == 0


async def test_update_without_an_endpoint_creates_it(emulator: Emulator) -> None:
    await emulated_stack(emulator)
    async with local_runner(emulator) as runner:
        result = await (await runner.submit(
            "serve", "endpoint", endpoint_request("c1", "fresh", duration="0.3"),
            options={"update": True},
        )).wait()
    assert result.outcome is Outcome.SUCCEEDED
    assert emulator.count("CreateEndpoint") == 1 and emulator.count("UpdateEndpoint") == 0


async def cancel_once_in(runner: Any, job: Any, status: str) -> None:
    async for event in job.events():
        if isinstance(event, StatusChanged) and event.status == status:
            break
    runner.cancel()


async def test_cancelling_says_what_is_left_and_how_to_delete_it(emulator: Emulator) -> None:
    await emulated_stack(emulator)
    with anyio.move_on_after(30):
        async with local_runner(emulator) as runner:
            job = await runner.submit("serve", "endpoint", endpoint_request("c1", duration="60"))
            await cancel_once_in(runner, job, "Creating")
    result = job.result
    assert result is not None and result.outcome is Outcome.DETACHED
    assert result.failure_reason == (
        f"endpoint {job.name} is still Creating; it keeps running (and billing) until deleted: "
        f"aws sagemaker delete-endpoint --endpoint-name {job.name}"
    )
    endpoints = emulator.sagemaker.kinds["endpoint"]
    assert isinstance(endpoints, Endpoints) and endpoints.exists(job.name)
    assert emulator.count("DeleteEndpoint") == 0


async def test_cancelling_with_delete_endpoints_deletes_the_endpoint_it_created(
    emulator: Emulator,
) -> None:
    await emulated_stack(emulator)
    settings = Settings.fast(drain_grace=0.2, on_cancel=OnCancel.DELETE_ENDPOINTS)
    with anyio.move_on_after(30):
        async with local_runner(emulator, settings=settings) as runner:
            # no logs: nothing to drain before the deletion is tried
            job = await runner.submit(
                "serve", "endpoint", endpoint_request("c1", duration="1.5", log_lines="0")
            )
            await cancel_once_in(runner, job, "Creating")
    result = job.result
    assert result is not None and result.outcome is Outcome.DETACHED
    assert result.failure_reason == (
        f"deleted endpoint {job.name}, which was Creating when the run was cancelled"
    )
    # SageMaker refuses to delete while Creating: the first attempts were turned away
    assert emulator.count("DeleteEndpoint") >= 2
    endpoints = emulator.sagemaker.kinds["endpoint"]
    assert isinstance(endpoints, Endpoints)
    assert not endpoints.exists(job.name) or endpoints.endpoints[job.name].status == "Deleting"


async def test_cancelling_an_update_never_deletes_the_endpoint(emulator: Emulator) -> None:
    await emulated_stack(emulator, duration="60")
    await in_service(emulator, "ep", "c1")
    settings = Settings.fast(drain_grace=0.2, on_cancel=OnCancel.DELETE_ENDPOINTS)
    with anyio.move_on_after(30):
        async with local_runner(emulator, settings=settings) as runner:
            job = await runner.submit(
                "update", "endpoint", endpoint_request("c2", "ep"), options={"update": True}
            )
            await cancel_once_in(runner, job, "Updating")
    result = job.result
    assert result is not None and result.outcome is Outcome.DETACHED
    assert result.failure_reason is not None
    assert "existed before this run and is left alone" in result.failure_reason
    assert emulator.count("DeleteEndpoint") == 0 and emulator.count("DeleteEndpointConfig") == 0


# ------------------------------------------------------------------ manifests


def test_job_options_are_checked_against_the_kind() -> None:
    text = """
jobs:
  - name: ep
    kind: endpoint
    options: {update: "yes", upgrade: true}
    request: {EndpointConfigName: c1}
  - name: model
    kind: model
    options: {update: true}
    request: {ModelName: m, PrimaryContainer: {Image: img}}
  - name: listed
    kind: endpoint
    options: [update]
    request: {EndpointConfigName: c1}
"""
    with pytest.raises(ManifestError) as caught:
        load_manifest(text)
    errors = "\n".join(caught.value.errors)
    assert "job 'ep': options: option 'update' must be a bool, not 'yes'" in errors
    assert "kind 'endpoint' has no option 'upgrade' (options: keep_replaced_config, update)" in (
        errors
    )
    assert "job 'model': options: kind 'model' has no option 'update' (options: none)" in errors
    assert "job 'listed': options: must be a mapping of option names to values" in errors
    fixed = text.split("  - name: model")[0].replace('"yes", upgrade: true', "true")
    manifest = load_manifest(fixed)
    assert manifest.jobs["ep"].options == {"update": True}


async def test_submit_refuses_unknown_options(emulator: Emulator) -> None:
    async with local_runner(emulator) as runner:
        with pytest.raises(ValueError, match="has no option 'force'"):
            await runner.submit("ep", "endpoint", endpoint_request("c1"), options={"force": True})


async def test_the_update_endpoint_example_deploys_then_updates(emulator: Emulator) -> None:
    events: list[object] = []
    results = await run_manifest(
        load_manifest(EXAMPLE),
        aws=emulator_config(emulator),
        settings=Settings.fast(drain_grace=0.2),
        sinks=[events.append],
    )
    assert {k: r.outcome for k, r in results.items()} == {
        k: Outcome.SUCCEEDED
        for k in ("model-v1", "config-v1", "deploy", "model-v2", "config-v2", "update")
    }, {k: r.failure_reason for k, r in results.items()}
    endpoint = results["deploy"].outputs["endpoint_name"]
    assert results["update"].name == endpoint
    old, new = (results[k].outputs["endpoint_config_name"] for k in ("config-v1", "config-v2"))
    assert results["update"].details["replaced_config"] == {"name": old, "deleted": True}
    endpoints = emulator.sagemaker.kinds["endpoint"]
    assert isinstance(endpoints, Endpoints)
    assert endpoints.endpoints[endpoint.lower()].config_name == new
    assert old.lower() not in endpoints.configs
    update_lines = [e for e in events if isinstance(e, LogLine) and e.job == "update"]
    assert len(update_lines) == 3 and all(e.instance.startswith("green:") for e in update_lines)
