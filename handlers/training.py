"""Training jobs: everything special about them."""

from __future__ import annotations

from typing import Any

from smrun.handlers._algorithms import UnknownRegion, image_for
from smrun.kind import Kind
from smrun.types import Description, Request
from smrun.v1 import (
    VPC_INPUTS,
    Args,
    ArgumentError,
    Component,
    Input,
    InputType,
    Output,
    non_empty,
    spot_fields,
    vpc_fields,
)


def outputs(d: Description) -> dict[str, Any]:
    algorithm = d.get("AlgorithmSpecification", {})
    return {
        "job_name": d.get("TrainingJobName", ""),
        "model_artifact_url": d.get("ModelArtifacts", {}).get("S3ModelArtifacts", ""),
        "training_image": algorithm.get("TrainingImage") or algorithm.get("AlgorithmName", ""),
    }


def details(d: Description) -> dict[str, Any]:
    """Billing and final metrics; spot savings = 1 - billable / training."""
    facts: dict[str, Any] = {}
    billable = d.get("BillableTimeInSeconds")
    training = d.get("TrainingTimeInSeconds")
    if billable is not None:
        facts["billable_seconds"] = int(billable)
        count = int(d.get("ResourceConfig", {}).get("InstanceCount", 1) or 1)
        facts["billable_instance_seconds"] = int(billable) * count
    if billable is not None and training:
        savings = 1.0 - float(billable) / float(training)
        if savings > 0:
            facts["spot_savings"] = round(savings, 3)
    metrics = {
        m["MetricName"]: m["Value"]
        for m in d.get("FinalMetricDataList", [])
        if "MetricName" in m and "Value" in m
    }
    if metrics:
        facts["metrics"] = metrics
    return facts


KIND = Kind(
    name="training",
    console_path="jobs",
    list_operation="ListTrainingJobs",
    summaries_field="TrainingJobSummaries",
    event_type="SageMaker Training Job State Change",
    create="CreateTrainingJob",
    describe="DescribeTrainingJob",
    stop="StopTrainingJob",
    name_field="TrainingJobName",
    arn_field="TrainingJobArn",
    end_field="TrainingEndTime",
    status_field="TrainingJobStatus",
    secondary_status_field="SecondaryStatus",
    success=frozenset({"Completed"}),
    failure=frozenset({"Failed"}),
    stopped=frozenset({"Stopped"}),
    log_group="/aws/sagemaker/TrainingJobs",
    outputs=outputs,
    output_types={"job_name": str, "model_artifact_url": str, "training_image": str},
    details=details,
)


# ---------------------------------------------------------------------------
# the KFP v1 "train" component


def algorithm_specification(args: Args) -> dict[str, Any]:
    """TrainingImage from ``image``, else from a built-in ``algorithm_name`` for the
    region, else ``algorithm_name`` is an algorithm resource (name or ARN)."""
    spec: dict[str, Any] = {"TrainingInputMode": args["training_input_mode"]}
    image, algorithm = args["image"].strip(), args["algorithm_name"].strip()
    if image:
        spec["TrainingImage"] = image  # image wins when both are given, as in v1
    elif algorithm:
        try:
            builtin = None if algorithm.startswith("arn:") else image_for(algorithm, args["region"])
        except UnknownRegion as error:
            raise ArgumentError("algorithm_name", str(error)) from None
        if builtin:
            spec["TrainingImage"] = builtin
        else:
            spec["AlgorithmName"] = algorithm
    else:
        raise ArgumentError("image", "give a training image or an algorithm_name")
    metrics = args["metric_definitions"]
    if metrics:
        spec["MetricDefinitions"] = [{"Name": str(k), "Regex": str(v)} for k, v in metrics.items()]
    return spec


def hyperparameters(args: Args) -> dict[str, str]:
    """v1 wanted strings; numbers are turned into text, anything else is refused."""
    values: dict[str, str] = {}
    for key, value in args["hyperparameters"].items():
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ArgumentError(
                "hyperparameters", f"the value of {key!r} must be a string, got {value!r}"
            )
        values[str(key)] = str(value)
    return values


