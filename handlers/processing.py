"""Processing jobs: everything special about them.

A failed processing job's FailureReason is often only "See job logs"; what the
container said on its way out is in ExitMessage, so the reason shown joins both.
The v1 ``process`` component is at the bottom.
"""

from __future__ import annotations

from typing import Any

from smrun.kind import JobContext, Kind, time_span
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
    vpc_fields,
)


def outputs(d: Description) -> dict[str, Any]:
    """v1 outputs: the job name, and each output's S3 URI by its OutputName."""
    artifacts = {
        o["OutputName"]: o["S3Output"]["S3Uri"]
        for o in d.get("ProcessingOutputConfig", {}).get("Outputs", [])
        if "S3Output" in o
    }
    return {"job_name": d.get("ProcessingJobName", ""), "output_artifacts": artifacts}


def details(d: Description) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    if d.get("ExitMessage"):
        facts["exit_message"] = d["ExitMessage"]
    times, seconds = time_span(d, "ProcessingStartTime", "ProcessingEndTime")
    facts.update(times)
    if seconds is not None:
        count = int(
            d.get("ProcessingResources", {}).get("ClusterConfig", {}).get("InstanceCount", 1) or 1
        )
        facts["processing_seconds"] = seconds
        facts["instance_seconds"] = seconds * count
    return facts


def failure_with_exit_message(d: Description) -> Description:
    reason, exit_message = d.get("FailureReason"), d.get("ExitMessage")
    if d.get("ProcessingJobStatus") != "Failed" or not exit_message:
        return d
    if reason and exit_message in reason:
        return d
    joined = f"{reason}; exit message: {exit_message}" if reason else exit_message
    return {**d, "FailureReason": joined}


async def enrich(ctx: JobContext, d: Description) -> Description:
    return failure_with_exit_message(d)


KIND = Kind(
    name="processing",
    console_path="processing-jobs",
    list_operation="ListProcessingJobs",
    summaries_field="ProcessingJobSummaries",
    event_type="SageMaker Processing Job State Change",
    create="CreateProcessingJob",
    describe="DescribeProcessingJob",
    stop="StopProcessingJob",
    name_field="ProcessingJobName",
    arn_field="ProcessingJobArn",
    end_field="ProcessingEndTime",
    status_field="ProcessingJobStatus",
    success=frozenset({"Completed"}),
    failure=frozenset({"Failed"}),
    stopped=frozenset({"Stopped"}),
    log_group="/aws/sagemaker/ProcessingJobs",
    outputs=outputs,
    output_types={"job_name": str, "output_artifacts": dict},
    details=details,
    enrich=enrich,
)


# ---------------------------------------------------------------------------
# the KFP v1 "process" component


def to_request(args: Args) -> Request:
    """The CreateProcessingJob request for the v1 process component's arguments."""
    if not args["image"].strip():
        raise ArgumentError("image", "is required: the processing container's image")
    if not args["output_config"]:
        raise ArgumentError("output_config", "at least one output is required")
    network: dict[str, Any] = {
        "EnableInterContainerTrafficEncryption": args["traffic_encryption"],
        "EnableNetworkIsolation": args["network_isolation"],
    }
    network.update(vpc_fields(args))
    return {
        "RoleArn": args["role"],
        "AppSpecification": non_empty(
            ImageUri=args["image"].strip(),
            ContainerEntrypoint=args["container_entrypoint"],
            ContainerArguments=args["container_arguments"],
        ),
        "ProcessingOutputConfig": non_empty(
            Outputs=args["output_config"], KmsKeyId=args["output_encryption_key"]
        ),
        "ProcessingResources": {
            "ClusterConfig": non_empty(
                InstanceType=args["instance_type"],
                InstanceCount=args["instance_count"],
                VolumeSizeInGB=args["volume_size"],
                VolumeKmsKeyId=args["resource_encryption_key"],
            )
        },
        "NetworkConfig": network,
        "StoppingCondition": {"MaxRuntimeInSeconds": args["max_run_time"]},
        **non_empty(ProcessingInputs=args["input_config"], Environment=args["environment"]),
    }


S, INT, B = InputType.STRING, InputType.INTEGER, InputType.BOOL
OBJ, ARR, CSV = InputType.JSON_OBJECT, InputType.JSON_ARRAY, InputType.CSV_LIST

COMPONENT = Component(
    name="process",
    kind="processing",
    title="SageMaker - Processing Job",
    description="Perform data pre-processing, post-processing, feature engineering, data "
    "validation, and model evaluation, and interpretation on using SageMaker",
    console_path="processing-jobs",
    to_request=to_request,
    inputs=(
        Input("job_name", S, "", "The name of the processing job."),
        Input("role", S, description="The Amazon Resource Name (ARN) that Amazon SageMaker "
              "assumes to perform tasks on your behalf."),
        Input("image", S, "", "The registry path of the Docker image that contains the "
              "processing container."),
        Input("instance_type", S, "ml.m4.xlarge", "The ML compute instance type."),
        Input("instance_count", INT, 1, "The number of ML compute instances to use in each "
              "processing job."),
        Input("volume_size", INT, 30, "The size of the ML storage volume that you want to "
              "provision."),
        Input("resource_encryption_key", S, "", "The AWS KMS key that Amazon SageMaker uses to "
              "encrypt data on the storage volume attached to the ML compute instance(s)."),
        Input("output_encryption_key", S, "", "The AWS KMS key that Amazon SageMaker uses to "
              "encrypt the processing artifacts."),
        Input("max_run_time", INT, 86400, "The maximum run time in seconds for the processing "
              "job."),
        Input("environment", OBJ, {}, "The dictionary of the environment variables to set in "
              "the Docker container. Up to 16 key-value entries in the map."),
        Input("container_entrypoint", ARR, [], "The entrypoint for the processing job. This is "
              "in the form of a list of strings that make a command."),
        Input("container_arguments", ARR, [], "A list of string arguments to be passed to a "
              "processing job."),
        Input("output_config", ARR, [], "Parameters that specify Amazon S3 outputs for a "
              "processing job."),
        Input("input_config", ARR, [], "Parameters that specify Amazon S3 inputs for a "
              "processing job."),
        *VPC_INPUTS,
        Input("network_isolation", B, True, "Isolates the processing container."),
        Input("traffic_encryption", B, False, "Encrypts all communications between ML compute "
              "instances in distributed training."),
    ),
    outputs=(
        Output("job_name", "Processing job name."),
        Output("output_artifacts", "A dictionary containing the output S3 artifacts.", OBJ),
    ),
)
