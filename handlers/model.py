"""Models: everything special about them.

CreateModel is synchronous and a model has no status: once it describes, it
is done. A model of the same name that already exists is used as it is when it
is the same model (same containers, role, network settings), so that a
pipeline can be re-run; a different one is an error that names what differs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from runner.job import JobError
from runner.kind import Description, Kind, Phase, Request

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
    create="CreateModel",
    describe="DescribeModel",
    list_op="ListModels",
    name_field="ModelName",
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