def to_request(args: Args) -> Request:
    """The CreateTrainingJob request for the v1 train component's arguments."""
    if not args["channels"]:
        raise ArgumentError("channels", "at least one input channel is required")
    request: Request = {
        "RoleArn": args["role"],
        "AlgorithmSpecification": algorithm_specification(args),
        "InputDataConfig": args["channels"],
        "OutputDataConfig": non_empty(
            S3OutputPath=args["model_artifact_path"], KmsKeyId=args["output_encryption_key"]
        ),
        "ResourceConfig": non_empty(
            InstanceType=args["instance_type"],
            InstanceCount=args["instance_count"],
            VolumeSizeInGB=args["volume_size"],
            VolumeKmsKeyId=args["resource_encryption_key"],
        ),
        "EnableNetworkIsolation": args["network_isolation"],
        "EnableInterContainerTrafficEncryption": args["traffic_encryption"],
        **spot_fields(args),
        **non_empty(
            HyperParameters=hyperparameters(args),
            DebugHookConfig=args["debug_hook_config"],
            DebugRuleConfigurations=args["debug_rule_config"],
        ),
    }
    request.update(vpc_fields(args))
    return request


S, INT, B = InputType.STRING, InputType.INTEGER, InputType.BOOL
OBJ, ARR, CSV = InputType.JSON_OBJECT, InputType.JSON_ARRAY, InputType.CSV_LIST

COMPONENT = Component(
    name="train",
    kind="training",
    title="SageMaker - Training Job",
    description="Train Machine Learning and Deep Learning Models using SageMaker",
    spot=True,
    console_path="jobs",
    to_request=to_request,
    inputs=(
        Input("job_name", S, "", "The name of the training job."),
        Input("role", S, description="The Amazon Resource Name (ARN) that Amazon SageMaker "
              "assumes to perform tasks on your behalf."),
        Input("image", S, "", "The registry path of the Docker image that contains the "
              "training algorithm."),
        Input("algorithm_name", S, "", "The name of the resource algorithm to use for the "
              "training job. Do not specify a value for this if using training image."),
        Input("metric_definitions", OBJ, {}, "The dictionary of name-regex pairs specify the "
              "metrics that the algorithm emits."),
        Input("training_input_mode", S, "File", "The input mode that the algorithm supports. "
              "File or Pipe.", choices=("File", "Pipe", "FastFile")),
        Input("hyperparameters", OBJ, {}, "Dictionary of hyperparameters for the the algorithm."),
        Input("channels", ARR, description="A list of dicts specifying the input channels. "
              "Must have at least one."),
        Input("instance_type", S, "ml.m4.xlarge", "The ML compute instance type."),
        Input("instance_count", INT, 1, "The number of ML compute instances to use in the "
              "training job."),
        Input("volume_size", INT, 30, "The size of the ML storage volume that you want to "
              "provision."),
        Input("resource_encryption_key", S, "", "The AWS KMS key that Amazon SageMaker uses to "
              "encrypt data on the storage volume attached to the ML compute instance(s)."),
        Input("model_artifact_path", S, description="Identifies the S3 path where you want "
              "Amazon SageMaker to store the model artifacts."),
        Input("output_encryption_key", S, "", "The AWS KMS key that Amazon SageMaker uses to "
              "encrypt the model artifacts."),
        *VPC_INPUTS,
        Input("network_isolation", B, True, "Isolates the training container."),
        Input("traffic_encryption", B, False, "Encrypts all communications between ML compute "
              "instances in distributed training."),
        Input("debug_hook_config", OBJ, {}, "Configuration information for the debug hook "
              "parameters, collection configuration, and storage paths."),
        Input("debug_rule_config", ARR, [], "Configuration information for debugging rules."),
    ),
    outputs=(
        Output("model_artifact_url", "The model artifacts URL."),
        Output("job_name", "The training job name."),
        Output("training_image", "The registry path of the Docker image that contains the "
               "training algorithm."),
    ),
)
