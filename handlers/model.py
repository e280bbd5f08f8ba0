"""Models: everything special about them.

CreateModel is synchronous and a model has no status: once it describes, it
is done. A model of the same name that already exists is used as it is when it
is the same model (same containers, role, network settings), so that a
pipeline can be re-run; a different one is an error that names what differs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from smrun.kind import Kind
from smrun.types import Description, JobError, Phase, Request
from smrun.v1 import (
    VPC_INPUTS,
    Args,
    ArgumentError,
    Component,
    Input,
    InputType,
    Output,
    non_empty,
    vpc_fields,
)

# what makes two models the same model (tags are not part of a description)
COMPARED = (
    "PrimaryContainer",
    "Containers",
    "InferenceExecutionConfig",
    "ExecutionRoleArn",
    "VpcConfig",
    "EnableNetworkIsolation",
)
# values SageMaker fills in when a request leaves them out
CONTAINER_DEFAULTS = {"Mode": "SingleModel"}


def settled(description: Description, state: Mapping[str, Any]) -> Phase:
    """A resource created synchronously is done as soon as it describes."""
    return Phase.SUCCEEDED


def normalized(value: Any, defaults: Mapping[str, Any] | None = None) -> Any:
    """``value`` without empty members and without ``defaults``' values, so that
    a request and the description SageMaker makes of it compare equal."""
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if defaults and defaults.get(key) == item:
                continue
            item = normalized(item, defaults)
            if item not in (None, False, "", {}, []):
                out[key] = item
        return out
    if isinstance(value, list):
        return [normalized(item, defaults) for item in value]
    return value


def differences(
    request: Request,
    description: Description,
    members: Iterable[str],
    defaults: Mapping[str, Any] | None = None,
) -> list[str]:
    """The members in which an existing resource differs from a create request."""
    def value(v: Any) -> Any:
        v = normalized(v, defaults)
        return None if v in (None, False, "", {}, []) else v

    return [m for m in members if value(request.get(m)) != value(description.get(m))]


def adopt(description: Description, request: Request) -> bool:
    differ = differences(request, description, COMPARED, CONTAINER_DEFAULTS)
    if differ:
        raise JobError(
            f"model {description.get('ModelName')} already exists and differs from this "
            f"request in {', '.join(differ)}; choose another ModelName or delete the model"
        )
    return True


def outputs(d: Description) -> dict[str, Any]:
    return {"model_name": d.get("ModelName", "")}


def details(d: Description) -> dict[str, Any]:
    containers = [d["PrimaryContainer"]] if d.get("PrimaryContainer") else d.get("Containers", [])
    images = [c.get("Image") or c.get("ModelPackageName") for c in containers]
    return {"images": [i for i in images if i]}


KIND = Kind(
    name="model",
    console_path="models",
    create="CreateModel",
    describe="DescribeModel",
    name_field="ModelName",
    arn_field="ModelArn",
    role_field="ExecutionRoleArn",
    status_field="",
    success=frozenset(),
    failure=frozenset(),
    phase_hook=settled,
    adopt=adopt,
    outputs=outputs,
    output_types={"model_name": str},
    details=details,
)


# ---------------------------------------------------------------------------
# the KFP v1 "model" component


def primary_container(args: Args) -> dict[str, Any]:
    """v1's single container: a model package, or an image with its artifacts."""
    container: dict[str, Any] = non_empty(ContainerHostname=args["container_host_name"])
    if args["model_package"]:
        container["ModelPackageName"] = args["model_package"]  # wins over image, as in v1
    elif args["image"]:
        container["Image"] = args["image"]
        container.update(non_empty(ModelDataUrl=args["model_artifact_url"]))
    else:
        raise ArgumentError("image", "give an image or a model_package")
    container["Environment"] = args["environment"]
    return container


def to_request(args: Args) -> Request:
    """The CreateModel request for the v1 model component's arguments;
    ``secondary_containers`` (an inference pipeline) replaces the primary container."""
    request: Request = {
        "ExecutionRoleArn": args["role"],
        "EnableNetworkIsolation": args["network_isolation"],
    }
    if args["secondary_containers"]:
        request["Containers"] = args["secondary_containers"]
    else:
        request["PrimaryContainer"] = primary_container(args)
    request.update(vpc_fields(args))
    return request


S, B = InputType.STRING, InputType.BOOL
OBJ, ARR, CSV = InputType.JSON_OBJECT, InputType.JSON_ARRAY, InputType.CSV_LIST

COMPONENT = Component(
    name="model",
    kind="model",
    title="SageMaker - Create Model",
    description="Create Models in SageMaker",
    name_input="model_name",
    console_path="models",
    to_request=to_request,
    inputs=(
        Input("model_name", S, description="The name of the new model."),
        Input("role", S, description="The Amazon Resource Name (ARN) that Amazon SageMaker "
              "assumes to perform tasks on your behalf."),
        Input("container_host_name", S, "", "When a ContainerDefinition is part of an "
              "inference pipeline, this value uniquely identifies the container for the "
              "purposes of logging and metrics."),
        Input("image", S, "", "The Amazon EC2 Container Registry (Amazon ECR) path where "
              "inference code is stored."),
        Input("model_artifact_url", S, "", "S3 path where Amazon SageMaker to store the model "
              "artifacts."),
        Input("environment", OBJ, {}, "The dictionary of the environment variables to set in "
              "the Docker container. Up to 16 key-value entries in the map."),
        Input("model_package", S, "", "The name or Amazon Resource Name (ARN) of the model "
              "package to use to create the model."),
        Input("secondary_containers", ARR, [], "A list of dicts that specifies the additional "
              "containers in the inference pipeline."),
        *VPC_INPUTS,
        Input("network_isolation", B, True, "Isolates the training container."),
    ),
    outputs=(Output("model_name", "The name of the model created by SageMaker."),),
)
