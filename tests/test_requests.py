"""smrun.requests: one builder per built-in kind, checked against botocore's shapes.

Every builder, given every argument, makes a request that the manifest loader's
botocore validation accepts, whose top-level members are all members of the
kind's Create* input shape, and whose enum members hold values of their enums;
every ``Literal`` of a builder's signature is a subset of the enum of the
member it fills. A built training request runs to success on the emulator.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any, Literal, get_args, get_origin, get_type_hints

import botocore.session
import pytest
from botocore.model import Shape

import smrun
from smrun import requests
from smrun.handlers import KINDS
from smrun.manifest import JobSpec, Manifest

ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
WORKTEAM = "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/labelers"
TAGS = {"project": "requests", "owner": "ml-team"}

TRAINING: dict[str, Any] = {
    "image": IMAGE,
    "role": ROLE,
    "instance_type": "ml.m5.xlarge",
    "output_path": "s3://my-bucket/abalone/output",
    "instance_count": 2,
    "volume_gb": 50,
    "inputs": {"train": "s3://my-bucket/abalone/train", "validation": "s3://my-bucket/abalone/val"},
    "input_mode": "FastFile",
    "hyperparameters": {"num_round": 50, "eta": 0.2, "objective": "reg:squarederror"},
    "metrics": {"validation:rmse": "validation-rmse:([0-9\\.]+)"},
    "environment": {"LOG_LEVEL": "debug"},
    "max_runtime": 3600,
    "spot": True,
    "max_wait": 7200,
    "checkpoint_path": "s3://my-bucket/abalone/checkpoints",
    "name": "abalone-train",
    "tags": TAGS,
    "extra": {"ResourceConfig": {"KeepAlivePeriodInSeconds": 60}},
}

# kind -> argument sets that together give every argument of its builder
ARGS: dict[str, list[dict[str, Any]]] = {
    "training": [TRAINING],
    "processing": [{
        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/prep:1",
        "role": ROLE,
        "instance_type": "ml.m5.xlarge",
        "instance_count": 2,
        "volume_gb": 40,
        "inputs": {"raw": "s3://my-bucket/raw"},
        "outputs": {"train": "s3://my-bucket/prepared/train", "test": "s3://my-bucket/prepared/test"},
        "input_mode": "Pipe",
        "upload_mode": "Continuous",
        "entrypoint": ["python3", "/opt/program/prepare.py"],
        "arguments": ["--split", "0.8"],
        "environment": {"SPLIT": "0.8"},
        "max_runtime": 1800,
        "name": "prepare",
        "tags": TAGS,
        "extra": {"NetworkConfig": {"EnableNetworkIsolation": True}},
    }],
    "transform": [{
        "model_name": "churn-model",
        "input_uri": "s3://my-bucket/churn/input.manifest",
        "output_path": "s3://my-bucket/churn/predictions",
        "instance_type": "ml.m5.large",
        "instance_count": 2,
        "data_type": "ManifestFile",
        "content_type": "text/csv",
        "split_type": "Line",
        "compression": "Gzip",
        "accept": "text/csv",
        "assemble_with": "Line",
        "batch_strategy": "MultiRecord",
        "max_payload_mb": 6,
        "max_concurrent": 4,
        "environment": {"MODEL_SERVER_WORKERS": "2"},
        "name": "score",
        "tags": TAGS,
        "extra": {"DataProcessing": {"JoinSource": "Input"}},
    }],
    "tuning": [{
        **{k: v for k, v in TRAINING.items() if k not in ("hyperparameters", "name", "extra")},
        "objective_metric": "validation:rmse",
        "objective_type": "Minimize",
        "max_jobs": 20,
        "max_parallel": 4,
        "integer_ranges": {"max_depth": (2, 10), "min_child_weight": (1, 10, "Linear")},
        "continuous_ranges": {"eta": (0.01, 0.5, "Logarithmic"), "alpha": (0.0, 2.0)},
        "categorical_ranges": {"booster": ["gbtree", "dart"]},
        "strategy": "Random",
        "early_stopping": "Auto",
        "static_hyperparameters": {"num_round": 50, "objective": "reg:squarederror"},
        "name": "abalone-search",
        "extra": {"HyperParameterTuningJobConfig": {"RandomSeed": 7}},
    }],
    "model": [{
        "image": IMAGE,
        "role": ROLE,
        "model_data": "s3://my-bucket/abalone/output/model.tar.gz",
        "environment": {"SAGEMAKER_PROGRAM": "serve.py"},
        "network_isolation": True,
        "name": "abalone-model",
        "tags": TAGS,
        "extra": {"PrimaryContainer": {"Mode": "SingleModel"}},
    }],
    "endpoint_config": [{
        "model_name": "abalone-model",
        "instance_type": "ml.m5.large",
        "instance_count": 2,
        "variant_name": "blue",
        "name": "abalone-config",
        "tags": TAGS,
        "extra": {"KmsKeyId": "alias/endpoints"},
    }],
    "endpoint": [{
        "config_name": "abalone-config",
        "name": "abalone",
        "tags": TAGS,
        "extra": {"DeploymentConfig": {"RollingUpdatePolicy": {
            "MaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 1},
            "WaitIntervalInSeconds": 60,
        }}},
    }],
    "labeling": [
        {
            "role": ROLE,
            "manifest_uri": "s3://my-bucket/images/input.manifest",
            "output_path": "s3://my-bucket/images/labels",
            "label_attribute_name": "category",
            "workteam_arn": WORKTEAM,
            "task_title": "What is in the picture?",
            "task_description": "Choose the category of the image",
            "ui_template_uri": "s3://my-bucket/images/template.liquid",
            "pre_human_task_lambda":
                "arn:aws:lambda:us-east-1:432418664414:function:PRE-ImageMultiClass",
            "annotation_consolidation_lambda":
                "arn:aws:lambda:us-east-1:432418664414:function:ACS-ImageMultiClass",
            "label_categories_uri": "s3://my-bucket/images/categories.json",
            "workers_per_object": 3,
            "task_time_limit": 600,
            "task_availability": 86400,
            "max_concurrent_tasks": 100,
            "task_keywords": ["images", "classification"],
            "content_classifiers": ["FreeOfPersonallyIdentifiableInformation"],
            "max_labeled_objects": 1000,
            "max_percent_labeled": 50,
            "name": "label-images",
            "tags": TAGS,
            "extra": {"OutputConfig": {"KmsKeyId": "alias/labels"}},
        },
        {
            "role": ROLE,
            "manifest_uri": "s3://my-bucket/text/input.manifest",
            "output_path": "s3://my-bucket/text/labels",
            "label_attribute_name": "sentiment",
            "workteam_arn": WORKTEAM,
            "task_title": "Sentiment",
            "task_description": "Is the text positive or negative?",
            "human_task_ui_arn":
                "arn:aws:sagemaker:us-east-1:123456789012:human-task-ui/sentiment",
        },
    ],
    "workteam": [
        {
            "description": "Image labelers",
            "user_pool": "us-east-1_abcd1234",
            "client_id": "1example23456789",
            "user_groups": ["labelers", "reviewers"],
            "workforce_name": "default",
            "notification_topic": "arn:aws:sns:us-east-1:123456789012:new-tasks",
            "name": "image-labelers",
            "tags": TAGS,
            "extra": {"WorkerAccessConfiguration": {
                "S3Presign": {"IamPolicyConstraints": {"SourceIp": "Enabled"}},
            }},
        },
        {"description": "Text labelers", "oidc_groups": ["text-labelers"]},
    ],
}

# (kind, argument) -> where in the request its Literal's value goes, and how
# to give one value as the argument
LITERALS: dict[tuple[str, str], tuple[str, Callable[[str], Any]]] = {
    ("training", "input_mode"): ("AlgorithmSpecification.TrainingInputMode", str),
    ("processing", "input_mode"): ("ProcessingInputs[].S3Input.S3InputMode", str),
    ("processing", "upload_mode"): ("ProcessingOutputConfig.Outputs[].S3Output.S3UploadMode", str),
    ("transform", "data_type"): ("TransformInput.DataSource.S3DataSource.S3DataType", str),
    ("transform", "split_type"): ("TransformInput.SplitType", str),
    ("transform", "compression"): ("TransformInput.CompressionType", str),
    ("transform", "assemble_with"): ("TransformOutput.AssembleWith", str),
    ("transform", "batch_strategy"): ("BatchStrategy", str),
    ("tuning", "input_mode"): (
        "TrainingJobDefinition.AlgorithmSpecification.TrainingInputMode", str
    ),
    ("tuning", "objective_type"): (
        "HyperParameterTuningJobConfig.HyperParameterTuningJobObjective.Type", str
    ),
    ("tuning", "strategy"): ("HyperParameterTuningJobConfig.Strategy", str),
    ("tuning", "early_stopping"): (
        "HyperParameterTuningJobConfig.TrainingJobEarlyStoppingType", str
    ),
    ("tuning", "integer_ranges"): (
        "HyperParameterTuningJobConfig.ParameterRanges.IntegerParameterRanges[].ScalingType",
        lambda value: {"max_depth": (2, 10, value)},
    ),
    ("tuning", "continuous_ranges"): (
        "HyperParameterTuningJobConfig.ParameterRanges.ContinuousParameterRanges[].ScalingType",
        lambda value: {"eta": (0.01, 0.5, value)},
    ),
    ("labeling", "content_classifiers"): (
        "InputConfig.DataAttributes.ContentClassifiers[]", lambda value: [value]
    ),
}

CASES = [(kind, i) for kind, sets in ARGS.items() for i in range(len(sets))]


def builder(kind: str) -> Callable[..., dict[str, Any]]:
    found: Callable[..., dict[str, Any]] = getattr(requests, kind)
    return found


def input_shape(kind: str) -> Shape:
    model = botocore.session.get_session().get_service_model("sagemaker")
    shape: Shape = model.operation_model(KINDS[kind].create).input_shape
    return shape


def validate(kind: str, request: dict[str, Any]) -> None:
    """The manifest loader's validation (botocore's ParamValidator against the
    kind's Create* shape, the name rules); raises ManifestError."""
    Manifest.from_jobs([JobSpec("job", kind, request)], kinds=KINDS)


