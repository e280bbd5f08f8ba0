"""Models: Create, Describe, Delete and List, synchronous as in SageMaker.

A model has no status and no timeline: it exists from CreateModel until
DeleteModel. The errors are SageMaker's: a second CreateModel of the same name
is a ValidationException ``Cannot create already existing model "<arn>".``,
and Describe or Delete of a missing model a ValidationException ``Could not
find model "<arn>".``. Endpoint configs and transform jobs look models up
through :meth:`Models.exists` (or the DescribeModel operation).

DescribeModel answers the request as SageMaker stores it, with its defaults
filled in (``Mode: SingleModel`` and empty ``Environment`` of each container,
``EnableNetworkIsolation: false``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from smrun.emulator.protocol import ApiError, Params
from smrun.emulator.resources import Result, SageMaker, paginate


@dataclass
class Model:
    name: str
    arn: str
    request: Params
    created: float


def _seconds(value: datetime | float) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


def _stored_container(container: Params) -> Params:
    return {"Mode": "SingleModel", "Environment": {}, **container}


class Models:
    """The model operations and the models they act on."""

    def __init__(self, sagemaker: SageMaker) -> None:
        self.sagemaker = sagemaker
        self.models: dict[str, Model] = {}  # by lower-cased name: names are case-insensitive

    def install(self) -> None:
        for operation, handler in (
            ("CreateModel", self.create),
            ("DescribeModel", self.describe),
            ("DeleteModel", self.delete),
            ("ListModels", self.list_models),
        ):
            self.sagemaker.register(operation, handler)

    def exists(self, name: str) -> bool:
        return name.lower() in self.models

    def model(self, name: str) -> Model:
        found = self.models.get(name.lower())
        if found is None:
            arn = self.sagemaker.arn("model", name)
            raise ApiError("ValidationException", f'Could not find model "{arn}".')
        return found

    def create(self, params: Params) -> Result:
        name = params["ModelName"]
        arn = self.sagemaker.arn("model", name)
        if self.exists(name):
            raise ApiError("ValidationException", f'Cannot create already existing model "{arn}".')
        if ("PrimaryContainer" in params) == ("Containers" in params):
            raise ApiError(
                "ValidationException",
                "Either PrimaryContainer or Containers must be specified, but not both.",
            )
        self.models[name.lower()] = Model(name, arn, params, self.sagemaker.now)
        self.sagemaker.add_resource(arn, params.get("Tags"))
        return {"ModelArn": arn}

    def describe(self, params: Params) -> Result:
        model = self.model(params["ModelName"])
        request = model.request
        result: dict[str, Any] = {
            k: v for k, v in request.items() if k not in ("Tags", "PrimaryContainer", "Containers")
        }
        if "PrimaryContainer" in request:
            result["PrimaryContainer"] = _stored_container(request["PrimaryContainer"])
        if "Containers" in request:
            result["Containers"] = [_stored_container(c) for c in request["Containers"]]
        result.setdefault("EnableNetworkIsolation", False)
        result.update(ModelName=model.name, ModelArn=model.arn, CreationTime=model.created)
        return result

    def delete(self, params: Params) -> Result:
        model = self.model(params["ModelName"])
        del self.models[model.name.lower()]
        self.sagemaker.tags.pop(model.arn, None)
        return {}

    def list_models(self, params: Params) -> Result:
        contains = params.get("NameContains", "").lower()
        after = params.get("CreationTimeAfter")
        before = params.get("CreationTimeBefore")
        summaries = [
            {"ModelName": m.name, "ModelArn": m.arn, "CreationTime": m.created}
            for m in self.models.values()
            if contains in m.name.lower()
            and (after is None or m.created > _seconds(after))
            and (before is None or m.created < _seconds(before))
        ]
        by_name = params.get("SortBy", "CreationTime") == "Name"
        page, token = paginate(
            summaries,
            key=(lambda s: s["ModelName"]) if by_name else (
                lambda s: (s["CreationTime"], s["ModelName"])
            ),
            max_results=params.get("MaxResults", 10),
            next_token=params.get("NextToken"),
            descending=params.get("SortOrder", "Descending") == "Descending",
        )
        result: Result = {"Models": page}
        if token is not None:
            result["NextToken"] = token
        return result


def install_kind(sagemaker: SageMaker) -> None:
    models = Models(sagemaker)
    models.install()
    sagemaker.kinds["model"] = models