def shape_at(shape: Shape, path: str) -> Shape:
    for part in path.split("."):
        shape = shape.members[part.removesuffix("[]")]
        if part.endswith("[]"):
            shape = shape.member
    return shape


def values_at(value: Any, path: str) -> list[Any]:
    found = [value]
    for part in path.split("."):
        found = [v[part.removesuffix("[]")] for v in found if part.removesuffix("[]") in v]
        if part.endswith("[]"):
            found = [item for items in found for item in items]
    return found


def enum_problems(value: Any, shape: Shape, where: str = "") -> Iterator[str]:
    """Every string at a member with an enum that is not one of its values."""
    if shape.type_name == "structure" and isinstance(value, dict):
        for key, member in value.items():
            if key in shape.members:
                yield from enum_problems(member, shape.members[key], f"{where}.{key}")
    elif shape.type_name == "list" and isinstance(value, list):
        for index, item in enumerate(value):
            yield from enum_problems(item, shape.member, f"{where}[{index}]")
    elif shape.type_name == "map" and isinstance(value, dict):
        for key, item in value.items():
            yield from enum_problems(item, shape.value, f"{where}[{key!r}]")
    elif isinstance(value, str) and getattr(shape, "enum", None) and value not in shape.enum:
        yield f"{where}: {value!r} is not one of {shape.enum}"


def literals_in(hint: Any) -> set[str]:
    if get_origin(hint) is Literal:
        return set(get_args(hint))
    return set().union(*(literals_in(arg) for arg in get_args(hint)))


def literal_arguments(kind: str) -> dict[str, set[str]]:
    hints = get_type_hints(builder(kind))
    found = {name: literals_in(hint) for name, hint in hints.items() if name != "return"}
    return {name: values for name, values in found.items() if values}


# ---------------------------------------------------------------------------


def test_import_smrun_requests_works_both_ways() -> None:
    import smrun.requests as module

    assert module is requests is smrun.requests
    assert "requests" not in smrun.__all__


def test_there_is_one_builder_per_built_in_kind() -> None:
    functions = {
        name for name, value in vars(requests).items()
        if inspect.isfunction(value) and value.__module__ == requests.__name__
        and not name.startswith("_")
    }
    assert functions == set(KINDS), "a kind without a builder, or a builder without a kind"
    assert set(ARGS) == set(KINDS), "every builder needs its arguments in ARGS"
    assert functions <= set(requests.__all__)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_builder_is_keyword_only_and_documented_with_an_example(kind: str) -> None:
    function = builder(kind)
    parameters = inspect.signature(function).parameters.values()
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters)
    doc = inspect.getdoc(function) or ""
    assert KINDS[kind].create in doc and f"kind ``{kind}``" in doc
    assert "Example:" in doc and f"requests.{kind}(" in doc


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_argument_sets_give_every_argument(kind: str) -> None:
    given = {name for arguments in ARGS[kind] for name in arguments}
    assert given == set(inspect.signature(builder(kind)).parameters)


@pytest.mark.parametrize(("kind", "index"), CASES)
def test_a_built_request_fits_botocores_shape(kind: str, index: int) -> None:
    arguments = ARGS[kind][index]
    request = builder(kind)(**arguments)
    shape = input_shape(kind)

    validate(kind, request)
    assert set(request) <= set(shape.members), set(request) - set(shape.members)
    assert list(enum_problems(request, shape)) == []
    if "name" in arguments:
        assert request[KINDS[kind].name_field] == arguments["name"]
    if "tags" in arguments:
        assert request["Tags"] == [{"Key": k, "Value": v} for k, v in arguments["tags"].items()]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_without_a_name_the_request_has_no_name_member(kind: str) -> None:
    arguments = {k: v for k, v in ARGS[kind][0].items() if k != "name"}
    request = builder(kind)(**arguments)
    assert KINDS[kind].name_field not in request
    validate(kind, request)  # the engine's name is put in for the check


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_literal_value_is_in_the_enum_of_the_member_it_fills(kind: str) -> None:
    shape = input_shape(kind)
    for argument, values in literal_arguments(kind).items():
        assert (kind, argument) in LITERALS, f"say in LITERALS where {kind}({argument}=) goes"
        path, given = LITERALS[(kind, argument)]
        enum = shape_at(shape, path).enum
        assert enum, f"{path} has no enum in botocore's model"
        assert values <= set(enum), f"{kind}({argument}=): {values - set(enum)} not in {path}"
        for value in sorted(values):
            request = builder(kind)(**{**ARGS[kind][0], argument: given(value)})
            assert value in values_at(request, path), (argument, value, path)
    assert {arg for k, arg in LITERALS if k == kind} == set(literal_arguments(kind))


def test_extra_is_merged_into_mappings_and_replaces_the_rest() -> None:
    own = {"KeepAlivePeriodInSeconds": 60}
    request = requests.training(
        image=IMAGE, role=ROLE, instance_type="ml.m5.large", output_path="s3://b/out",
        tags={"a": "1"},
        extra={
            "ResourceConfig": own,
            "Tags": [{"Key": "b", "Value": "2"}],
            "EnableNetworkIsolation": True,
        },
    )
    assert request["ResourceConfig"] == {
        "InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30,
        "KeepAlivePeriodInSeconds": 60,
    }
    assert request["Tags"] == [{"Key": "b", "Value": "2"}]
    assert request["EnableNetworkIsolation"] is True
    request["ResourceConfig"]["KeepAlivePeriodInSeconds"] = 1
    assert own == {"KeepAlivePeriodInSeconds": 60}  # the request shares nothing with extra


def test_the_minimal_training_request() -> None:
    request = requests.training(
        image=IMAGE, role=ROLE, instance_type="ml.m5.large", output_path="s3://b/out",
        inputs={"train": "s3://b/train"}, hyperparameters={"k": 10, "eta": 0.5, "mode": "x"},
    )
    assert request == {
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "InputDataConfig": [{
            "ChannelName": "train",
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/train"}},
        }],
        "OutputDataConfig": {"S3OutputPath": "s3://b/out"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "HyperParameters": {"k": "10", "eta": "0.5", "mode": "x"},
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
    }


def test_spot_training_waits_at_least_as_long_as_it_runs() -> None:
    base: dict[str, Any] = {
        "image": IMAGE, "role": ROLE, "instance_type": "ml.m5.large",
        "output_path": "s3://b/out", "max_runtime": 600,
    }
    spot = requests.training(**base, spot=True)
    assert spot["EnableManagedSpotTraining"] is True
    assert spot["StoppingCondition"] == {"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 600}
    with pytest.raises(ValueError, match="at least max_runtime"):
        requests.training(**base, spot=True, max_wait=60)
    with pytest.raises(ValueError, match="spot=True"):
        requests.training(**base, max_wait=1200)


@pytest.mark.parametrize(("kind", "change", "error"), [
    ("training", {"hyperparameters": {"early_stop": True}}, TypeError),
    ("training", {"hyperparameters": {"layers": [1, 2]}}, TypeError),
    ("processing", {"entrypoint": "python3 run.py"}, TypeError),
    ("labeling", {"human_task_ui_arn": "arn:aws:sagemaker:us-east-1:1:human-task-ui/x"},
     ValueError),
    ("labeling", {"ui_template_uri": None}, ValueError),
    ("workteam", {"oidc_groups": ["x"]}, ValueError),
    ("workteam", {"client_id": None}, ValueError),
    ("workteam", {"user_groups": []}, ValueError),
])
def test_arguments_the_api_would_refuse_are_refused_at_once(
    kind: str, change: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        builder(kind)(**{**ARGS[kind][0], **change})


async def test_a_built_training_request_runs_on_the_emulator() -> None:
    request = requests.training(
        image="382416733822.dkr.ecr.us-east-1.amazonaws.com/kmeans:1",
        role=ROLE,
        instance_type="ml.m5.large",
        output_path="s3://my-bucket/mnist/output",
        inputs={"train": "s3://my-bucket/mnist/train"},
        hyperparameters={"k": 10, "feature_dim": 784},
        max_runtime=600,
        tags={"smrun:emulator:duration": "1", "smrun:emulator:log-lines": "2"},
    )
    validate("training", request)
    async with smrun.Runner(local=True) as runner:
        job = await runner.submit("kmeans", "training", request)
        lines = [line async for line in job.logs()]
        result = await job.wait()
    assert result.outcome is smrun.Outcome.SUCCEEDED, result
    assert len(lines) == 2
    assert result.outputs["model_artifact_url"].startswith("s3://my-bucket/mnist/output/")
    assert result.outputs["training_image"] == request["AlgorithmSpecification"]["TrainingImage"]
